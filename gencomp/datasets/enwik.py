"""enwik9 (or enwik8, or a prefix of either): consecutive chunks of the file, the last partial
chunk dropped, as the paper's 488,281 chunks of enwik9 do."""

from __future__ import annotations

import os
from pathlib import Path

from gencomp.datasets.base import DataSource, Segment, split_chunks


class Enwik(DataSource):
    name = "text"
    title = "enwik9"
    subfolder = "text"
    location_kind = "file"
    download = "enwik9"
    paper_rates = {
        "unchunked": {"gzip": 32.3, "lzma2": 23.0, "png": 42.9, "flac": 89.5},
        "chunked": {"gzip": 48.1, "lzma2": 50.0, "png": 80.6, "flac": 88.9},
    }
    paper_chinchilla_rate = 8.3
    paper_transformer_adjusted = {200_000: 30.9, 800_000: 21.9, 3_200_000: 17.7}

    def find_in(self, folder: Path) -> Path | None:
        """The paper's enwik9 first, then enwik8, then any enwik* file."""
        if not folder.is_dir():
            return None
        rank = {"enwik9": 0, "enwik8": 1}
        found = sorted((path for path in folder.glob("enwik*") if path.is_file()),
                       key=lambda path: (rank.get(path.name, 2), path.name))
        return found[0] if found else None

    def count(self, source: str, chunk_size: int) -> int:
        return os.path.getsize(source) // chunk_size

    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        with open(segment.source, "rb") as handle:
            handle.seek(segment.first * chunk_size)
            data = handle.read(segment.num_chunks * chunk_size)
        return split_chunks(data, segment, chunk_size)
