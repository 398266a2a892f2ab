"""Progress on the terminal for commands that take more than a moment.

Bars are drawn on stderr, and only when stderr is a terminal: piped or logged output stays
clean (`--progress` forces them, `--no-progress` turns them off). The library reports
progress through plain callables; only this module knows how it is drawn.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from gencomp.gallery import Job

PROGRESS_HELP = "Show progress bars on stderr (default: when stderr is a terminal)."


def on_terminal() -> bool:
    """Whether bars would be seen: stderr is a terminal."""
    return sys.stderr.isatty()


def errors_console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def model_coding_progress(enabled: bool, description: str) -> Iterator[None]:
    """A bar of the chunks a model compressor has coded, for the block's `compress` or
    `decompress` (through `gencomp.codecs.predictive.coding_progress`)."""
    if not enabled:
        yield
        return
    from gencomp.codecs.predictive import coding_progress

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("chunks"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=errors_console(), transient=True) as progress:
        bar = progress.add_task(description, total=None)
        token = coding_progress.set(
            lambda done, total: progress.update(bar, completed=done, total=total))
        try:
            yield
        finally:
            coding_progress.reset(token)


@contextlib.contextmanager
def status(enabled: bool, message: str) -> Iterator[None]:
    """A spinner with `message` while the block runs (loading a model)."""
    if not enabled:
        yield
        return
    with errors_console().status(message):
        yield


class JobBars:
    """One bar per running job (its units done, speed-based time left) above a count of
    finished jobs; each finished job leaves one line. Implements `gencomp.gallery.Progress`.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.overall = progress.add_task("jobs", total=None, units="jobs")
        self.bars: dict[int, int] = {}

    def planned(self, jobs: Sequence[Job]) -> None:
        self.progress.update(self.overall, total=len(jobs))

    def started(self, job: Job) -> None:
        self.bars[job.index] = self.progress.add_task(f"{job.modality} {job.label}",
                                                      total=job.units, units="")

    def advanced(self, job: Job, units: int) -> None:
        self.progress.advance(self.bars[job.index], units)

    def finished(self, job: Job, seconds: float) -> None:
        bar = self.bars.pop(job.index, None)
        if bar is not None:
            self.progress.remove_task(bar)
        self.progress.advance(self.overall, 1)
        self.progress.console.print(f"{job.modality:5}  {job.label:32}  {seconds:7.1f} s")


class JobTimeLeft(TimeRemainingColumn):
    """Rich's speed-based time left for a job's own bar (its units cost alike), none for
    the count of jobs (a FLAC job takes a hundred times a cm job)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("units") == "jobs" else super().render(task)


def job_progress() -> Progress:
    """The bars of `JobBars`, drawn on stderr."""
    return Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[units]}"), TaskProgressColumn(),
                    TimeElapsedColumn(), JobTimeLeft(), console=errors_console(),
                    transient=True)


@dataclass(frozen=True)
class Estimate:
    """Seconds of work left as measured at `at` (time.monotonic()); `complete` is False
    when some of the work left is of a kind not timed yet, so `seconds` is a lower bound."""

    seconds: float
    complete: bool
    at: float


class EstimateColumn(ProgressColumn):
    """'ETA 0:03:10' from the task's `estimate` field, counting down between updates;
    'ETA ≥ 0:00:40' while part of the work is of a kind not timed yet; 'ETA ?' before
    anything is timed. Unlike rich's own column it does not assume that every unit of work
    costs the same: the estimate comes from the caller's per-kind timings."""

    def render(self, task: Task) -> Text:
        estimate = task.fields.get("estimate")
        if task.finished:
            return Text("")
        left = 0.0 if estimate is None else estimate.seconds - (time.monotonic() - estimate.at)
        if estimate is None or (not estimate.complete and left < 1):
            return Text("ETA ?", style="progress.remaining")
        left = max(0.0, left)
        hours, rest = divmod(round(left), 3600)
        clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        return Text(f"ETA {'' if estimate.complete else '≥ '}{clock}",
                    style="progress.remaining")
