"""Start-up: the wall time of short commands, and for `compress -c transformer` the part
that is not the model's compute (measured in the same run, in a warm process).

Each command runs `--runs` times as a new process (`python -m gencomp`, bytecode already
written); the Transformer's kernels run as their ahead-of-time build and, for comparison,
through numba's JIT (GENCOMP_KERNELS=jit), both already built or cached by a first run
that is not counted.

    python benchmarks/bench_startup.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

from gencomp.constants import ENWIK8_SAMPLE, KERNELS_ENV
from gencomp.locations import find_data

SMALL_FILE_BYTES = 6000


def wall_seconds(arguments: list[str], environment: dict[str, str], runs: int) -> list[float]:
    command = [sys.executable, "-m", "gencomp", *arguments]
    subprocess.run(command, env=environment, check=True, capture_output=True)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=environment, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def compute_seconds(data: bytes, runs: int) -> float:
    """`compress` of `data` by the transformer codec in this (warm) process, best of runs."""
    from gencomp.compressor import get_compressor

    compressor = get_compressor("transformer")
    compressor.compress(data)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        compressor.compress(data)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    arguments = parser.parse_args()
    path = find_data(ENWIK8_SAMPLE)
    if path is None:
        raise SystemExit(f"no {ENWIK8_SAMPLE} in a data folder (set $GENCOMP_DATA)")
    data = path.read_bytes()[:SMALL_FILE_BYTES]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {arguments.runs} runs each, wall")
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small.txt"
        small.write_bytes(data)
        output = str(Path(folder) / "out.gcz")
        compress = ["compress", str(small), "-o", output, "--force"]
        # as an installed gencomp runs: bytecode written (by the warm-up run) and read
        base = {**{key: value for key, value in os.environ.items()
                   if key != "PYTHONDONTWRITEBYTECODE"}, KERNELS_ENV: "aot"}
        jobs = [("gencomp list", ["list"], base),
                ("compress -c gzip, 6 KB", [*compress, "-c", "gzip"], base),
                ("compress -c transformer, 6 KB", [*compress, "-c", "transformer"], base),
                ("  the same, numba's JIT", [*compress, "-c", "transformer"],
                 {**base, KERNELS_ENV: "jit"})]
        compute = compute_seconds(data, 3)
        for label, command, environment in jobs:
            times = wall_seconds(command, environment, arguments.runs)
            line = f"{label:32s} {min(times):5.2f}–{max(times):5.2f} s"
            if "transformer" in command:
                line += (f"   less its compute ({compute:.2f} s): {min(times) - compute:.2f}–"
                         f"{max(times) - compute:.2f} s")
            print(line)


if __name__ == "__main__":
    main()
