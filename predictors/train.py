"""Train the byte-level Transformer on a text file, the way the paper trains on enwik8.

The last `HELD_OUT_FRACTION` of the file is held out: training never samples from it, and
the run ends by coding it the way the benchmark does, each 2048-byte chunk from an empty
context, with the exact incremental path the coder uses (`chunked_bits_per_byte`).

Schedule: AdamW, linear warm-up then cosine decay to `MIN_LR_FRACTION` of the peak,
gradient clipping, bf16 autocast on CUDA. Early steps may use short windows (`seq_len`),
several times cheaper per byte on a CPU than full 2048-byte windows; a short window sits
at a random position offset inside the context so that every position code is trained.
Short windows alone do not teach attention over long contexts, though: in the shipped
run after 1,600 short-window steps, bytes at positions ≥ 512 of a held-out chunk cost
about 1.5 bits more than bytes at positions 16-255. So the last `long_steps` steps use
full-context windows (same bytes per step), the situation the model is evaluated in.

Everything needed to resume (weights, AdamW moments, random generator states, step,
history, options) lives in one safetensors file written atomically, so Ctrl-C leaves either
the previous complete checkpoint or the new one. No pickle anywhere.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from gencomp.constants import CHUNK_SIZE
from gencomp.datasets import DATASETS, DataLocations, Dataset, read_chunks
from gencomp.errors import CheckpointError, OutputExistsError, UsageError
from gencomp.fileio import read_input, write_output, write_text
from predictors.transformer import (
    BEGIN_TOKEN,
    TransformerModel,
    TransformerPredictor,
    load_checkpoint,
    preset,
    resolve_device,
    save_checkpoint,
)

DEFAULT_DATA = Path("../shared/data/text/enwik8_first_4154400_bytes")
HELD_OUT_FRACTION = 0.1
MIN_LR_FRACTION = 0.1
STATE_FILE = "training_state.safetensors"
MODEL_FILE = "model.safetensors"


@dataclass
class TrainOptions:
    data: str = str(DEFAULT_DATA)
    size: str = "200k"
    steps: int = 3000
    batch_size: int = 16
    seq_len: int = 256
    long_steps: int = 1000
    lr: float = 5e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    eval_interval: int = 250
    eval_chunks: int = 16
    checkpoint_interval: int = 100
    #: Data sets to mix, with weights ("text=1,image=1,audio=1"); empty: the text file `data`.
    mix: str = ""
    #: A checkpoint to start from instead of random weights (fine-tuning).
    init: str | None = None
    out: str = "outputs/train"

    def validate(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_interval", "eval_chunks",
                     "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("long_steps", "warmup_steps", "threads", "seed"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative")
        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive finite number")
        parse_mix(self.mix)
        context = preset(self.size).context_length
        if self.seq_len > context:
            raise UsageError(f"--seq-len {self.seq_len} exceeds the model context {context}")


@dataclass
class TrainingRun:
    """What `train` mutates and checkpoints."""

    options: TrainOptions
    model: TransformerModel
    optimizer: torch.optim.AdamW
    generator: torch.Generator
    step: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


# --- data --------------------------------------------------------------------------------


def resolve_data_path(data: str | Path) -> Path:
    """`data` as given, else relative to the repository root (for the default path)."""
    path = Path(data)
    if not path.exists() and not path.is_absolute():
        from_repo_root = Path(__file__).resolve().parents[1] / path
        if from_repo_root.exists():
            return from_repo_root
    return path


def load_splits(data: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) byte arrays: the held-out part is the end of the file."""
    raw = np.frombuffer(bytearray(read_input(resolve_data_path(data))), dtype=np.uint8)
    boundary = int(len(raw) * (1 - HELD_OUT_FRACTION))
    if boundary < 2 or len(raw) - boundary < 1:
        raise UsageError(f"training data {data} is too small ({len(raw)} bytes)")
    return raw[:boundary], raw[boundary:]


#: Mixed training holds out every HELD_OUT_EVERY-th file (image, utterance) of a data set,
#: counted in sorted order; the text held out is the end of the file, as for text alone.
HELD_OUT_EVERY = 5


def parse_mix(mix: str) -> dict[str, float]:
    """"text=2,image=1" → {"text": 2.0, "image": 1.0} (a bare name weighs 1)."""
    weights = {}
    for item in filter(None, (part.strip() for part in mix.split(","))):
        name, _, weight = item.partition("=")
        if name not in DATASETS or name == "random":
            raise UsageError(f"cannot train on {name!r}: choose from text, image, audio")
        try:
            weights[name] = float(weight or 1)
        except ValueError as error:
            raise UsageError(f"bad weight in {item!r}") from error
        if not math.isfinite(weights[name]) or weights[name] <= 0:
            raise UsageError(f"the weight of {name} must be a positive number")
    return weights


@dataclass
class TrainingData:
    """What a run trains on, by data set: a flat byte array (text, windows anywhere) or
    (chunks, 2048) arrays whose windows stay inside one chunk at their own position, as
    compress-bench codes each chunk from an empty context. `held_out` is what the run is
    evaluated on; `weights` how often each data set is drawn."""

    train: dict[str, np.ndarray]
    held_out: dict[str, np.ndarray]
    weights: dict[str, float]


def held_out_files(files: list[str]) -> list[str]:
    """The files of a data set that mixed training never sees (listed in the model card)."""
    return files[HELD_OUT_EVERY - 1::HELD_OUT_EVERY]


def _file_chunks(name: str, files: list[str]) -> np.ndarray:
    source = DATASETS[name]
    dataset = Dataset(source, CHUNK_SIZE, "", files=files)
    chunks = read_chunks(name, dataset.segments(0, dataset.available(1 << 40)))
    return np.frombuffer(bytearray(b"".join(chunks)), dtype=np.uint8).reshape(-1, CHUNK_SIZE)


def load_training_data(options: TrainOptions) -> TrainingData:
    """The run's data: the text file alone, or the data sets of `options.mix`, found where
    compress-bench looks for them, with a fixed held-out part."""
    weights = parse_mix(options.mix)
    if not weights:
        train_data, held_out = load_splits(options.data)
        return TrainingData({"text": train_data}, {"text": held_out}, {"text": 1.0})
    train, held = {}, {}
    for name in weights:
        if name == "text":
            train[name], held[name] = load_splits(DATASETS[name].locate(DataLocations()))
            continue
        files = DATASETS[name].files(DATASETS[name].locate(DataLocations()))
        held_out = held_out_files(files)
        train[name] = _file_chunks(name, [path for path in files if path not in held_out])
        held[name] = _file_chunks(name, held_out).reshape(-1)
    return TrainingData(train, held, weights)


def sample_mixed_batch(data: TrainingData, batch_size: int, seq_len: int,
                       context_length: int, generator: torch.Generator
                       ) -> tuple[torch.Tensor, ...]:
    """`sample_batch` rows drawn from the data sets in proportion to their weights."""
    names = list(data.weights)
    if len(names) == 1 and data.train[names[0]].ndim == 1:
        return sample_batch(data.train[names[0]], batch_size, seq_len, context_length,
                            generator)
    weights = torch.tensor([data.weights[name] for name in names], dtype=torch.float64)
    picks = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
    parts = []
    for index, name in enumerate(names):
        rows = int((picks == index).sum())
        if not rows:
            continue
        array = data.train[name]
        if array.ndim == 1:
            parts.append(sample_batch(array, rows, seq_len, context_length, generator))
        else:
            parts.append(sample_chunk_windows(array, rows, seq_len, generator))
    return tuple(torch.cat(tensors) for tensors in zip(*parts, strict=True))


def sample_chunk_windows(chunks: np.ndarray, batch_size: int, seq_len: int,
                         generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(inputs, targets, first_positions) for windows inside single chunks, each at its
    position in the chunk (an image row's place in the patch is what predicts it)."""
    seq_len = min(seq_len, chunks.shape[1])
    rows = torch.randint(0, len(chunks), (batch_size,), generator=generator)
    offsets = torch.randint(0, chunks.shape[1] - seq_len + 1, (batch_size,),
                            generator=generator)
    index = offsets[:, None] + torch.arange(-1, seq_len)[None, :]
    windows = torch.from_numpy(chunks)[rows[:, None], index.clamp(min=0)].long()
    inputs = windows[:, :-1].clone()
    inputs[offsets == 0, 0] = BEGIN_TOKEN
    return inputs, windows[:, 1:], offsets


def sample_batch(train_data: np.ndarray, batch_size: int, seq_len: int, context_length: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(inputs, targets, first_positions) for random windows of the training split.

    Window `targets[i]` starts at a random byte; it sits at a random position offset in
    the context. At offset 0 its inputs start with the begin token, elsewhere with the
    byte before the window, as if the chunk had started earlier.
    """
    seq_len = min(seq_len, len(train_data) - 1)
    starts = torch.randint(1, len(train_data) - seq_len + 1, (batch_size,), generator=generator)
    offsets = torch.randint(0, context_length - seq_len + 1, (batch_size,), generator=generator)
    index = starts[:, None] + torch.arange(-1, seq_len)[None, :]
    windows = torch.from_numpy(train_data)[index].long()
    inputs = windows[:, :-1].clone()
    inputs[offsets == 0, 0] = BEGIN_TOKEN
    return inputs, windows[:, 1:], offsets


# --- evaluation --------------------------------------------------------------------------


def chunks_of(data: np.ndarray, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    return [data[i : i + chunk_size].tobytes() for i in range(0, len(data), chunk_size)]


def chunked_bits_per_byte(model: TransformerModel, data: np.ndarray, exact: bool = True,
                          batch_size: int = 32) -> float:
    """Mean −log2 p per byte, each chunk coded from an empty context.

    `exact=True` uses the coder's own computation (`TransformerPredictor`: the CPU kernels,
    or torch stepping on a GPU), so this is the ideal code length of what the coder writes.
    `exact=False` scores chunks with the parallel forward pass: equal to float tolerance,
    faster on a GPU, for progress reports.
    """
    chunks = chunks_of(data, min(CHUNK_SIZE, model.config.context_length))
    total_bits = 0.0
    if exact:
        predictor = TransformerPredictor(model, device=str(next(model.parameters()).device))
        for first in range(0, len(chunks), batch_size):
            for log2_probs in predictor.symbol_log2_probs(chunks[first : first + batch_size]):
                total_bits -= float(log2_probs.sum())
        return total_bits / len(data)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for chunk in chunks:
            targets = torch.frombuffer(bytearray(chunk), dtype=torch.uint8).long()[None].to(device)
            inputs = torch.cat([torch.full_like(targets[:, :1], BEGIN_TOKEN), targets[:, :-1]], 1)
            log_probs = torch.log_softmax(model(inputs).double(), dim=-1)
            total_bits -= float(log_probs.gather(-1, targets[..., None]).sum()) / math.log(2)
    model.train(was_training)
    return total_bits / len(data)


def spread_subset(data: np.ndarray, num_chunks: int) -> np.ndarray:
    """`num_chunks` whole chunks spread evenly over `data`, for quick progress evals."""
    chunks = chunks_of(data)
    chosen = np.linspace(0, len(chunks) - 1, min(num_chunks, len(chunks))).round().astype(int)
    return np.frombuffer(b"".join(chunks[i] for i in sorted(set(chosen))), dtype=np.uint8)


# --- schedule and step --------------------------------------------------------------------


def learning_rate(options: TrainOptions, step: int) -> float:
    if step < options.warmup_steps:
        return options.lr * (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return options.lr * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * cosine)


def window_shape(options: TrainOptions, step: int, context_length: int) -> tuple[int, int]:
    """(batch, length) at `step`: full-context windows, same tokens, for the last
    `long_steps` steps (all of them if `long_steps` ≥ `steps`)."""
    if step < options.steps - options.long_steps or options.seq_len >= context_length:
        return options.batch_size, options.seq_len
    return max(1, options.batch_size * options.seq_len // context_length), context_length


def train_step(run: TrainingRun, train_data: TrainingData, device: torch.device) -> float:
    """One optimiser step; returns the training loss in bits per byte."""
    model, options = run.model, run.options
    context_length = model.config.context_length
    batch_size, seq_len = window_shape(options, run.step, context_length)
    inputs, targets, offsets = (
        tensor.to(device)
        for tensor in sample_mixed_batch(train_data, batch_size, seq_len, context_length,
                                         run.generator)
    )
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(options, run.step)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(inputs, first_positions=offsets)
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
    run.optimizer.step()
    run.step += 1
    run.tokens += targets.numel()
    return loss.item() / math.log(2)


# --- checkpoints ---------------------------------------------------------------------------


def save_training_state(run: TrainingRun, out: Path) -> None:
    """Weights, AdamW moments and generator states in one atomically written file, plus
    the usable model checkpoint (model.safetensors + model.json)."""
    tensors = {f"model.{name}": tensor.detach().cpu().contiguous()
               for name, tensor in run.model.state_dict().items()}
    optimizer_state = run.optimizer.state_dict()
    for index, moments in optimizer_state["state"].items():
        for key, value in moments.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().reshape(-1).contiguous() \
                if key == "step" else value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batches"] = run.generator.get_state()
    metadata = {
        "step": str(run.step),
        "tokens": str(run.tokens),
        "elapsed_s": repr(run.elapsed_s),
        "options": json.dumps(asdict(run.options)),
        "history": json.dumps(run.history),
        "param_groups": json.dumps(optimizer_state["param_groups"]),
    }
    write_output(out / STATE_FILE, safetensors.torch.save(tensors, metadata=metadata), force=True)
    save_checkpoint(run.model, out / MODEL_FILE,
                    {"training": {"step": run.step, "tokens": run.tokens,
                                  "options": asdict(run.options)}})


def stored_options(out: Path) -> dict[str, Any]:
    """The options a run in `out` was started with (for `--resume`)."""
    return json.loads(_read_state(out)[1]["options"])


def _read_state(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = out / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} not found")
    try:
        data = path.read_bytes()
        tensors = safetensors.torch.load(data)
        with safetensors.safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        json.loads(metadata["options"])
    except (SafetensorError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"corrupt training state {path}: {error}") from error
    return tensors, metadata


def restore_training_state(run: TrainingRun, out: Path) -> None:
    tensors, metadata = _read_state(out)
    try:
        run.model.load_state_dict({name.removeprefix("model."): tensor
                                   for name, tensor in tensors.items()
                                   if name.startswith("model.")})
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for name, tensor in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".")
                moments.setdefault(int(index), {})[key] = tensor.reshape(()) if key == "step" \
                    else tensor
        run.optimizer.load_state_dict({"state": moments,
                                       "param_groups": json.loads(metadata["param_groups"])})
        torch.set_rng_state(tensors["rng.torch"])
        run.generator.set_state(tensors["rng.batches"])
        run.step = int(metadata["step"])
        run.tokens = int(metadata["tokens"])
        run.elapsed_s = float(metadata["elapsed_s"])
        run.history = json.loads(metadata["history"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"training state in {out} does not fit this model: {error}") \
            from error


# --- reporting -----------------------------------------------------------------------------


def plot_curve(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    axes.plot([row["tokens"] / 1e6 for row in history], [row["train_bits"] for row in history],
              label="train (window loss)", linewidth=1)
    evals = [row for row in history if "held_out_bits" in row]
    axes.plot([row["tokens"] / 1e6 for row in evals], [row["held_out_bits"] for row in evals],
              "o-", label="held-out chunks (2048 B, empty context)")
    axes.set_xlabel("training tokens (millions)")
    axes.set_ylabel("bits per byte")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_output(path, buffer.getvalue(), force=True)


# --- the loop ------------------------------------------------------------------------------


def train(options: TrainOptions, resume: bool = False, show_progress: bool = True
          ) -> dict[str, Any]:
    """Train (or resume) into `options.out`; returns the run summary (also summary.json)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    options.validate()
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out is not a directory: {out}")
    if not resume and (out / STATE_FILE).exists():
        raise OutputExistsError(f"{out} already holds a training run (use --resume to "
                                f"continue it, or another --out)")
    data = load_training_data(options)
    device = resolve_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(options.seed)
    model = (load_checkpoint(resolve_data_path(options.init))[0] if options.init
             else TransformerModel(preset(options.size))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay, betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(options.seed)
    run = TrainingRun(options, model, optimizer, generator)
    if resume:
        restore_training_state(run, out)
    eval_data = {name: spread_subset(held_out, options.eval_chunks)
                 for name, held_out in data.held_out.items()}

    model.train()
    started = time.perf_counter() - run.elapsed_s
    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} steps"), TextColumn("{task.fields[status]}"),
                  TimeRemainingColumn(), disable=not show_progress) as progress:
        task = progress.add_task("train", total=options.steps, completed=run.step, status="")
        while run.step < options.steps:
            train_bits = train_step(run, data, device)
            if not math.isfinite(train_bits):
                raise UsageError(f"training diverged at step {run.step} (loss {train_bits}); "
                                 f"try a lower --lr")
            run.elapsed_s = time.perf_counter() - started
            row = {"step": run.step, "tokens": run.tokens, "train_bits": train_bits,
                   "lr": learning_rate(options, run.step - 1), "elapsed_s": run.elapsed_s}
            if run.step % options.eval_interval == 0 or run.step == options.steps:
                for name, held_out in eval_data.items():
                    row[f"held_out_bits_{name}"] = chunked_bits_per_byte(model, held_out,
                                                                         exact=False)
                row["held_out_bits"] = row[f"held_out_bits_{next(iter(eval_data))}"]
                model.train()
            run.history.append(row)
            if "held_out_bits" in row:
                held_out_text = "  ".join(f"{name} {row[f'held_out_bits_{name}']:.3f}"
                                          for name in eval_data)
                progress.console.print(
                    f"step {run.step}  tokens {run.tokens:,}  train {train_bits:.3f} b/B  "
                    f"held-out b/B: {held_out_text}  {run.elapsed_s:.0f} s")
            if run.step % options.checkpoint_interval == 0 or run.step == options.steps:
                save_training_state(run, out)
            held = next((r["held_out_bits"] for r in reversed(run.history)
                         if "held_out_bits" in r), None)
            held_text = "not yet measured" if held is None else f"{held:.3f} b/B"
            progress.update(task, completed=run.step,
                            status=f"loss {train_bits:.3f} b/B  held-out {held_text}")

    model.eval()
    evaluation_started = time.perf_counter()
    held_out = data.held_out["text"] if "text" in data.held_out else next(
        iter(data.held_out.values()))
    held_out_bits = chunked_bits_per_byte(model, held_out, exact=True)
    summary = {
        "steps": run.step,
        "tokens": run.tokens,
        "num_parameters": model.num_parameters,
        "config": asdict(model.config),
        "held_out_bytes": len(held_out),
        "held_out_chunks": len(chunks_of(held_out)),
        "held_out_bits_per_byte": held_out_bits,
        "held_out_chunked_rate_percent": 100 * held_out_bits / 8,
        "evaluation": "exact incremental (coding) path, each 2048-byte chunk from an empty "
                      "context",
        "evaluation_s": time.perf_counter() - evaluation_started,
        "train_time_s": run.elapsed_s,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "hardware": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "options": asdict(options),
    }
    save_checkpoint(model, out / MODEL_FILE,
                    {"training": {key: summary[key] for key in
                                  ("steps", "tokens", "held_out_bits_per_byte",
                                   "held_out_chunked_rate_percent", "options")}})
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot_curve(run.history, out / "curve.png")
    return summary


def options_for(out: str, resume: bool, given: dict[str, Any]) -> TrainOptions:
    """Options for a run: the stored ones when resuming, overridden by those `given`."""
    base = TrainOptions(**stored_options(Path(out))) if resume else TrainOptions()
    return replace(base, out=out, **{key: value for key, value in given.items()
                                     if value is not None})
