"""What a newcomer meets at the terminal: progress that tells the truth (model coding
reports every chunk; the benchmark's time left counts the slow model tasks), help that
reads right, and compressor names people know."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.progress import Progress

from gencomp import get_compressor
from gencomp.bench import BenchSettings, choose_compressors, plan_tasks
from gencomp.cli import main
from gencomp.codecs.predictive import coding_progress
from gencomp.commands.bench import TaskCosts, timed_early
from gencomp.commands.progress import Estimate, EstimateColumn
from gencomp.container import read_header
from gencomp.datasets import DataLocations


@pytest.mark.parametrize("name, workers", [("cm", 1), ("cm", 2), ("transformer", 2)])
def test_model_coding_reports_each_job_as_it_finishes(name: str, workers: int,
                                                      enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:5 * 2048 + 100]  # 6 chunks of 2048 bytes, coded one by one
    compressor = get_compressor(name, chunk_size=2048, workers=workers)
    reports: list[tuple[int, int]] = []
    token = coding_progress.set(lambda done, total: reports.append((done, total)))
    try:
        assert compressor.decompress(compressor.compress(data)) == data
    finally:
        coding_progress.reset(token)
    assert reports == [(done, 6) for done in range(1, 7)] * 2  # compress, then decompress


def _finish(costs: TaskCosts, task: object, seconds: float) -> None:
    costs.finished(task, {"seconds": seconds, "read_seconds": 0.0})  # type: ignore[arg-type]


def test_the_benchmarks_time_left_counts_the_slow_kinds(data_dir: Path) -> None:
    settings = BenchSettings(choose_compressors("gzip,cm"), ("text",), num_chunks=1000,
                             task_chunks=250)
    tasks = plan_tasks(settings, DataLocations(data_dir)).tasks
    ordered = timed_early(tasks)
    assert sorted(task.key for task in ordered) == sorted(task.key for task in tasks)
    assert [(task.compressor.name, task.mode) for task in ordered[:3]] == [
        ("gzip", "unchunked"), ("gzip", "chunked"), ("cm", "chunked")]

    costs = TaskCosts(ordered, workers=1)
    assert not costs.estimate().complete
    _finish(costs, ordered[0], 2.0)
    _finish(costs, ordered[1], 0.25)  # gzip: 1 ms per chunk
    before = costs.estimate()
    assert not before.complete and before.seconds == pytest.approx(3 * 0.25)
    _finish(costs, ordered[2], 250.0)  # cm: 1 s per chunk, 1000 times gzip's
    after = costs.estimate()
    assert after.complete and after.seconds == pytest.approx(3 * 0.25 + 3 * 250)
    assert costs.estimate("cm").seconds == pytest.approx(750)
    assert TaskCosts(ordered[3:], workers=2).estimate().seconds == 0  # nothing timed


def test_the_estimate_column_counts_down_and_says_when_it_is_a_bound() -> None:
    column = EstimateColumn()
    with Progress(disable=True) as progress:
        shown = {}
        for name, estimate in [("timed", Estimate(90, True, time.monotonic())),
                               ("bound", Estimate(90, False, time.monotonic())),
                               ("stale", Estimate(90, True, time.monotonic() - 60)),
                               ("unknown", None)]:
            bar = progress.add_task(name, total=10, estimate=estimate)
            shown[name] = column.render(progress.tasks[bar]).plain
    assert shown["timed"] in ("ETA 0:01:30", "ETA 0:01:29")
    assert shown["bound"].startswith("ETA ≥ 0:01:")
    assert shown["stale"] in ("ETA 0:00:30", "ETA 0:00:29")
    assert shown["unknown"] == "ETA ?"


def test_flags_show_no_value_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compress", "--help"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "--force" in line]
    assert lines and "<bool>" not in lines[0] and "Overwrite" in lines[0]


def test_xz_is_lzma2_and_a_typo_gets_a_suggestion(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    original = tmp_path / "a.txt"
    original.write_bytes(b"abracadabra " * 100)
    assert main(["compress", str(original), "-c", "xz"]) == 0
    container = (tmp_path / "a.txt.gcz").read_bytes()
    assert read_header(container)[0].compressor == "lzma2"
    capsys.readouterr()
    assert main(["compress", str(original), "-c", "gzp", "-o", str(tmp_path / "b")]) == 2
    assert "did you mean 'gzip'?" in capsys.readouterr().err
