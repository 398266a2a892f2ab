"""Time to score the 256 next-byte candidates: fast `continuation_bits` vs recompression.

    python benchmarks/bench_scoring.py [--codecs gzip,zstd,...] [--repeats 5] [--unit bits]

Contexts are the first 2 KB, 32 KB and 128 KB of enwik8. Both paths run in the same
process, interleaved, and must give identical numbers. Each is timed as the best of its
runs, and each gets the same budget: at least `--repeats` runs and `--seconds` of running,
so the fast path is not judged on fewer samples of a noisy machine than the slow one.
Wall time is what counts (the fast paths use threads); CPU time (all threads) is shown beside it
because on a loaded machine it is the steadier measure of the work done.
Targets for gzip (wall time): ≥ 10× at 32 KB, ≥ 50× at 128 KB. `--unit` counts code
lengths in bytes (the default) or exact bits (benchmarks/bench_bit_exact.py compares the
two units' costs).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gencomp import get_compressor
from gencomp.compressor import Compressor
from gencomp.datasets import DataLocations, locate

CONTEXT_SIZES = {"2 KB": 2048, "32 KB": 32768, "128 KB": 131072}
SINGLE_BYTES = [bytes([value]) for value in range(256)]
TARGETS = {("gzip", "32 KB"): 10.0, ("gzip", "128 KB"): 50.0}


class Timing:
    """Best wall and CPU seconds over the runs so far, and the last result."""

    def __init__(self, function: Callable[..., np.ndarray], *arguments: object):
        self.function = functools.partial(function, *arguments)
        self.wall = self.cpu = float("inf")
        self.runs, self.spent = 0, 0.0
        self.result: np.ndarray | None = None

    def run(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.result = self.function()
        elapsed = time.perf_counter() - wall
        self.wall = min(self.wall, elapsed)
        self.cpu = min(self.cpu, time.process_time() - cpu)
        self.runs, self.spent = self.runs + 1, self.spent + elapsed

    def needs_more(self, repeats: int, seconds: float) -> bool:
        return self.runs < repeats or self.spent < seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default="gzip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--text-file", type=Path, default=None)
    parser.add_argument("--unit", default="bytes", choices=["bytes", "bits"])
    arguments = parser.parse_args()
    text_file = locate("text", DataLocations(paths={"text": arguments.text_file}))
    text = text_file.read_bytes()[: max(CONTEXT_SIZES.values())]
    print(f"scoring 256 next-byte candidates after the first N bytes of {text_file.name}")
    print(f"best of ≥ {arguments.repeats} runs and ≥ {arguments.seconds:g} s per path")
    print(f"{'codec':8} {'context':>8} {'fast ms':>9} {'recompress ms':>14} {'speed-up':>9}"
          f" {'CPU speed-up':>13}")
    failed = []
    for name in arguments.codecs.split(","):
        compressor = get_compressor(name)
        for label, size in CONTEXT_SIZES.items():
            context = text[:size]
            fast = Timing(compressor.continuation_bits, context, SINGLE_BYTES, arguments.unit)
            slow = Timing(Compressor.continuation_bits, compressor, context, SINGLE_BYTES,
                          arguments.unit)
            budget = arguments.repeats, arguments.seconds
            while fast.needs_more(*budget) or slow.needs_more(*budget):
                for timing in (fast, slow):
                    if timing.needs_more(*budget):
                        timing.run()
            if not np.array_equal(fast.result, slow.result):
                raise SystemExit(f"{name} at {label}: fast scoring differs from recompression")
            speed_up = slow.wall / fast.wall
            target = TARGETS.get((name, label))
            verdict = "" if target is None else (f"  target ≥ {target:.0f}×: "
                                                 f"{'met' if speed_up >= target else 'MISSED'}")
            if target is not None and speed_up < target:
                failed.append(f"{name} {label}")
            print(f"{name:8} {label:>8} {fast.wall * 1e3:9.1f} {slow.wall * 1e3:14.1f} "
                  f"{speed_up:8.1f}× {slow.cpu / fast.cpu:12.1f}×{verdict}")
    if failed:
        raise SystemExit(f"missed targets: {', '.join(failed)}")


if __name__ == "__main__":
    main()
