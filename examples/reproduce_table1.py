"""Reproduce the classical rows of the paper's Table 1 on the shared data samples.

    python examples/reproduce_table1.py          # 1000 chunks of 2048 bytes per data set
    python examples/reproduce_table1.py 5000     # more data: closer to the paper, slower

Compression rate = compressed size / raw size, for gzip, LZMA2, PNG and FLAC on text
(enwik8), ImageNet patches, LibriSpeech audio and random bytes: each 2048-byte chunk
compressed alone ("chunked", the header counted once) and all chunks as one file
("unchunked"). Prints our numbers beside the paper's and writes table.md, figure.png,
results.json and results.csv to outputs/bench/example-table1 (replacing an earlier run of
this script), where `gencomp render` finds them. About a minute on two CPU cores.
"""

import sys
from pathlib import Path

from rich.console import Console

from gencomp.bench import BenchSettings, assemble, choose_compressors, plan_tasks, run_plan
from gencomp.bench_report import print_report, write_outputs
from gencomp.cli import run_script
from gencomp.datasets import DataLocations
from gencomp.errors import UsageError

OUTPUT = Path("outputs") / "bench" / "example-table1"


def main() -> None:
    try:
        num_chunks = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    except ValueError as error:
        raise UsageError(f"the number of chunks must be an integer, got {sys.argv[1]!r}") from error
    settings = BenchSettings(compressors=choose_compressors("gzip,lzma2,png,flac"),
                             datasets=("text", "image", "audio", "random"),
                             num_chunks=num_chunks)
    plan = plan_tasks(settings, DataLocations())  # finds ../shared/data or $GENCOMP_DATA
    outcome = run_plan(plan, OUTPUT, executor="processes", workers=2, force=True)
    rows = assemble(outcome)
    print_report(rows, outcome, Console())
    write_outputs(OUTPUT, rows, outcome)
    print(f"wrote {OUTPUT}/table.md and figure.png in {outcome.wall_seconds:.0f} s")


# The worker processes start fresh interpreters that import this file; the guard keeps them
# from starting the benchmark again.
if __name__ == "__main__":
    sys.exit(run_script(main, "reproduce_table1.py"))
