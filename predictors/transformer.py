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
- The CPU coding engine, `engine="kernels"` (the default on the CPU): the same network in
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
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn

from gencomp.errors import CheckpointError, UsageError
from gencomp.fileio import write_output
from gencomp.limits import check_model_memory
from predictors import transformer_kernels
from predictors.base import Predictor

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKPOINT_FORMAT = "gencomp-transformer"
#: Bounds what loading reads before any check: the 3.2M preset is about 13 MB.
MAX_CHECKPOINT_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20
CHECKPOINT_VERSION = 1
#: Longest context a checkpoint may declare (the paper's models use 2048).
MAX_CONTEXT_LENGTH = 1 << 16
BEGIN_TOKEN = 0
ENGINES = ("kernels", "torch")
#: Torch threads used while stepping (see the module docstring). Parallelism across
#: chunks comes from coding independent batch groups in separate worker processes.
CODING_THREADS = 1


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 256
    embedding_dim: int = 64
    num_layers: int = 4
    num_heads: int = 8
    widening_factor: int = 4
    context_length: int = 2048

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"transformer config {key} must be a positive integer, "
                                 f"got {value!r}")
        if self.vocab_size != 256:
            raise UsageError("a byte-level transformer needs vocab_size 256")
        if self.embedding_dim % self.num_heads or self.embedding_dim % 2:
            raise UsageError("embedding_dim must be even and divisible by num_heads")

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise UsageError(f"unknown transformer config keys: {', '.join(unknown)}")
        return cls(**values)


#: The paper's three sizes: same depth, wider embeddings.
PRESETS: dict[str, TransformerConfig] = {
    "200k": TransformerConfig(embedding_dim=64),
    "800k": TransformerConfig(embedding_dim=128),
    "3.2m": TransformerConfig(embedding_dim=256),
}


def preset(size: str) -> TransformerConfig:
    """The config of a named size ("200k", "800K", "3.2M": case does not matter)."""
    config = PRESETS.get(size.lower()) if isinstance(size, str) else None  # from a header
    if config is None:
        raise UsageError(f"unknown transformer size {size!r}; available: {', '.join(PRESETS)}")
    return config


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sin/cos position codes, the first half sines, as in the paper's code."""
    inverse_frequencies = 1e4 ** (-np.arange(0, dim, 2) / dim)
    angles = np.outer(np.arange(length), inverse_frequencies)
    return torch.from_numpy(np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)).float()


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        dim = config.embedding_dim
        self.num_heads = config.num_heads
        self.attention_scale = config.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attention_out = nn.Linear(dim, dim, bias=False)
        self.attention_norm = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, config.widening_factor * dim)
        self.ff_out = nn.Linear(config.widening_factor * dim, dim)
        self.ff_norm = nn.LayerNorm(dim)

    def feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ff_norm(h + self.ff_out(F.gelu(self.ff_in(h), approximate="tanh")))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, length, dim = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        return self.feed_forward(self.attention_norm(h + self.attention_out(attended)))

    def forward_step(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     position: int) -> torch.Tensor:
        """One new position per sequence; `keys`/`values` are this layer's (batch, heads,
        context, head_dim) cache, written at `position` and read up to it."""
        batch, dim = h.shape
        q, k, v = self.qkv(h).view(batch, 3, self.num_heads, 1, -1).unbind(1)
        keys[:, :, position : position + 1] = k
        values[:, :, position : position + 1] = v
        # Plain matmuls: for a single query they beat scaled_dot_product_attention's CPU
        # kernel, whose rounding also varies with the thread count.
        scores = torch.matmul(q * self.attention_scale, keys[:, :, : position + 1].transpose(2, 3))
        attended = torch.matmul(torch.softmax(scores, dim=-1), values[:, :, : position + 1])
        attended = self.attention_out(attended.view(batch, dim))
        return self.feed_forward(self.attention_norm(h + attended))


class TransformerModel(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.head = nn.Linear(config.embedding_dim, config.vocab_size)
        self.register_buffer(
            "positions",
            sinusoidal_positions(config.context_length, config.embedding_dim),
            persistent=False,
        )
        self.embedding_scale = math.sqrt(config.embedding_dim)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())

    def forward(self, inputs: torch.Tensor, first_positions: torch.Tensor | None = None,
                ) -> torch.Tensor:
        """Logits (batch, length, 256) for every position of (batch, length) input tokens,
        the begin token first: position t predicts the byte after inputs[:, t].

        `first_positions` (batch,) places each row at a position offset in the context
        (training on short windows); by default rows start at position 0.
        """
        length = inputs.shape[1]
        offsets = torch.arange(length, device=inputs.device)
        if first_positions is not None:
            offsets = first_positions[:, None] + offsets
        if int(offsets.max()) >= self.config.context_length:
            raise ValueError(f"positions up to {int(offsets.max())} exceed the context "
                             f"{self.config.context_length}")
        h = self.embedding(inputs) * self.embedding_scale + self.positions[offsets]
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def forward_step(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (batch, 256) after feeding one token per sequence at `cache.position`."""
        position = cache.position
        h = self.embedding(tokens) * self.embedding_scale + self.positions[position]
        for block, keys, values in zip(self.blocks, cache.keys, cache.values, strict=True):
            h = block.forward_step(h, keys, values, position)
        cache.position += 1
        return self.head(h)


@dataclass
class KVCache:
    """Per-layer key and value tensors (batch, heads, context, head_dim), allocated once."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position: int = 0

    @classmethod
    def allocate(cls, config: TransformerConfig, batch_size: int, device: torch.device,
                 ) -> KVCache:
        shape = (batch_size, config.num_heads, config.context_length, config.head_dim)
        return cls(
            keys=[torch.zeros(shape, device=device) for _ in range(config.num_layers)],
            values=[torch.zeros(shape, device=device) for _ in range(config.num_layers)],
        )


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"unknown device {device!r}") from error
    if resolved.type not in ("cpu", "cuda"):  # e.g. "meta" holds no data: it cannot decode
        raise UsageError(f"unsupported device {device!r}; use auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda requested but CUDA is not available")
    return resolved


def resolve_engine(engine: str, device: torch.device) -> str:
    """"auto" picks the exact CPU kernels on the CPU and torch on a GPU."""
    if engine == "auto":
        return "kernels" if device.type == "cpu" else "torch"
    if engine not in ENGINES:
        raise UsageError(f"unknown transformer engine {engine!r}; use auto, "
                         f"{', '.join(ENGINES)}")
    if engine == "kernels" and device.type != "cpu":
        raise UsageError("the kernels engine runs on the CPU; use engine torch on a GPU")
    return engine


@dataclass
class KernelState:
    """The kernels engine's key/value caches (batch, layers, heads, head_dim, capacity)."""

    keys: np.ndarray
    values: np.ndarray
    position: int = 0


def state_dict_sha256(model: nn.Module) -> str:
    """Digest of every weight tensor (names, shapes, values), independent of file layout."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{name}:{tuple(array.shape)};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class TransformerPredictor(Predictor):
    """Next-byte distributions from a `TransformerModel`, stepped with a KV cache.

    Each sequence can hold `context_length` bytes: `start` feeds the begin token, and the
    distribution for byte i comes after feeding byte i−1, so the last byte of a full
    sequence is never fed. `engine` picks the computation (module docstring): "kernels"
    (CPU, exact for any batch: `batch_independent`) or "torch" (CPU or GPU, float32
    logits softmaxed in float64; stepping sets torch to `CODING_THREADS` threads for the
    whole process); "auto" is kernels on the CPU, torch on a GPU.
    """

    name = "transformer"

    def __init__(self, model: TransformerModel, device: str = "cpu",
                 held_out_rate_percent: float | None = None, engine: str = "auto"):
        self.device = resolve_device(device)
        self.engine = resolve_engine(engine, self.device)
        self.model = model.to(self.device).eval()
        #: The held-out chunked rate its training recorded (`gencomp train`), if any: the
        #: fair number when data it trained on is compressed (e.g. the bench's enwik8).
        self.held_out_rate_percent = held_out_rate_percent
        self._kernel_weights = (transformer_kernels.pack_weights(self.model)
                                if self.engine == "kernels" else None)
        # The torch engine's fingerprint is the one payloads made before the kernels had.
        engine_mark = "" if self.engine == "torch" else f"engine={self.engine}"
        self._fingerprint = hashlib.sha256(
            (json.dumps(self.config, sort_keys=True) + state_dict_sha256(self.model)
             + engine_mark).encode()
        ).hexdigest()

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.model.config)

    @property
    def context_length(self) -> int:
        return self.model.config.context_length

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def num_parameters(self) -> int:
        return self.model.num_parameters

    @property
    def batch_independent(self) -> bool:
        return self.engine == "kernels"

    def _check_room(self, position: int) -> None:
        if position >= self.context_length:
            raise ValueError(f"a sequence holds at most {self.context_length} bytes")

    def _distribution(self, tokens: np.ndarray, state: KVCache | KernelState) -> np.ndarray:
        self._check_room(state.position)
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if isinstance(state, KernelState):
            probabilities = np.empty((len(tokens), 256))
            transformer_kernels.step_batch(self._kernel_weights, state.keys, state.values,
                                           tokens, state.position, probabilities)
            state.position += 1
            return probabilities
        if torch.get_num_threads() != CODING_THREADS:
            torch.set_num_threads(CODING_THREADS)
        with torch.inference_mode():
            logits = self.model.forward_step(torch.from_numpy(tokens).to(self.device), state)
            return torch.softmax(logits.double(), dim=-1).cpu().numpy()

    def start(self, batch_size: int) -> tuple[KVCache | KernelState, np.ndarray]:
        config = self.model.config  # float32 keys and values, per layer and position
        check_model_memory(2 * 4 * batch_size * config.num_layers * config.context_length
                           * config.embedding_dim, f"the transformer's key/value cache for a "
                           f"batch of {batch_size}")
        if self.engine == "kernels":
            state = KernelState(*transformer_kernels.allocate_cache(self._kernel_weights,
                                                                    batch_size))
        else:
            state = KVCache.allocate(self.model.config, batch_size, self.device)
        return state, self._distribution(np.full(batch_size, BEGIN_TOKEN), state)

    def step(self, state: KVCache | KernelState, symbols: np.ndarray) -> np.ndarray:
        return self._distribution(symbols, state)

    def sequence_distributions(self, sequence: bytes) -> np.ndarray:
        if self.engine != "kernels":
            return super().sequence_distributions(sequence)
        self._check_room(len(sequence) - 1)
        inputs = np.full(len(sequence), BEGIN_TOKEN, dtype=np.int64)  # then bytes 0 … n−2
        inputs[1:] = np.frombuffer(sequence[:-1], dtype=np.uint8)
        keys, values = transformer_kernels.allocate_cache(self._kernel_weights, 1)
        probabilities = np.empty((len(sequence), 256))
        transformer_kernels.score_sequence(self._kernel_weights, inputs, keys[0], values[0],
                                           probabilities)
        return probabilities


# --- checkpoints ------------------------------------------------------------------------


def save_checkpoint(model: TransformerModel, path: str | Path,
                    metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `path` (.safetensors weights) and its .json config beside it, each atomically.

    The JSON records the config and the sha256 of the weights file, which `load_checkpoint`
    checks. Returns the JSON record.
    """
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
    """The model in `path` (.safetensors, its .json beside it) and the JSON record.

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
        tensors = safetensors.torch.load(weights)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"corrupt checkpoint {path}: {error}") from error
    check_fits(config, tensors, path)
    model = TransformerModel(config)
    model.load_state_dict({name: tensor.float() for name, tensor in tensors.items()})
    return model, record


def check_fits(config: TransformerConfig, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a config that the file's tensors do not fit, before building the model: the
    config can declare any size, while the tensors are real bytes. Depth, widths and context
    are checked first, so that the skeleton built next (without its position table, which
    is not a weight) is no larger than the file. (A skeleton on torch's "meta" device would
    allocate nothing, but its first use imports for over a second in every process.)"""
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
    skeleton = TransformerModel(replace(config, context_length=1))
    expected = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
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
    model, record = load_checkpoint(path)
    training = record.get("training")
    held_out = training.get("held_out_chunked_rate_percent") if isinstance(training, dict) else None
    return TransformerPredictor(model, device=device, engine=engine,
                                held_out_rate_percent=held_out if isinstance(held_out, float)
                                else None)
