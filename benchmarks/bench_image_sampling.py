"""How much ImageNet's chunked rates depend on which images the patches come from.

`compress-bench --num-chunks 2000` takes the first 2000 patches of the images in sorted
order, which is the first ~26 images. For gzip, LZMA2, PNG and FLAC this prints the spread
of per-image chunked rates, and the chunked rate of the first `--num-chunks` patches when
the images are taken in `--orders` seeded random orders instead (the paper's tfds order is
a shuffle of the whole set), beside the sorted order and the paper's numbers. Header-once
accounting as in the bench (ℓ of one byte subtracted for all chunks but one).

    python benchmarks/bench_image_sampling.py [--data-dir DIR] [--num-chunks 2000] [--orders 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gencomp import get_compressor
from gencomp.constants import CHUNK_SIZE, PATCH_COLUMNS, PATCH_ROWS
from gencomp.datasets import DataLocations, grayscale_image, image_patches, open_dataset

PAPER_CHUNKED = {"gzip": 68.6, "lzma2": 62.4, "png": 61.7, "flac": 60.9}


def patch_sizes(files: list[str]) -> dict[str, list[np.ndarray]]:
    """For each codec, one array per image: the compressed size of each of its patches."""
    compressors = {name: get_compressor(name) for name in PAPER_CHUNKED}
    sizes: dict[str, list[np.ndarray]] = {name: [] for name in compressors}
    for path in files:
        image = grayscale_image(path)
        count = (image.shape[0] // PATCH_ROWS) * (image.shape[1] // PATCH_COLUMNS)
        patches = image_patches(image, 0, count, CHUNK_SIZE)
        for name, compressor in compressors.items():
            sizes[name].append(np.array([len(compressor.compress(p)) for p in patches]))
    return sizes


def first_patches_rate(per_image: list[np.ndarray], order: np.ndarray, wanted: int,
                       header: int) -> float:
    taken, total = 0, 0
    for index in order:
        sizes = per_image[index][: wanted - taken]
        total += int(sizes.sum())
        taken += len(sizes)
        if taken == wanted:
            break
    return 100 * (total - (taken - 1) * header) / (CHUNK_SIZE * taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--num-chunks", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    files = open_dataset("image", DataLocations(data_dir=arguments.data_dir)).files
    sizes = patch_sizes(files)
    rng = np.random.default_rng(arguments.seed)
    orders = [rng.permutation(len(files)) for _ in range(arguments.orders)]
    print(f"{len(files)} images, {sum(map(len, sizes['gzip'])):,} patches; chunked rates, %")
    for name, per_image in sizes.items():
        header = len(get_compressor(name).compress(b"\0"))
        image_rates = [100 * float((s - header).mean()) / CHUNK_SIZE for s in per_image]
        sampled = np.array([first_patches_rate(per_image, order, arguments.num_chunks, header)
                            for order in orders])
        in_order = first_patches_rate(per_image, np.arange(len(files)), arguments.num_chunks,
                                      header)
        low, middle, high = np.percentile(image_rates, [10, 50, 90])
        print(f"{name:6s} per image p10/p50/p90 {low:5.1f} {middle:5.1f} {high:5.1f} | first "
              f"{arguments.num_chunks} patches: sorted order {in_order:5.1f}, random orders "
              f"p5-p95 {np.percentile(sampled, 5):5.1f}-{np.percentile(sampled, 95):5.1f} "
              f"(mean {sampled.mean():5.1f}) | paper {PAPER_CHUNKED[name]}")


if __name__ == "__main__":
    main()
