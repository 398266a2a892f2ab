"""The paper's byte-level decoder-only Transformer, as a `Predictor`.

Architecture (Delétang et al., 2024, App. A, and their Haiku code): bytes are embedded
(scaled by √d) and summed with sinusoidal positions; each of the layers is post-norm,
`h = LN(h + Attention(h))`, `h = LN(h + FFN(h))`, with bias-free attention projections
and a GELU feed-forward network with biases; an untied linear head with bias gives the
256 logits. Sequences start from a beginning token, byte 0, at position 0 (the paper's
`shift_right`), so a model with context 2048 predicts up to 2048 bytes. The "200K" preset
has exactly 231,936 parameters:

    embedding                256 × 64                      16,384
    4 × attention            4 × 64 × 64   (q, k, v, out)    4 × 16,384
    4 × feed-forward         64 × 256 + 256 + 256 × 64 + 64  4 × 33,088
    4 × 2 layer norms        2 × (64 + 64)                   4 × 256
    head                     64 × 256 + 256                  16,640
                                                            -------
                                                            231,936

Three computations exist and they are kept apart:
- `TransformerModel.forward` scores whole sequences in parallel (training, quick
  evaluation). It agrees with the others only to float tolerance.
- The CPU coding engines, `engine="kernels-f16"` (the default on the CPU) and "kernels"
  (the first, for payloads made before it): the same network in
  `predictors/transformer_kernels.py`, written so that every probability is one fixed
  sequence of float32 operations. Scoring a whole chunk in one call (the encoder,
  `sequence_distributions`) and stepping it byte by byte (the decoder, `start/step`) give
  identical bits, whatever the batch, so the encoder no longer has to step.
- `engine="torch"`: `TransformerModel.forward_step` feeds one byte per sequence against a
  preallocated key/value cache, on the CPU or a GPU. Encoder, decoder and every code
  length step the same batch groups, so they see bit-identical probabilities.

For the torch engine, what else must match between encoder and decoder: the batch size (a
matrix product may round differently for another number of rows), the thread count
(multi-threaded BLAS splits small products differently), and the machine's BLAS build and
CPU instruction set. The predictor therefore steps with exactly `CODING_THREADS` torch
threads (it sets the process-wide count), and the coder records its batch size; a
different CPU or torch build can still round differently, which the container's
fingerprint cannot detect. The engine is part of the fingerprint: a payload is decoded by
the engine that coded it.

Only the torch paths import torch: the PyTorch module lives in `predictors.transformer_model`
(its names are importable from here too, loading it on first use), and a checkpoint is read
as numpy arrays (`read_checkpoint`), from which the kernels engine is built directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from gencomp.errors import CheckpointError, UsageError
from gencomp.fileio import write_output
from gencomp.limits import check_model_memory
from predictors.base import Predictor
from predictors.transformer_arrays import (
    KernelCache,
    KernelWeights,
    allocate_cache,
    allocate_scratch,
    pack_weights,
)
from predictors.transformer_config import (  # noqa: F401 (names of this module's interface)
    PRESETS,
    TransformerConfig,
    parameter_shapes,
    preset,
)
from predictors.transformer_native import Kernels, load_kernels

if TYPE_CHECKING:
    from predictors.transformer_model import KVCache, TransformerModel

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKPOINT_FORMAT = "gencomp-transformer"
#: Bounds what loading reads before any check: the 3.2M preset is about 13 MB.
MAX_CHECKPOINT_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20
CHECKPOINT_VERSION = 1
#: Longest context a checkpoint may declare (the paper's models use 2048).
MAX_CONTEXT_LENGTH = 1 << 16
BEGIN_TOKEN = 0
#: The CPU kernels (`transformer_kernels`): "kernels-f16", what "auto" picks on the CPU,
#: keeps the cached values as half floats and rounds each multiply-add once; "kernels", the
#: first kernels, decode the payloads made before it.
KERNEL_ENGINES = ("kernels-f16", "kernels")
ENGINES = (*KERNEL_ENGINES, "torch")
#: Torch threads used while stepping (see the module docstring). Parallelism across
#: chunks comes from coding independent batch groups in separate worker processes.
CODING_THREADS = 1
#: The PyTorch side's names, importable from here; the first use imports torch.
_TORCH_NAMES = ("Block", "KVCache", "TransformerModel", "resolve_device")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from predictors import transformer_model

        return getattr(transformer_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def device_name(device: str) -> str:
    """"cpu" as it is (without importing torch); "auto", "cuda", … as torch resolves them."""
    if device == "cpu":
        return device
    from predictors.transformer_model import resolve_device

    return str(resolve_device(device))


def resolve_engine(engine: str, device: str) -> str:
    """"auto" picks the exact CPU kernels on the CPU and torch on a GPU."""
    on_cpu = device.split(":")[0] == "cpu"
    if engine == "auto":
        return KERNEL_ENGINES[0] if on_cpu else "torch"
    if engine not in ENGINES:
        raise UsageError(f"unknown transformer engine {engine!r}; use auto, "
                         f"{', '.join(ENGINES)}")
    if engine in KERNEL_ENGINES and not on_cpu:
        raise UsageError(f"the {engine} engine runs on the CPU; use engine torch on a GPU")
    return engine


class ModelTensors(NamedTuple):
    """A model's config and its parameters by state-dict name, as float32 numpy arrays:
    what a checkpoint holds, read without torch."""

    config: TransformerConfig
    arrays: dict[str, np.ndarray]


@dataclass
class KernelState:
    """The kernels engine's key/value cache and the next position."""

    cache: KernelCache
    position: int = 0


def state_dict_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """Digest of every weight tensor (names, shapes, float32 values), independent of file
    layout and of whether torch holds them."""
    digest = hashlib.sha256()
    for name, values in sorted(arrays.items()):
        array = np.ascontiguousarray(values, dtype=np.float32)
        digest.update(f"{name}:{tuple(array.shape)};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class TransformerPredictor(Predictor):
    """Next-byte distributions from a `TransformerModel`, stepped with a KV cache.

    Each sequence can hold `context_length` bytes: `start` feeds the begin token, and the
    distribution for byte i comes after feeding byte i−1, so the last byte of a full
    sequence is never fed. `engine` picks the computation (module docstring): "kernels-f16"
    or "kernels" (CPU, exact for any batch: `batch_independent`) or "torch" (CPU or GPU,
    float32 logits softmaxed in float64; stepping sets torch to `CODING_THREADS` threads for
    the whole process); "auto" is kernels-f16 on the CPU, torch on a GPU.
    """

    name = "transformer"

    def __init__(self, model: TransformerModel | ModelTensors, device: str = "cpu",
                 held_out_rate_percent: float | None = None, engine: str = "auto"):
        self.device = device_name(device)
        self.engine = resolve_engine(engine, self.device)
        if isinstance(model, ModelTensors):  # from a checkpoint: torch is loaded only if used
            self.model_config, self._arrays, self._model = model.config, model.arrays, None
        else:
            from predictors.transformer_model import state_arrays

            self.model_config, self._arrays = model.config, state_arrays(model)
            self._model = model.to(self.device).eval()
        #: The held-out chunked rate its training recorded (`gencomp train`), if any: the
        #: fair number when data it trained on is compressed (e.g. the bench's enwik8).
        self.held_out_rate_percent = held_out_rate_percent
        self._half_cache = self.engine == "kernels-f16"
        self._kernel_weights = (
            pack_weights(self._arrays, self.model_config.num_heads,
                         self.model_config.context_length)
            if self.batch_independent else None)
        self._kernels = (load_kernels(self._kernel_weights, self._half_cache)
                         if self.batch_independent else None)
        # The torch engine's fingerprint is the one payloads made before the kernels had.
        engine_mark = "" if self.engine == "torch" else f"engine={self.engine}"
        self._fingerprint = hashlib.sha256(
            (json.dumps(self.config, sort_keys=True) + state_dict_sha256(self._arrays)
             + engine_mark).encode()
        ).hexdigest()

    @property
    def tensors(self) -> ModelTensors:
        """Its config and parameters, from which another engine of this model is made."""
        return ModelTensors(self.model_config, self._arrays)

    @property
    def model(self) -> TransformerModel:
        """The PyTorch module (built from the arrays when first asked for: imports torch)."""
        if self._model is None:
            from predictors.transformer_model import model_from_arrays

            self._model = model_from_arrays(self.model_config, self._arrays).to(
                self.device).eval()
        return self._model

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.model_config)

    @property
    def context_length(self) -> int:
        return self.model_config.context_length

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def num_parameters(self) -> int:
        return sum(array.size for array in self._arrays.values())

    @property
    def batch_independent(self) -> bool:
        return self.engine in KERNEL_ENGINES

    @property
    def kernel_weights(self) -> KernelWeights | None:
        """The kernels engine's packed weights (None with the torch engine)."""
        return self._kernel_weights

    @property
    def kernels(self) -> Kernels | None:
        """The compiled kernels the kernels engine runs (None with the torch engine)."""
        return self._kernels

    def _check_room(self, position: int) -> None:
        if position >= self.context_length:
            raise ValueError(f"a sequence holds at most {self.context_length} bytes")

    def _distribution(self, tokens: np.ndarray, state: KVCache | KernelState) -> np.ndarray:
        self._check_room(state.position)
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if isinstance(state, KernelState):
            probabilities = np.empty((len(tokens), 256))
            self._kernels.step_batch(self._kernel_weights, state.cache, tokens,
                                     state.position, probabilities)
            state.position += 1
            return probabilities
        import torch

        if torch.get_num_threads() != CODING_THREADS:
            torch.set_num_threads(CODING_THREADS)
        with torch.inference_mode():
            logits = self.model.forward_step(torch.from_numpy(tokens).to(self.device), state)
            return torch.softmax(logits.double(), dim=-1).cpu().numpy()

    def start(self, batch_size: int) -> tuple[KVCache | KernelState, np.ndarray]:
        config = self.model_config  # keys and values, per layer and position
        check_model_memory((4 + (2 if self._half_cache else 4)) * batch_size
                           * config.num_layers * config.context_length * config.embedding_dim,
                           f"the transformer's key/value cache for a batch of {batch_size}")
        if self.batch_independent:
            state = KernelState(self.allocate_cache(batch_size))
        else:
            from predictors.transformer_model import KVCache

            state = KVCache.allocate(self.model_config, batch_size, self.device)
        return state, self._distribution(np.full(batch_size, BEGIN_TOKEN), state)

    def step(self, state: KVCache | KernelState, symbols: np.ndarray) -> np.ndarray:
        return self._distribution(symbols, state)

    def prime(self, state: KVCache | KernelState, context: np.ndarray) -> np.ndarray:
        """With the kernels, each sequence's context in one call (`extend_sequence`), the
        bits stepping it gives."""
        if not isinstance(state, KernelState) or context.shape[1] == 0:
            return super().prime(state, context)
        self._check_room(state.position + context.shape[1] - 1)
        last = np.empty((context.shape[0], 256))
        for row, tokens in enumerate(np.asarray(context, dtype=np.int64)):
            last[row] = self._extend(state.cache, row, np.ascontiguousarray(tokens),
                                     state.position)[-1]
        state.position += context.shape[1]
        return last

    def _extend(self, cache: KernelCache, sequence: int, tokens: np.ndarray, start: int
                ) -> np.ndarray:
        """The distributions after each of `tokens`, fed to `sequence` of `cache` from
        position `start` in one call (`extend_sequence`)."""
        probabilities = np.empty((len(tokens), 256))
        self._kernels.extend_sequence(self._kernel_weights, cache, sequence, tokens, start,
                                      allocate_scratch(self._kernel_weights, len(tokens)),
                                      probabilities)
        return probabilities

    def sequence_distributions(self, sequence: bytes) -> np.ndarray:
        if not self.batch_independent:
            return super().sequence_distributions(sequence)
        self._check_room(len(sequence) - 1)
        inputs = np.full(len(sequence), BEGIN_TOKEN, dtype=np.int64)  # then bytes 0 … n−2
        inputs[1:] = np.frombuffer(sequence[:-1], dtype=np.uint8)
        return self._extend(self.allocate_cache(1), 0, inputs, 0)

    def allocate_cache(self, batch_size: int) -> KernelCache:
        """An empty cache of the kernels engine's kind for `batch_size` sequences."""
        return allocate_cache(self._kernel_weights, batch_size, self._half_cache)


# --- checkpoints ------------------------------------------------------------------------


def save_checkpoint(model: TransformerModel, path: str | Path,
                    metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `path` (.safetensors weights) and its .json config beside it, each atomically.

    The JSON records the config and the sha256 of the weights file, which `load_checkpoint`
    checks. Returns the JSON record.
    """
    import safetensors.torch

    path = Path(path)
    weights = safetensors.torch.save(
        {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    )
    record = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": asdict(model.config),
        "num_parameters": model.num_parameters,
        "weights_file": path.name,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        **(metadata or {}),
    }
    write_output(path, weights, force=True)
    write_output(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode(),
                 force=True)
    return record


def load_checkpoint(path: str | Path) -> tuple[TransformerModel, dict[str, Any]]:
    """The PyTorch model in `path` (.safetensors, its .json beside it) and the JSON record,
    checked as `read_checkpoint` checks them."""
    from predictors.transformer_model import model_from_arrays

    tensors, record = read_checkpoint(path)
    return model_from_arrays(tensors.config, tensors.arrays), record


def read_checkpoint(path: str | Path) -> tuple[ModelTensors, dict[str, Any]]:
    """The config and weights in `path` (.safetensors, its .json beside it), as numpy
    arrays (no torch), and the JSON record.

    Raises CheckpointError for a missing, corrupt or tampered file, or weights that do not
    fit the config. Loads tensors only (safetensors): no code runs from the file.
    """
    path = Path(path)
    config_path = path.with_suffix(".json")
    for required, largest in ((path, MAX_CHECKPOINT_BYTES), (config_path, MAX_CONFIG_BYTES)):
        if not required.is_file():
            raise CheckpointError(f"checkpoint file not found: {required}")
        if required.stat().st_size > largest:  # e.g. a path from a hostile container
            raise CheckpointError(f"{required} is over {largest >> 20} MiB: not a checkpoint "
                                  "file of ours")
    try:
        record = json.loads(config_path.read_text(encoding="utf-8"))
        if record.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is {record.get('format')!r}, not {CHECKPOINT_FORMAT!r}")
        config = TransformerConfig.from_dict(record["config"])
        expected_sha256 = record["weights_sha256"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
            UsageError) as error:
        raise CheckpointError(f"bad checkpoint config {config_path}: {error}") from error
    weights = path.read_bytes()
    if hashlib.sha256(weights).hexdigest() != expected_sha256:
        raise CheckpointError(f"checkpoint {path} does not match the sha256 recorded in "
                              f"{config_path.name}: the file was modified or replaced")
    try:
        tensors = safetensors.numpy.load(weights)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"corrupt checkpoint {path}: {error}") from error
    check_fits(config, tensors, path)
    arrays = {name: np.ascontiguousarray(array, dtype=np.float32)
              for name, array in tensors.items()}
    return ModelTensors(config, arrays), record


def check_fits(config: TransformerConfig, tensors: Mapping[str, np.ndarray], path: Path,
               ) -> None:
    """Refuse a config that the file's tensors do not fit, before building anything: the
    config can declare any size, while the tensors are real bytes. Depth, widths and context
    are checked first, so that the table of expected shapes is no longer than the file's."""
    blocks = {name.split(".")[1] for name in tensors if name.startswith("blocks.")}
    embedding = tensors.get("embedding.weight")
    feed_forward = tensors.get("blocks.0.ff_in.weight")
    if (len(blocks) != config.num_layers or embedding is None or embedding.ndim != 2
            or embedding.shape[1] != config.embedding_dim
            or feed_forward is None or feed_forward.ndim != 2
            or feed_forward.shape[0] != config.widening_factor * config.embedding_dim
            or config.context_length > MAX_CONTEXT_LENGTH):
        raise CheckpointError(f"checkpoint {path} does not fit its config (depth, width or "
                              "context length)")
    expected = parameter_shapes(config)
    found = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if expected != found:
        problems = sorted(
            f"{name}: expected {expected.get(name)}, found {found.get(name)}"
            for name in set(expected) | set(found)
            if expected.get(name) != found.get(name)
        )
        raise CheckpointError(f"checkpoint {path} does not fit its config "
                              f"({len(problems)} mismatches, e.g. {problems[0]})")


def load_pretrained(size: str = "200k", checkpoint: str | None = None,
                    device: str = "cpu", engine: str = "auto") -> TransformerPredictor:
    """A ready predictor: the shipped checkpoint for `size`, or the file `checkpoint`
    (whose JSON config then decides the architecture and `size` is not used)."""
    if checkpoint is None:
        preset(size)
        path = WEIGHTS_DIR / f"transformer_{size.lower()}.safetensors"
        if not path.is_file():
            raise CheckpointError(f"no shipped transformer checkpoint for size {size!r} "
                                  f"(train one with `gencomp train --size {size}`)")
    else:
        path = Path(checkpoint)
    tensors, record = read_checkpoint(path)
    training = record.get("training")
    held_out = training.get("held_out_chunked_rate_percent") if isinstance(training, dict) else None
    return TransformerPredictor(tensors, device=device, engine=engine,
                                held_out_rate_percent=held_out if isinstance(held_out, float)
                                else None)
