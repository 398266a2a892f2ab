"""Random bytes: as many chunks as asked for, chunk i depending only on (seed, i). No files."""

from __future__ import annotations

import numpy as np

from gencomp.datasets.base import DataLocations, Dataset, DataSource, Segment


class SeededDataset(Dataset):
    """A data set without files: every range exists, as one segment read from the seed."""

    def available(self, wanted: int) -> int:
        return wanted

    def segments(self, start: int, stop: int) -> tuple[Segment, ...]:
        return (Segment(self.location, start, stop - start),)


class RandomBytes(DataSource):
    name = "random"
    title = "Random"
    paper_rates = {
        "unchunked": {"gzip": 100.0, "lzma2": 100.0, "png": 100.0, "flac": 107.8},
        "chunked": {"gzip": 100.1, "lzma2": 100.0, "png": 103.2, "flac": 107.2},
    }

    def open(self, locations: DataLocations, chunk_size: int, seed: int) -> Dataset:
        return SeededDataset(self, chunk_size, str(seed))

    def count(self, source: str, chunk_size: int) -> int:
        raise NotImplementedError("random data is not indexed")

    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        seed = int(segment.source)
        return [np.random.default_rng([seed, index]).bytes(chunk_size)
                for index in range(segment.first, segment.first + segment.num_chunks)]
