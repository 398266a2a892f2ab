"""`gencomp compress-bench`: Table 1 of the paper on local data, resumable and parallel."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gencomp.commands import invocation
from gencomp.commands.codec import parse_params
from gencomp.commands.progress import PROGRESS_HELP, Estimate, EstimateColumn, on_terminal
from gencomp.compressor import compressor_spec
from gencomp.constants import CHUNK_SIZE, DATA_ENV
from gencomp.errors import UsageError

if TYPE_CHECKING:
    from gencomp.bench import Task


def parse_compressor_params(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """`["lzma2.preset=9"]` → {"lzma2": {"preset": 9}}."""
    params: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        name, separator, rest = assignment.partition(".")
        if not separator or not name or "=" not in rest:
            raise UsageError(f"--param takes COMPRESSOR.KEY=VALUE, got {assignment!r}")
        params.setdefault(name, {}).update(parse_params([rest]))
    return params


def canonical_names(names: str | None) -> str | None:
    """The registry's names for a comma-separated list (`xz` is lzma2); `all` and
    `classical` as they are."""
    if names is None or names in ("all", "classical"):
        return names
    return ",".join(compressor_spec(name.strip()).name for name in names.split(",")
                    if name.strip())


def timed_early(tasks: Sequence[Task]) -> list[Task]:
    """The tasks in an order that times every kind soon: the unchunked ones (the longest,
    planned first), then one chunked task of each compressor, then the rest. Results do
    not depend on the order; the time-left estimate does."""
    first: dict[str, Task] = {}
    for task in tasks:
        if task.mode == "chunked":
            first.setdefault(task.compressor.name, task)
    early = [task for task in tasks if task.mode == "unchunked"] + list(first.values())
    return early + [task for task in tasks if task not in early]


class TaskCosts:
    """Seconds per chunk of each kind of task (compressor, data set, mode), from the tasks
    that finished, and the time left they imply. A kind not timed yet borrows the cost of
    the same compressor and mode on another data set; with none, the estimate is a lower
    bound. The cm and Transformer tasks cost ~100× a classical codec's per chunk, so one
    rate for all chunks (rich's) would promise seconds while they run for minutes."""

    def __init__(self, tasks: Sequence[Task], workers: int) -> None:
        self.left = {task.key: task for task in tasks}
        self.workers = workers
        self.spent: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0])

    def finished(self, task: Task, result: dict[str, Any]) -> None:
        self.left.pop(task.key, None)
        spent = self.spent[task.compressor.name, task.dataset, task.mode]
        spent[0] += result.get("seconds", 0.0) + result.get("read_seconds", 0.0)
        spent[1] += task.num_chunks

    def _per_chunk(self, task: Task) -> float | None:
        exact = self.spent.get((task.compressor.name, task.dataset, task.mode))
        if exact:
            return exact[0] / exact[1]
        similar = [spent for (name, _, mode), spent in self.spent.items()
                   if name == task.compressor.name and mode == task.mode]
        return sum(seconds for seconds, _ in similar) / sum(chunks for _, chunks in similar) \
            if similar else None

    def estimate(self, compressor: str | None = None) -> Estimate:
        """Time left for every task (or `compressor`'s), spread over the workers."""
        seconds, complete = 0.0, True
        left = [task for task in self.left.values()
                if compressor is None or task.compressor.name == compressor]
        for task in left:
            cost = self._per_chunk(task)
            if cost is None:
                complete = False
            else:
                seconds += cost * task.num_chunks
        share = max(1, min(self.workers, len(self.left)))
        return Estimate(seconds / share, complete, time.monotonic())


def _choose_executor(executor: str | None, workers: int, scheduler: str | None) -> str:
    from gencomp.bench import EXECUTORS
    if scheduler is not None:
        if executor not in (None, "dask"):
            raise UsageError("--scheduler needs --executor dask (or no --executor)")
        return "dask"
    if executor is None:
        return "processes" if workers > 1 else "inprocess"
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    return executor


def compress_bench(
    compressor: str | None = typer.Option(
        None, "-c", "--compressor",
        help="Comma-separated names; default: every classical codec; 'all' adds the models."),
    dataset: str = typer.Option("text,image,audio,random", "-d", "--dataset",
                                help="Comma-separated: text, image, audio, random."),
    num_chunks: int = typer.Option(2000, "-n", "--num-chunks",
                                   help="Chunks per data set (the paper: 488281 = 1 GB)."),
    chunk_size: int = typer.Option(CHUNK_SIZE, "--chunk-size", help="Bytes per chunk."),
    task_chunks: int = typer.Option(250, "--task-chunks", help="Chunks per task."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random data set."),
    param: list[str] = typer.Option([], "--param",
                                    help="Compressor parameter NAME.KEY=VALUE (lzma2.preset=9)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help=f"Data folder laid out like ../shared/data (else ${DATA_ENV}, "
                                 "../shared/data, ~/.cache/gencomp)."),
    text_file: Path | None = typer.Option(None, "--text-file", help="An enwik8/enwik9 file."),
    image_dir: Path | None = typer.Option(None, "--image-dir", help="A folder of JPEG/PNG."),
    audio_dir: Path | None = typer.Option(None, "--audio-dir", help="A folder of FLAC files."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Run folder (default outputs/bench/RUN)."),
    run_name: str | None = typer.Option(None, "--run-name",
                                        help="RUN in the default folder (default: a timestamp)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder."),
    force: bool = typer.Option(False, "--force", help="Start the output folder's run over."),
    workers: int = typer.Option(1, "-w", "--workers", help="Worker processes."),
    executor: str | None = typer.Option(
        None, "--executor", help="inprocess, processes (default with --workers > 1) or dask."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="A Dask scheduler address, tcp://HOST:PORT."),
    progress: bool = typer.Option(on_terminal(), "--progress/--no-progress", help=PROGRESS_HELP,
                                  show_default=False),
) -> None:
    """Compression rates of every compressor on every data set, beside the paper's Table 1."""
    # Imported here, not at the top, so that every other command starts without them.
    from gencomp.bench import (
        BenchSettings,
        assemble,
        choose_compressors,
        plan_tasks,
        run_plan,
        task_path,
    )
    from gencomp.bench_report import print_report, write_outputs
    from gencomp.datasets import DataLocations

    if output is None:
        if resume and run_name is None:
            raise UsageError("--resume needs the run's folder: -o DIR or --run-name NAME")
        output = Path("outputs") / "bench" / (run_name or time.strftime("%Y%m%d-%H%M%S"))
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if output.exists() and not output.is_dir():
        raise UsageError(f"output is not a folder: {output}")
    executor = _choose_executor(executor, workers, scheduler)
    settings = BenchSettings(
        compressors=choose_compressors(canonical_names(compressor),
                                       parse_compressor_params(param), chunk_size),
        datasets=tuple(name.strip() for name in dataset.split(",") if name.strip()),
        num_chunks=num_chunks, chunk_size=chunk_size, task_chunks=task_chunks, seed=seed)
    given = {"text": text_file, "image": image_dir, "audio": audio_dir}
    locations = DataLocations(data_dir, {name: path for name, path in given.items() if path})
    plan = plan_tasks(settings, locations)
    errors = Console(stderr=True)
    for warning in plan.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")

    plan = dataclasses.replace(plan, tasks=tuple(timed_early(plan.tasks)))
    costs = TaskCosts(plan.tasks, 1 if executor == "inprocess" else workers)
    bars = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("chunks"), TimeElapsedColumn(), EstimateColumn(),
                    console=errors, transient=True, disable=not progress)
    chunks = {choice.name: 0 for choice in settings.compressors}
    for task in plan.tasks:
        chunks[task.compressor.name] += task.num_chunks
    overall = bars.add_task("all", total=sum(chunks.values()), estimate=costs.estimate())
    per_compressor = {name: bars.add_task(name, total=total, estimate=costs.estimate(name))
                      for name, total in chunks.items()}

    def advance(task: Task, result: dict[str, Any]) -> None:
        costs.finished(task, result)
        bars.update(overall, advance=task.num_chunks, estimate=costs.estimate())
        for name, bar in per_compressor.items():
            bars.update(bar, advance=task.num_chunks if name == task.compressor.name else 0,
                        estimate=costs.estimate(name))

    try:
        with bars:
            outcome = run_plan(plan, output, executor, workers, scheduler, resume, force,
                               on_result=advance, command=invocation())
    except KeyboardInterrupt:
        stored = sum(task_path(output, task).exists() for task in plan.tasks)
        print(f"gencomp: {stored} of {len(plan.tasks)} tasks are stored in {output}; "
              f"continue with --resume -o {output}", file=sys.stderr)
        raise
    rows = assemble(outcome)
    print_report(rows, outcome, Console())
    write_outputs(output, rows, outcome)
    errors.print(f"{outcome.executed} tasks run, {outcome.reused} reused, "
                 f"{outcome.wall_seconds:.1f} s; wrote {output}/results.json, results.csv, "
                 "table.md, figure.png")


def register(app: typer.Typer) -> None:
    app.command("compress-bench")(compress_bench)
