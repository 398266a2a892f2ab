"""Paper-scale machinery: every executor gives the same rates, and an interrupted run
resumes without redoing finished tasks and without leaving partial files."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

from gencomp import bench
from gencomp.bench import BenchSettings, assemble, choose_compressors, plan_tasks, run_plan
from gencomp.cli import main
from gencomp.datasets import DataLocations

RATE_FIELDS = ("compressor", "dataset", "num_chunks", "raw_bytes", "chunked_bits",
               "header_bits", "chunked_rate", "unchunked_rate")
SMALL_RUN = ["-c", "gzip,flac", "-d", "text,random", "-n", "40", "--task-chunks", "10"]
SMALL_RUN_TASKS = 2 * 2 * (1 + 4)


def _rates(rows: list[dict[str, Any]]) -> list[tuple]:
    return [tuple(row[name] for name in RATE_FIELDS) for row in rows]


def _stored_rates(output: Path) -> list[tuple]:
    return _rates(json.loads((output / "results.json").read_text())["rows"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> list[tuple]:
    """The small run in this process, through the library."""
    settings = BenchSettings(choose_compressors("gzip,flac"), ("text", "random"), 40,
                             task_chunks=10)
    plan = plan_tasks(settings, DataLocations(data_dir=data_dir))
    return _rates(assemble(run_plan(plan, tmp_path_factory.mktemp("reference"))))


def _cli(output: Path, data_dir: Path, *extra: str) -> int:
    return main(["compress-bench", *SMALL_RUN, "--data-dir", str(data_dir), "-o", str(output),
                 *extra])


def _no_partial_files(output: Path) -> None:
    leftovers = [path.name for path in output.rglob("*") if path.name.endswith(".tmp")]
    assert leftovers == []
    for stored in (output / "tasks").glob("*.json"):
        json.loads(stored.read_text())  # every stored file is complete


def test_two_worker_processes_give_bit_identical_rates(reference: list[tuple], tmp_path: Path,
                                                       data_dir: Path) -> None:
    assert _cli(tmp_path / "run", data_dir, "--workers", "2") == 0
    assert _stored_rates(tmp_path / "run") == reference
    workers = {json.loads(path.read_text())["worker"]
               for path in (tmp_path / "run" / "tasks").glob("*.json")}
    assert not any(worker.endswith(f":{os.getpid()}") for worker in workers)  # not done here


def test_a_dask_cluster_gives_bit_identical_rates(reference: list[tuple], tmp_path: Path,
                                                  data_dir: Path) -> None:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        assert _cli(tmp_path / "threads", data_dir, "--scheduler",
                    cluster.scheduler_address) == 0
    assert _stored_rates(tmp_path / "threads") == reference
    # --executor dask without a scheduler starts (and stops) its own cluster of processes.
    assert _cli(tmp_path / "processes", data_dir, "--executor", "dask", "--workers", "2") == 0
    assert _stored_rates(tmp_path / "processes") == reference


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path: Path, data_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    from dask import config

    with config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert _cli(tmp_path / "run", data_dir, "--scheduler", "tcp://127.0.0.1:9") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Dask scheduler" in error[0]


def _stop_after(monkeypatch: pytest.MonkeyPatch, stored_tasks: int) -> None:
    """Simulate Ctrl-C once `stored_tasks` results have been stored."""
    store = bench.store_task_result
    count = 0

    def store_then_interrupt(*arguments: Any) -> None:
        nonlocal count
        store(*arguments)
        count += 1
        if count == stored_tasks:
            raise KeyboardInterrupt

    monkeypatch.setattr(bench, "store_task_result", store_then_interrupt)


def _stopped(worker: multiprocessing.process.BaseProcess) -> bool:
    """The process has exited. is_alive() alone can say True for a worker that another
    thread (the executor's) reaped first, which leaves this handle without an exit code."""
    if not worker.is_alive():
        return True
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_interrupted_run_resumes_where_it_stopped(
        workers: str, reference: list[tuple], tmp_path: Path, data_dir: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "run"
    _stop_after(monkeypatch, 7)
    # This run's workers, as its pool held them when the interrupt reached it (counting all
    # children instead would count an earlier test's Dask processes, still exiting).
    workers_seen: list[multiprocessing.process.BaseProcess] = []
    pool_of = bench.process_pool

    @contextlib.contextmanager
    def watched_pool(count: int) -> Iterator[Any]:
        with pool_of(count) as pool:
            try:
                yield pool
            finally:
                workers_seen.extend((pool._processes or {}).values())

    monkeypatch.setattr(bench, "process_pool", watched_pool)
    assert _cli(output, data_dir, "--workers", workers) == 130
    assert "7 of 20 tasks are stored" in capsys.readouterr().err
    assert len(workers_seen) == (0 if workers == "1" else 2)
    assert all(map(_stopped, workers_seen))  # stopped, not finishing their tasks
    _no_partial_files(output)
    assert not (output / "results.json").exists()
    finished = {path.name: path.stat().st_mtime_ns for path in (output / "tasks").glob("*.json")}
    assert len(finished) == 7

    monkeypatch.undo()
    assert _cli(output, data_dir, "--workers", workers, "--resume") == 0
    assert "13 tasks run, 7 reused" in capsys.readouterr().err
    assert {path.name: path.stat().st_mtime_ns
            for path in (output / "tasks").glob("*.json")
            if path.name in finished} == finished  # finished tasks were not redone
    assert len(list((output / "tasks").glob("*.json"))) == SMALL_RUN_TASKS
    assert _stored_rates(output) == reference


def _live_processes_in_group(group: int) -> list[int]:
    """Processes of a process group that still run (zombies left to a container's init,
    which may not reap them, do not count)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_ctrl_c_stops_the_workers_and_leaves_complete_files(tmp_path: Path, data_dir: Path
                                                            ) -> None:
    """A real SIGINT to the process group, as a terminal's Ctrl-C sends it."""
    output = tmp_path / "run"
    # One worker is inside the 4 MB unchunked task when the signal comes. The run starts
    # with Ctrl-C's default action, as from a terminal (a test suite started in the
    # background of a shell would pass SIGINT on ignored, and the run would rightly ignore it).
    command = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
               "signal.default_int_handler); from gencomp.cli import main; "
               "raise SystemExit(main())",
               "compress-bench", "-c", "lzma2", "-d", "text", "-n", "2000", "--task-chunks", "20",
               "--workers", "2", "--data-dir", str(data_dir), "-o", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    deadline = time.monotonic() + 60
    while len(list((output / "tasks").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    interrupted = time.monotonic()
    _, error = process.communicate(timeout=60)
    assert time.monotonic() - interrupted < 5  # no waiting for running tasks to finish
    assert process.returncode == 130, error
    assert "continue with --resume" in error and "Traceback" not in error
    # No worker outlives the run (multiprocessing's resource tracker exits on its own
    # once the main process is gone; give it a moment).
    deadline = time.monotonic() + 3
    while _live_processes_in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_processes_in_group(process.pid) == []
    _no_partial_files(output)
    assert not (output / "results.json").exists()
