"""Table 1 of the paper as independent tasks: compression rates of every compressor on every
data set, chunked and unchunked, resumable and spread over processes or Dask workers.

Rates (in percent of the raw size), as the paper's `compress.py` computes them:

- chunked: each chunk compressed alone. Classical compressors write a header per chunk,
  which a real deployment would store once, so the paper counts it once: from the summed
  code lengths it subtracts ℓ_C(one zero byte) for all chunks but one,

      rate = (Σ_i ℓ_C(chunk_i) − (n − 1) · ℓ_C(0x00)) / (8 · n · chunk_size).

  Model compressors have no header: rate = Σ_i ℓ_C(chunk_i) / (8 · n · chunk_size).
- unchunked: all n chunks concatenated and compressed once (at paper scale, 1 GB in one
  call: the paper's whole-file compression, and as much memory as the data plus the codec's
  working set). Model compressors code each chunk with a fresh context of one chunk (the
  paper's 2048-byte context), so they have no separate unchunked rate and no such task.
- adjusted (model compressors): the compressed size plus the model's parameters at 2 bytes
  each, over the raw size, for the data actually compressed and scaled to the paper's 1 GB.

ℓ_C is always `Compressor.code_length_bits`. For lzma2 that is raw LZMA2, while the paper
measured `lzma.compress` (.xz container) with the same header-once accounting. Counting the
header once removes most of the container but not all (block padding, longer size fields
for 2048 bytes than for the one-byte probe): .xz is about 2.5 bytes per chunk larger, 0.12
point on the chunked rates, 0.002 point unchunked (tests/test_bench_paper.py measures it).

Work is a list of `Task`s, each a chunk range of one (compressor, data set, mode). A task
reads its own chunks (`gencomp.datasets.read_chunks`) and returns summed code lengths and
timings; the main process stores each result as one JSON file as soon as it arrives, so
an interrupted run resumes where it stopped, and the table is assembled from the stored
results alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gencomp.compressor import Compressor, compressor_spec, compressor_specs, get_compressor
from gencomp.constants import CHUNK_SIZE
from gencomp.datasets import DataLocations, Segment, open_dataset, read_chunks
from gencomp.errors import OutputExistsError, UsageError
from gencomp.fileio import write_text
from gencomp.processes import process_pool, wait_first

PAPER_COMPRESSORS = ("gzip", "lzma2", "png", "flac", "transformer")
PAPER_NUM_CHUNKS = 488_281
PAPER_BYTES = PAPER_NUM_CHUNKS * CHUNK_SIZE
HEADER_PROBE = b"\x00"
BYTES_PER_PARAMETER = 2
EXECUTORS = ("inprocess", "processes", "dask")
MANIFEST = "run.json"
OUTPUT_FILES = ("results.json", "results.csv", "table.md", "figure.png")
TASKS_FOLDER = "tasks"
FORMAT = "gencomp-bench"
VERSION = 1


@dataclass(frozen=True)
class CompressorChoice:
    """A compressor to benchmark: registry name, the parameters given (canonical JSON, so
    the choice is hashable and compares equal across runs) and whether it is a model."""

    name: str
    params_json: str = "{}"
    is_model: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)


def choose_compressors(names: str | None, params: dict[str, dict[str, Any]] | None = None,
                       chunk_size: int = CHUNK_SIZE) -> tuple[CompressorChoice, ...]:
    """'gzip,lzma2' → those; None → every classical codec; 'all' → also the models (the
    paper's compressors first, in the order of its Table 1).

    `params` maps a compressor name to its parameters. A model compressor codes the
    paper's independent chunks of `chunk_size` bytes unless its parameters say otherwise
    (as files, models stream by default). Every choice is built once here, so a bad name
    or parameter fails before any work starts."""
    specs = {spec.name: spec for spec in compressor_specs()}
    ordered = [*(name for name in PAPER_COMPRESSORS if name in specs),
               *(name for name in specs if name not in PAPER_COMPRESSORS)]
    if names is None or names == "classical":
        chosen = [name for name in ordered if not specs[name].is_model]
    elif names == "all":
        chosen = ordered
    else:
        chosen = [name.strip() for name in names.split(",") if name.strip()]
    params = {name: dict(given) for name, given in (params or {}).items()}
    unused = sorted(set(params) - set(chosen))
    if unused:
        raise UsageError(f"--param given for {', '.join(unused)}, which is not benchmarked")
    if len(set(chosen)) != len(chosen) or not chosen:
        raise UsageError(f"choose each compressor once, got {names!r}")
    choices = []
    for name in chosen:
        if name in specs and "device" in specs[name].defaults:
            params.setdefault(name, {}).setdefault("device", "auto")  # the worker's GPU if any
        if name in specs and specs[name].is_model:
            params.setdefault(name, {}).setdefault("chunk_size", chunk_size)
        get_compressor(name, **params.get(name, {}))  # validates name and parameters
        choices.append(CompressorChoice(name, json.dumps(params.get(name, {}), sort_keys=True),
                                        specs[name].is_model))
    return tuple(choices)


@dataclass(frozen=True)
class Task:
    """Chunks [start, stop) of one data set, for one compressor and one mode."""

    compressor: CompressorChoice
    dataset: str
    mode: str  # "chunked" or "unchunked"
    start: int
    stop: int
    chunk_size: int
    segments: tuple[Segment, ...] = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        """A file-name-safe identifier, unique within a run."""
        return (f"{self.compressor.name}--{self.dataset}--{self.mode}--"
                f"{self.start:09d}-{self.stop:09d}")

    @property
    def num_chunks(self) -> int:
        return self.stop - self.start

    def identity(self) -> dict[str, Any]:
        """What a stored result must match to be reused."""
        return {"key": self.key, "compressor": self.compressor.name,
                "params": self.compressor.params, "dataset": self.dataset, "mode": self.mode,
                "start": self.start, "stop": self.stop, "chunk_size": self.chunk_size}


@dataclass(frozen=True)
class BenchSettings:
    compressors: tuple[CompressorChoice, ...]
    datasets: tuple[str, ...]
    num_chunks: int = 2000
    chunk_size: int = CHUNK_SIZE
    task_chunks: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_chunks", "chunk_size", "task_chunks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', '-')} must be a positive integer, "
                                 f"got {value!r}")
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise UsageError(f"choose each data set once, got {','.join(self.datasets)!r}")

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["compressors"] = [{"name": choice.name, "params": choice.params}
                                 for choice in self.compressors]
        values["datasets"] = list(self.datasets)
        return values


@dataclass(frozen=True)
class Plan:
    """The tasks of a run and what each data set turned out to hold."""

    settings: BenchSettings
    tasks: tuple[Task, ...]
    data: dict[str, dict[str, Any]]  # data set → {"location", "num_chunks"}
    warnings: tuple[str, ...] = ()


def plan_tasks(settings: BenchSettings, locations: DataLocations) -> Plan:
    """Index the data sets (only as far as needed) and cut the work into tasks.

    The unchunked tasks come first: they are the longest, and starting them early keeps
    the workers busy to the end."""
    for choice in settings.compressors:
        model_chunk_size = choice.params.get("chunk_size",
                                             compressor_spec(choice.name).defaults.get("chunk_size"))
        if choice.is_model and model_chunk_size != settings.chunk_size:
            raise UsageError(f"{choice.name} codes chunks of {model_chunk_size} bytes, the "
                             f"benchmark {settings.chunk_size}: pass --param "
                             f"{choice.name}.chunk_size={settings.chunk_size}")
    data: dict[str, dict[str, Any]] = {}
    segments_of: dict[str, Callable[[int, int], tuple[Segment, ...]]] = {}
    warnings = []
    for name in settings.datasets:
        dataset = open_dataset(name, locations, settings.chunk_size, settings.seed)
        available = dataset.available(settings.num_chunks)
        if available == 0:
            raise UsageError(f"{name} data at {dataset.location} holds no whole chunk of "
                             f"{settings.chunk_size} bytes")
        if available < settings.num_chunks:
            warnings.append(f"{name}: only {available} chunks available at {dataset.location} "
                            f"(asked for {settings.num_chunks})")
        data[name] = {"location": dataset.location, "num_chunks": available}
        segments_of[name] = dataset.segments
    unchunked, chunked = [], []
    for choice in settings.compressors:
        for name in settings.datasets:
            total = data[name]["num_chunks"]
            if not choice.is_model:
                unchunked.append(Task(choice, name, "unchunked", 0, total, settings.chunk_size,
                                      segments_of[name](0, total)))
            for start in range(0, total, settings.task_chunks):
                stop = min(total, start + settings.task_chunks)
                chunked.append(Task(choice, name, "chunked", start, stop, settings.chunk_size,
                                    segments_of[name](start, stop)))
    return Plan(settings, tuple(unchunked + chunked), data, tuple(warnings))


# --- Running one task (in this process, a worker process, or a Dask worker) -------------

_worker_state = threading.local()


def worker_compressor(choice: CompressorChoice) -> Compressor:
    """The compressor for `choice`, built once per worker thread and reused by its tasks.

    Model compressors load their weights (and pick the worker's GPU when it has one) once,
    not once per task. Per thread rather than per process because codec objects such as
    zstd's compression context must not be shared between threads (Dask's threaded
    workers)."""
    cache = getattr(_worker_state, "compressors", None)
    if cache is None:
        cache = _worker_state.compressors = {}
    if choice not in cache:
        cache[choice] = get_compressor(choice.name, **choice.params)
    return cache[choice]


def run_task(task: Task) -> dict[str, Any]:
    """Read the task's chunks, compress them, return summed code lengths and timings."""
    compressor = worker_compressor(task.compressor)
    began = time.perf_counter()
    chunks = read_chunks(task.dataset, task.segments, task.chunk_size)
    read_seconds = time.perf_counter() - began
    began, began_cpu = time.perf_counter(), time.process_time()
    if task.mode == "unchunked" or task.compressor.is_model:
        # A model compressor cuts its input into chunks of its own chunk size (checked to
        # be the benchmark's in plan_tasks) and codes each from a fresh context, batched:
        # the sum of the per-chunk code lengths, much faster than one chunk at a time.
        bits = compressor.code_length_bits(b"".join(chunks))
    else:
        bits = math.fsum(compressor.code_length_bits(chunk) for chunk in chunks)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
    header_bits = 0.0
    if task.mode == "chunked" and not task.compressor.is_model:
        header_bits = compressor.code_length_bits(HEADER_PROBE)
    return {**task.identity(), "num_chunks": len(chunks),
            "raw_bytes": sum(len(chunk) for chunk in chunks), "code_length_bits": bits,
            "header_bits": header_bits, "num_parameters": compressor.num_parameters,
            "seconds": seconds, "cpu_seconds": cpu_seconds, "read_seconds": read_seconds,
            "device": str(getattr(compressor.predictor, "device", "cpu")),
            "held_out_rate": getattr(compressor.predictor, "held_out_rate_percent", None),
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


# --- Executors: each yields task results as they finish ---------------------------------

def _in_process(tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield run_task(task)


def _processes(tasks: Sequence[Task], workers: int) -> Iterator[dict[str, Any]]:
    with process_pool(workers) as pool:
        pending = {pool.submit(run_task, task) for task in tasks}
        while pending:
            done, pending = wait_first(pending)
            for future in done:
                yield future.result()


def _dask(tasks: Sequence[Task], workers: int, scheduler: str | None
          ) -> Iterator[dict[str, Any]]:
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    try:
        client = Client(cluster if cluster is not None else scheduler)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise UsageError(f"cannot reach the Dask scheduler {scheduler}: {error}") from error
    futures = []
    try:
        futures = client.map(run_task, list(tasks), key=[f"gencomp-{task.key}" for task in tasks],
                             pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


def execute(tasks: Sequence[Task], executor: str = "inprocess", workers: int = 1,
            scheduler: str | None = None) -> Iterator[dict[str, Any]]:
    """Run tasks with the chosen executor; yield each result when it is ready (in
    completion order, which does not change any rate: results are keyed by task)."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    if executor == "dask":
        return _dask(tasks, workers, scheduler)
    if executor == "processes":
        return _processes(tasks, workers)
    return _in_process(tasks)


# --- Storing task results: one JSON file per task, written atomically -------------------

def task_path(output: Path, task: Task) -> Path:
    return output / TASKS_FOLDER / f"{task.key}.json"


def load_task_result(output: Path, task: Task) -> dict[str, Any] | None:
    """A stored result for exactly this task, or None (absent, unreadable, or another
    task's settings): such a task simply runs again."""
    try:
        result = json.loads(task_path(output, task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    identity = task.identity()
    if not isinstance(result, dict) or any(result.get(k) != v for k, v in identity.items()):
        return None
    return result


def store_task_result(output: Path, task: Task, result: dict[str, Any]) -> None:
    write_text(task_path(output, task), json.dumps(result, indent=1, sort_keys=True))


def _manifest(plan: Plan) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "settings": plan.settings.to_json(),
            "data": plan.data}


def prepare_output(output: Path, plan: Plan, resume: bool, force: bool,
                   command: str | None = None) -> None:
    """Create the run folder, or check that --resume continues the same run.

    Without --resume or --force an existing run is never touched; --force removes only the
    files a run writes. `command`, the command line that started the run, is recorded."""
    manifest_path = output / MANIFEST
    manifest = _manifest(plan)
    if output.exists() and not output.is_dir():
        raise UsageError(f"output {output} is a file, not a folder")
    if resume:
        if not manifest_path.exists():
            raise UsageError(f"nothing to resume: {manifest_path} does not exist")
        try:
            stored = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {manifest_path}: {error}") from error
        for section in ("settings", "data"):
            if stored.get(section) != manifest[section]:
                differing = sorted(key for key in manifest[section]
                                   if stored.get(section, {}).get(key) != manifest[section][key])
                raise UsageError(f"cannot resume {output}: it was run with other {section} "
                                 f"({', '.join(differing)}); repeat the original options")
        return
    if output.exists() and any(output.iterdir()):
        if not force:
            raise OutputExistsError(f"output folder {output} is not empty; use --resume to "
                                    f"continue its run or --force to start over")
        for name in (MANIFEST, *OUTPUT_FILES):
            (output / name).unlink(missing_ok=True)
        for stored_task in (output / TASKS_FOLDER).glob("*.json"):
            stored_task.unlink()
    (output / TASKS_FOLDER).mkdir(parents=True, exist_ok=True)
    if command is not None:
        manifest["command"] = command
    write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))


# --- Running a whole benchmark ----------------------------------------------------------

@dataclass
class RunOutcome:
    """Every task's result, and how many ran now versus were reused from an earlier run."""

    plan: Plan
    results: dict[str, dict[str, Any]]
    executed: int
    reused: int
    wall_seconds: float


def run_plan(plan: Plan, output: Path, executor: str = "inprocess", workers: int = 1,
             scheduler: str | None = None, resume: bool = False, force: bool = False,
             on_result: Callable[[Task, dict[str, Any]], None] | None = None,
             command: str | None = None) -> RunOutcome:
    """Run the tasks that have no stored result yet and store each result as it arrives.

    `on_result` is called for every task, stored or new (progress bars); `command` is
    recorded in the run's manifest."""
    prepare_output(output, plan, resume, force, command)
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    to_run = []
    for task in plan.tasks:
        stored = load_task_result(output, task) if resume else None
        if stored is None:
            to_run.append(task)
        else:
            results[task.key] = stored
            if on_result:
                on_result(task, stored)
    by_key = {task.key: task for task in to_run}
    # closing(): on Ctrl-C or an error the executor stops its workers right away, not
    # whenever the traceback that holds the generator is freed.
    with contextlib.closing(execute(to_run, executor, workers, scheduler)) as finished:
        for result in finished:
            task = by_key[result["key"]]
            store_task_result(output, task, result)
            results[task.key] = result
            if on_result:
                on_result(task, result)
    return RunOutcome(plan, results, len(to_run), len(plan.tasks) - len(to_run),
                      time.perf_counter() - began)


def _rate(bits: float, raw_bytes: int) -> float:
    return 100.0 * bits / (8.0 * raw_bytes)


def assemble(outcome: RunOutcome) -> list[dict[str, Any]]:
    """One row per (compressor, data set) from the task results alone.

    Sums run in task order, so the rates do not depend on which worker finished first."""
    rows = []
    for choice in outcome.plan.settings.compressors:
        for name in outcome.plan.settings.datasets:
            tasks = [task for task in outcome.plan.tasks
                     if task.compressor == choice and task.dataset == name]
            chunked = [outcome.results[task.key] for task in tasks if task.mode == "chunked"]
            unchunked = [outcome.results[task.key] for task in tasks if task.mode == "unchunked"]
            num_chunks = sum(result["num_chunks"] for result in chunked)
            raw_bytes = sum(result["raw_bytes"] for result in chunked)
            bits = math.fsum(result["code_length_bits"] for result in chunked)
            header_bits = chunked[0]["header_bits"]
            num_parameters = chunked[0]["num_parameters"]
            seconds = math.fsum(result["seconds"] for result in chunked)
            cpu_seconds = math.fsum(result["cpu_seconds"] for result in chunked)
            row: dict[str, Any] = {
                "compressor": choice.name, "params": choice.params, "is_model": choice.is_model,
                "device": chunked[0]["device"],
                "dataset": name, "num_chunks": num_chunks, "raw_bytes": raw_bytes,
                "chunked_bits": bits, "header_bits": header_bits,
                "chunked_rate": _rate(bits - (num_chunks - 1) * header_bits, raw_bytes),
                "unchunked_rate": None, "unchunked_seconds": None,
                "unchunked_cpu_seconds": None, "unchunked_mb_per_s": None,
                "num_parameters": num_parameters, "adjusted_rate": None,
                "held_out_rate": chunked[0].get("held_out_rate"),
                "adjusted_rate_1gb": None, "chunked_seconds": seconds,
                "chunked_cpu_seconds": cpu_seconds, "seconds_per_chunk": seconds / num_chunks,
                "chunked_mb_per_s": raw_bytes / seconds / 1e6 if seconds else None,
            }
            if unchunked:
                whole = unchunked[0]
                row["unchunked_rate"] = _rate(whole["code_length_bits"], whole["raw_bytes"])
                row["unchunked_seconds"] = whole["seconds"]
                row["unchunked_cpu_seconds"] = whole["cpu_seconds"]
                row["unchunked_mb_per_s"] = (whole["raw_bytes"] / whole["seconds"] / 1e6
                                             if whole["seconds"] else None)
            if choice.is_model:
                model_bits = 8.0 * BYTES_PER_PARAMETER * num_parameters
                row["adjusted_rate"] = _rate(bits + model_bits, raw_bytes)
                row["adjusted_rate_1gb"] = row["chunked_rate"] + _rate(model_bits, PAPER_BYTES)
            rows.append(row)
    return rows
