"""Progress on the terminal for commands that take more than a moment.

Bars are drawn on stderr, and only when stderr is a terminal: piped or logged output stays
clean (`--progress` forces them, `--no-progress` turns them off). The library reports
progress through plain callables; only this module knows how it is drawn.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from gencomp.gallery import Job

PROGRESS_HELP = "Show progress bars on stderr (default: when stderr is a terminal)."


def on_terminal() -> bool:
    """Whether bars would be seen: stderr is a terminal."""
    return sys.stderr.isatty()


def errors_console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def byte_progress(enabled: bool, description: str, total: int
                  ) -> Iterator[Callable[[int, int], None]]:
    """A callback `(done, total)` in bytes that moves a bar with speed and time left (or
    does nothing when not `enabled`)."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=errors_console(), transient=True) as progress:
        bar = progress.add_task(description, total=total)
        yield lambda done, total: progress.update(bar, completed=done, total=total)


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


def job_progress() -> Progress:
    """The bars of `JobBars`, drawn on stderr."""
    return Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[units]}"), TaskProgressColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=errors_console(),
                    transient=True)
