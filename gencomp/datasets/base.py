"""What a data set is: a `DataSource` finds its files, counts the chunks each holds (without
decoding), reads a range of them, and carries the paper's Table 1 numbers for it by name.

Work is split into chunk ranges (see `gencomp.bench`), so a data set is first *indexed*
(how many chunks each file holds, from the file size, the image header or the FLAC header),
and a range [start, stop) becomes a list of `Segment`s that say which file and which of its
chunks to read. A segment list is small and self-contained: a worker on another machine
reads exactly its chunks, nothing more.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gencomp.errors import DataNotFoundError, UsageError
from gencomp.locations import data_roots


@dataclass(frozen=True)
class DataLocations:
    """What the user said about where the data is: a data folder, and/or the file or folder
    of particular data sets (`paths`, by data set name). Unset ones are searched for."""

    data_dir: Path | None = None
    paths: Mapping[str, Path] = field(default_factory=dict)

    def roots(self) -> list[Path]:
        """Data folders to search, in order (see `gencomp.locations.data_roots`)."""
        return data_roots(self.data_dir)


@dataclass(frozen=True)
class Segment:
    """`num_chunks` consecutive chunks of one source, starting at its chunk `first`.

    `source` is a file path, or what a source without files reads from (a seed)."""

    source: str
    first: int
    num_chunks: int


class DataSource(ABC):
    """One data set. Subclasses set the class attributes and implement `count` and `read`;
    a source in a folder of files also sets `suffixes`."""

    #: Registry name (`compress-bench -d NAME`).
    name: str = ""
    #: Column title in reports (the paper's name for the data set).
    title: str = ""
    #: Folder under a data root (../shared/data/SUBFOLDER).
    subfolder: str = ""
    #: "file" (one file holds the data set) or "folder" (every matching file below it).
    location_kind: str = "folder"
    suffixes: tuple[str, ...] = ()
    #: What `gencomp data download` calls it, when it can fetch it.
    download: str | None = None
    #: The paper's Table 1 raw rates (%): {"chunked" | "unchunked": {compressor: rate}}.
    paper_rates: Mapping[str, Mapping[str, float]] = {}
    #: The paper's Transformers (trained on enwik8): adjusted rate (%) here, by parameters.
    paper_transformer_adjusted: Mapping[int, float] = {}
    #: The paper's Chinchilla 70B: raw chunked rate (%) here, the goal for a model of ours.
    paper_chinchilla_rate: float | None = None

    def find_in(self, folder: Path) -> Path | None:
        """The data set's file or folder inside a data root's subfolder, if there."""
        return folder if folder.is_dir() else None

    def locate(self, locations: DataLocations) -> Path:
        """The file or folder that holds the data set, or a `DataNotFoundError` naming
        where we looked."""
        explicit = locations.paths.get(self.name)
        if explicit is not None:
            explicit = Path(explicit)
            if explicit.is_file() if self.location_kind == "file" else explicit.is_dir():
                return explicit
            raise DataNotFoundError(f"{self.name} data not found: {explicit} is not a "
                                    f"{self.location_kind}", dataset=self.name,
                                    download=self.download)
        searched = []
        for root in locations.roots():
            folder = root / self.subfolder
            searched.append(str(folder))
            found = self.find_in(folder)
            if found is not None:
                return found
        raise DataNotFoundError(f"{self.name} data not found in {', '.join(searched)}",
                                dataset=self.name, download=self.download)

    def files(self, location: Path) -> list[str]:
        """Every candidate source file, in the order chunks are numbered."""
        if self.location_kind == "file":
            return [str(location)]
        files = sorted(str(path) for path in location.rglob("*")
                       if path.suffix.lower() in self.suffixes and path.is_file())
        if not files:
            raise DataNotFoundError(f"{self.name} data not found: no "
                                    f"{'/'.join(self.suffixes)} files in {location}",
                                    dataset=self.name, download=self.download)
        return files

    @abstractmethod
    def count(self, source: str, chunk_size: int) -> int:
        """Whole chunks the source file holds, read from its size or header."""

    @abstractmethod
    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        """The segment's chunks."""

    def open(self, locations: DataLocations, chunk_size: int, seed: int) -> Dataset:
        """Find and (lazily) index the data set."""
        location = self.locate(locations).absolute()  # workers elsewhere get the same paths
        return Dataset(self, chunk_size, str(location), files=self.files(location))


@dataclass
class Dataset:
    """An indexed data set: how many chunks each source holds, in order.

    `sources` and `ends` grow lazily (`_index_until`): a run that needs 2,000 chunks of
    ImageNet reads the headers of a few dozen images, not of 1.28 million.
    """

    source: DataSource
    chunk_size: int
    location: str
    files: list[str] = field(default_factory=list)  # every candidate source, in order
    indexed_files: int = 0
    sources: list[str] = field(default_factory=list)  # indexed files holding >= 1 chunk
    ends: list[int] = field(default_factory=list)  # cumulative chunk counts of `sources`

    @property
    def name(self) -> str:
        return self.source.name

    def _index_until(self, num_chunks: int) -> None:
        while self.indexed_files < len(self.files) and (not self.ends
                                                         or self.ends[-1] < num_chunks):
            path = self.files[self.indexed_files]
            self.indexed_files += 1
            count = self.source.count(path, self.chunk_size)
            if count:
                self.sources.append(path)
                self.ends.append((self.ends[-1] if self.ends else 0) + count)

    def available(self, wanted: int) -> int:
        """min(wanted, number of chunks the data set holds), indexing only what it must."""
        self._index_until(wanted)
        return min(wanted, self.ends[-1] if self.ends else 0)

    def segments(self, start: int, stop: int) -> tuple[Segment, ...]:
        """The segments that make up chunks [start, stop)."""
        if stop > self.available(stop):
            raise UsageError(f"{self.name} data holds only {self.available(stop)} chunks")
        segments = []
        position = start
        while position < stop:
            index = bisect.bisect_right(self.ends, position)
            begin = self.ends[index - 1] if index else 0
            count = min(stop, self.ends[index]) - position
            segments.append(Segment(self.sources[index], position - begin, count))
            position += count
        return tuple(segments)


def split_chunks(data: bytes, segment: Segment, chunk_size: int) -> list[bytes]:
    """A segment's bytes read in one piece, cut into its chunks (checked complete)."""
    if len(data) != segment.num_chunks * chunk_size:
        raise UsageError(f"{segment.source} is shorter than its index says (changed?)")
    return [data[offset:offset + chunk_size] for offset in range(0, len(data), chunk_size)]
