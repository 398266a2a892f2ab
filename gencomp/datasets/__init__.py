"""The data sets of Table 1, cut into chunks exactly as the paper prepares them.

One module per data set, one entry in `DATASETS` (like the paper's
`GET_DATA_GENERATOR_FN_DICT`): `text` (enwik), `image` (ImageNet patches), `audio`
(LibriSpeech), `random`. A data set is a `DataSource` (see `gencomp.datasets.base`): it finds
its files, counts and reads chunks, and carries the paper's numbers for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gencomp.constants import CHUNK_SIZE
from gencomp.datasets.base import DataLocations, Dataset, DataSource, Segment
from gencomp.datasets.enwik import Enwik
from gencomp.datasets.imagenet import ImageNet
from gencomp.datasets.librispeech import LibriSpeech
from gencomp.datasets.random_bytes import RandomBytes
from gencomp.errors import UsageError

DATASETS: dict[str, DataSource] = {source.name: source for source in
                                   (Enwik(), ImageNet(), LibriSpeech(), RandomBytes())}

__all__ = ["DATASETS", "DataLocations", "DataSource", "Dataset", "Segment", "data_source",
           "load_chunks", "locate", "open_dataset", "read_chunks"]


def data_source(name: str) -> DataSource:
    """The registered data set called `name`."""
    source = DATASETS.get(name)
    if source is None:
        raise UsageError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return source


def locate(name: str, locations: DataLocations) -> Path:
    """The file or folder that holds data set `name`."""
    return data_source(name).locate(locations)


def open_dataset(name: str, locations: DataLocations, chunk_size: int = CHUNK_SIZE,
                 seed: int = 0) -> Dataset:
    """Find and (lazily) index a data set; `seed` is for data sets without files."""
    source = data_source(name)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise UsageError(f"chunk size must be a positive integer, got {chunk_size!r}")
    return source.open(locations, chunk_size, seed)


def read_chunks(name: str, segments: Sequence[Segment], chunk_size: int = CHUNK_SIZE
                ) -> list[bytes]:
    """The chunks the segments describe, in order; reads only those bytes."""
    source = data_source(name)
    return [chunk for segment in segments for chunk in source.read(segment, chunk_size)]


def load_chunks(name: str, locations: DataLocations, num_chunks: int,
                chunk_size: int = CHUNK_SIZE, seed: int = 0) -> list[bytes]:
    """The first `num_chunks` chunks of a data set (fewer if it holds fewer)."""
    dataset = open_dataset(name, locations, chunk_size, seed)
    available = dataset.available(num_chunks)
    return read_chunks(name, dataset.segments(0, available), chunk_size)
