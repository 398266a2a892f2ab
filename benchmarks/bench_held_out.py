"""Compression rates on the held-out part of ../shared/data, the paper's chunked protocol.

    python benchmarks/bench_held_out.py                           # png,flac,gzip,lzma2,cm
    python benchmarks/bench_held_out.py -c png,flac,cm,transformer -n 2000

The held-out part is what mixed training never sees (`predictors.train.held_out_files`:
every 5th image and utterance, sorted by name) less those among the first five files,
whose chunks the numeric models of `cm` were tuned on (compress-bench's first 300 chunks
of each set), and the last 10 % of the enwik8 sample (202 chunks: all there is). The
script links those files into a temporary folder and runs `gencomp compress-bench` on it
with 2,000 chunks per set (issue 16's protocol), printing its table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gencomp.constants import ENWIK8_SAMPLE  # noqa: E402
from gencomp.datasets import DATASETS  # noqa: E402
from gencomp.locations import data_roots, find_data  # noqa: E402
from predictors.train import HELD_OUT_FRACTION, held_out_files  # noqa: E402

#: The files the numeric models were tuned on lie among the first ones of each set.
TUNED_FILES = 5


def held_out_folder(data: Path, folder: Path) -> list[str]:
    """Link the held-out files into `folder`; compress-bench's options that read them."""
    options = []
    for name, source, option in (("image", "imagenet", "--image-dir"),
                                 ("audio", "librispeech", "--audio-dir")):
        files = DATASETS[name].files(data / source)
        target = folder / source
        target.mkdir()
        for index, path in enumerate(files):
            if index >= TUNED_FILES and path in held_out_files(files):
                os.symlink(Path(path).resolve(), target / Path(path).name)
        options += [option, str(target)]
    text = (data / ENWIK8_SAMPLE).read_bytes()
    (folder / "enwik8_tail").write_bytes(text[int(len(text) * (1 - HELD_OUT_FRACTION)):])
    return [*options, "--text-file", str(folder / "enwik8_tail")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--compressors", default="png,flac,gzip,lzma2,cm")
    parser.add_argument("-n", "--num-chunks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    sample = find_data(ENWIK8_SAMPLE)
    if sample is None:
        raise SystemExit(f"no {ENWIK8_SAMPLE} under {', '.join(map(str, data_roots()))}")
    data = sample.parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        options = held_out_folder(data, folder)
        subprocess.run([sys.executable, "-m", "gencomp", "compress-bench", "-c",
                        arguments.compressors, "-d", "image,audio,text", "-n",
                        str(arguments.num_chunks), "--workers", str(arguments.workers),
                        "--no-progress", "-o", str(folder / "run"), *options], check=True)
        print((folder / "run" / "table.md").read_text())


if __name__ == "__main__":
    main()
