"""Word-likeness and novelty of text samples, per compressor and sampler (the paper's setup).

    python benchmarks/bench_sample_quality.py [--chunks 2,5,50,100] [--seeds 0,1]

Each prompt is 1948 bytes starting at chunk k × 2048 of enwik8; 100 bytes are generated.
Prints the mean of `samplers.quality` over prompts and seeds, and seconds per sample.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from gencomp import get_compressor
from gencomp.datasets import DataLocations, locate
from samplers import sample_continuation
from samplers.quality import measure

PROMPT_BYTES, LENGTH, CHUNK = 1948, 100, 2048
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("gzip", {"sampler": "code-length"}),
    ("gzip", {"sampler": "lookahead", "horizon": 8}),
    ("gzip", {"sampler": "lookahead", "horizon": 8, "temperature": 2.0}),
    ("lzma2", {"sampler": "lookahead", "horizon": 8}),
    ("cm", {}),
    ("cm", {"temperature": 0.5}),
    ("transformer", {}),
    ("transformer", {"temperature": 0.5}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="2,5,50,100")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--compressors", default=None, help="Only these (comma-separated).")
    parser.add_argument("--text-file", type=Path, default=None)
    arguments = parser.parse_args()
    text = locate("text", DataLocations(paths={"text": arguments.text_file})).read_bytes()
    chunks = [int(chunk) for chunk in arguments.chunks.split(",")]
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    wanted = arguments.compressors.split(",") if arguments.compressors else None
    print("| compressor | settings | known words | novel | longest copy | s/sample |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, settings in SETTINGS:
        if wanted is not None and name not in wanted:
            continue
        compressor = get_compressor(name)
        rows, start = [], time.perf_counter()
        for chunk, seed in itertools.product(chunks, seeds):
            prompt = text[chunk * CHUNK:chunk * CHUNK + PROMPT_BYTES]
            sample = sample_continuation(compressor, prompt, LENGTH, seed=seed, **settings)
            quality = measure(sample, prompt)
            rows.append((quality.known_word_share, quality.novel_share, quality.longest_copy))
        known, novel, longest = np.mean(rows, axis=0)
        described = ", ".join(f"{key}={value}" for key, value in settings.items()) or "default"
        print(f"| {name} | {described} | {known:.2f} | {novel:.2f} | {longest:.0f} | "
              f"{(time.perf_counter() - start) / len(rows):.1f} |", flush=True)


if __name__ == "__main__":
    main()
