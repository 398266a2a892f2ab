"""Speed-up of `compress-bench --workers N` over the in-process run, same tasks.

    python benchmarks/bench_workers.py [--num-chunks 1000] [--workers 2] [--compressor ...]

Runs one plan in this process and then over N worker processes, checks that the rates
are bit-identical, and prints wall times, the speed-up and the CPU load seen meanwhile
(other processes on the machine slow both runs and shrink the speed-up).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

from gencomp.bench import (
    BenchSettings,
    Plan,
    assemble,
    choose_compressors,
    plan_tasks,
    run_plan,
)
from gencomp.datasets import DATASETS, DataLocations


def _timed_run(plan: Plan, output: Path, executor: str, workers: int
               ) -> tuple[float, list, dict[str, float]]:
    """Wall time, the rates, and the CPU seconds of compression each worker spent."""
    began = time.perf_counter()
    outcome = run_plan(plan, output, executor, workers)
    wall = time.perf_counter() - began
    cpu_by_worker: dict[str, float] = collections.defaultdict(float)
    for result in outcome.results.values():
        cpu_by_worker[result["worker"]] += result["cpu_seconds"]
    rates = [(row["chunked_rate"], row["unchunked_rate"]) for row in assemble(outcome)]
    return wall, rates, dict(cpu_by_worker)


def _report(label: str, wall: float, cpu_by_worker: dict[str, float]) -> None:
    cpu = sum(cpu_by_worker.values())
    split = " + ".join(f"{seconds:.1f}" for seconds in cpu_by_worker.values())
    print(f"{label:<22} {wall:7.1f} s wall; compression CPU {split} s "
          f"= {cpu:.1f} s, i.e. {cpu / wall:.2f} cores busy on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-chunks", type=int, default=1000)
    parser.add_argument("--task-chunks", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compressor", default=None, help="default: every classical codec")
    parser.add_argument("--dataset", default=",".join(DATASETS))
    arguments = parser.parse_args()

    settings = BenchSettings(choose_compressors(arguments.compressor),
                             tuple(arguments.dataset.split(",")), arguments.num_chunks,
                             task_chunks=arguments.task_chunks)
    plan = plan_tasks(settings, DataLocations())
    print(f"{len(plan.tasks)} tasks: {len(settings.compressors)} compressors × "
          f"{len(settings.datasets)} data sets × {arguments.num_chunks} chunks; "
          f"{os.cpu_count()} CPUs, load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        serial, serial_rates, serial_cpu = _timed_run(plan, Path(folder) / "inprocess",
                                                      "inprocess", 1)
        parallel, parallel_rates, parallel_cpu = _timed_run(plan, Path(folder) / "processes",
                                                            "processes", arguments.workers)
    assert parallel_rates == serial_rates, "rates differ between executors"
    _report("in-process:", serial, serial_cpu)
    _report(f"{arguments.workers} worker processes:", parallel, parallel_cpu)
    print(f"speed-up: {serial / parallel:.2f}x (1-min load now {os.getloadavg()[0]:.2f}); "
          "rates bit-identical")
    print("If the cores-busy figure does not grow with the workers, the machine's other load "
          "(or a CPU quota) caps this run, not the executor.")


if __name__ == "__main__":
    main()
