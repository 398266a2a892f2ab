"""The four data sets of Table 1, cut into chunks exactly as the paper prepares them.

- text: consecutive `chunk_size`-byte chunks of an enwik8/enwik9 file (last partial chunk
  dropped, as the paper's 488,281 chunks of enwik9 do);
- image: every image of a folder, in sorted path order, converted to RGB and then to
  grayscale as the mean of the three channels cast to uint8, cut into non-overlapping
  32×64 (height × width) patches in row-major order; a chunk is one patch, its 32 rows of
  64 pixels one after the other (other chunk sizes use the two closest factors, as PNG
  does);
- audio: every FLAC file of a folder (recursive, sorted), 16-bit samples reduced to 8-bit
  unsigned (high byte + 128, the paper's `audioop.lin2lin` + `bias`), cut into chunks per
  utterance, dropping each utterance's last partial chunk;
- random: seeded random bytes; chunk i depends only on (seed, i).

Work is split into chunk ranges (see `gencomp.bench`), so a data set is first *indexed*
(how many chunks each file holds, from the file size, the image header or the FLAC
header, without decoding), and a range [start, stop) becomes a list of `Segment`s that say
which file and which of its chunks to read. A segment list is small and self-contained: a
worker on another machine reads exactly its chunks with `read_chunks`, nothing more.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from gencomp.codecs.png import closest_factors
from gencomp.errors import DataNotFoundError, UsageError

DATASETS = ("text", "image", "audio", "random")
CHUNK_SIZE = 2048
DATA_ENV = "GENCOMP_DATA"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
AUDIO_SUFFIXES = (".flac",)
#: Where each data set lives under a data folder laid out like ../shared/data.
SUBFOLDERS = {"text": "text", "image": "imagenet", "audio": "librispeech"}
#: The option that points at each data set directly.
OPTIONS = {"text": "--text-file", "image": "--image-dir", "audio": "--audio-dir"}
DOWNLOADS = {"text": "gencomp data download enwik9", "image": None,
             "audio": "gencomp data download librispeech"}


def repo_root() -> Path:
    """The checkout this package runs from (gencomp/ is one level below it)."""
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where `gencomp data download` puts data sets (also searched for data)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gencomp"


@dataclass(frozen=True)
class DataLocations:
    """What the user said about where the data is; unset fields are searched for."""

    data_dir: Path | None = None
    text_file: Path | None = None
    image_dir: Path | None = None
    audio_dir: Path | None = None

    def explicit(self, dataset: str) -> Path | None:
        return {"text": self.text_file, "image": self.image_dir, "audio": self.audio_dir}.get(
            dataset)

    def roots(self) -> list[Path]:
        """Data folders to search, in order: --data-dir alone if given; otherwise
        $GENCOMP_DATA, ../shared/data from the repository root and from the working
        directory, and the download cache."""
        if self.data_dir is not None:
            return [Path(self.data_dir)]
        roots = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
        roots += [repo_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                  cache_dir()]
        unique: list[Path] = []
        for root in roots:
            if root.resolve() not in [seen.resolve() for seen in unique]:
                unique.append(root)
        return unique


def _text_candidates(folder: Path) -> list[Path]:
    """enwik files of a folder, the paper's enwik9 first, then enwik8, then any enwik*."""
    if not folder.is_dir():
        return []
    found = sorted(path for path in folder.glob("enwik*") if path.is_file())
    rank = {"enwik9": 0, "enwik8": 1}
    return sorted(found, key=lambda path: rank.get(path.name, 2))


def locate(dataset: str, locations: DataLocations) -> Path:
    """The file (text) or folder (image, audio) that holds `dataset`, or a one-line
    `DataNotFoundError` naming where we looked and how to point at it."""
    option = OPTIONS[dataset]
    explicit = locations.explicit(dataset)
    if explicit is not None:
        explicit = Path(explicit)
        wanted_file = dataset == "text"
        if (explicit.is_file() if wanted_file else explicit.is_dir()):
            return explicit
        kind = "file" if wanted_file else "folder"
        raise DataNotFoundError(f"{dataset} data not found: {option} {explicit} is not a {kind}")
    searched = []
    for root in locations.roots():
        folder = root / SUBFOLDERS[dataset]
        searched.append(str(folder / "enwik*") if dataset == "text" else str(folder))
        if dataset == "text":
            candidates = _text_candidates(folder)
            if candidates:
                return candidates[0]
        elif folder.is_dir():
            return folder
    download = DOWNLOADS[dataset]
    how = f"pass {option} or --data-dir DIR, or set {DATA_ENV}=DIR"
    if download:
        how += f" (fetch it with `{download}`)"
    raise DataNotFoundError(f"{dataset} data not found in {', '.join(searched)}: {how}")


@dataclass(frozen=True)
class Segment:
    """`num_chunks` consecutive chunks of one source, starting at its chunk `first`.

    `source` is a file path (text, image, audio) or the seed (random)."""

    source: str
    first: int
    num_chunks: int


@dataclass
class Dataset:
    """An indexed data set: how many chunks each source holds, in order.

    `sources` and `counts` grow lazily (`_index_until`): a run that needs 2,000 chunks of
    ImageNet reads the headers of a few dozen images, not of 1.28 million.
    """

    name: str
    chunk_size: int
    location: str
    files: list[str] = field(default_factory=list)  # every candidate source, in order
    indexed_files: int = 0
    sources: list[str] = field(default_factory=list)  # indexed files holding >= 1 chunk
    ends: list[int] = field(default_factory=list)  # cumulative chunk counts of `sources`

    def _count(self, source: str) -> int:
        if self.name == "text":
            return os.path.getsize(source) // self.chunk_size
        if self.name == "image":
            rows, columns = closest_factors(self.chunk_size)
            try:
                with Image.open(source) as image:
                    width, height = image.size
            except OSError as error:
                raise UsageError(f"cannot read image {source}: {error}") from error
            return (height // rows) * (width // columns)
        if self.name == "audio":
            try:
                frames = soundfile.info(source).frames
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise UsageError(f"cannot read audio {source}: {error}") from error
            return frames // self.chunk_size
        raise AssertionError(self.name)

    def _index_until(self, num_chunks: int) -> None:
        while self.indexed_files < len(self.files) and (not self.ends
                                                         or self.ends[-1] < num_chunks):
            source = self.files[self.indexed_files]
            self.indexed_files += 1
            count = self._count(source)
            if count:
                self.sources.append(source)
                self.ends.append((self.ends[-1] if self.ends else 0) + count)

    def available(self, wanted: int) -> int:
        """min(wanted, number of chunks the data set holds), indexing only what it must."""
        if self.name == "random":
            return wanted
        self._index_until(wanted)
        return min(wanted, self.ends[-1] if self.ends else 0)

    def segments(self, start: int, stop: int) -> tuple[Segment, ...]:
        """The segments that make up chunks [start, stop)."""
        if self.name == "random":
            return (Segment(self.location, start, stop - start),)
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


def _sorted_files(folder: Path, suffixes: Sequence[str]) -> list[str]:
    return sorted(str(path) for path in folder.rglob("*")
                  if path.suffix.lower() in suffixes and path.is_file())


def open_dataset(name: str, locations: DataLocations, chunk_size: int = CHUNK_SIZE,
                 seed: int = 0) -> Dataset:
    """Find and (lazily) index a data set; random data needs no files."""
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise UsageError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if name == "random":
        return Dataset(name, chunk_size, str(seed))
    location = locate(name, locations).absolute()  # workers elsewhere get the same paths
    if name == "text":
        files = [str(location)]
    else:
        files = _sorted_files(location, IMAGE_SUFFIXES if name == "image" else AUDIO_SUFFIXES)
        if not files:
            kinds = "JPEG/PNG images" if name == "image" else "FLAC files"
            raise DataNotFoundError(f"{name} data not found: no {kinds} in {location}; "
                                    f"pass {OPTIONS[name]} or --data-dir DIR, or set {DATA_ENV}")
    return Dataset(name, chunk_size, str(location), files=files)


@functools.lru_cache(maxsize=4)
def grayscale_image(path: str) -> np.ndarray:
    """RGB → mean of the three channels cast to uint8 (the paper's `np.mean(...).astype`).

    The integer floor of (r + g + b) / 3 equals the float mean truncated, exactly. Cached:
    consecutive tasks often share the image at their boundary."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint16)
    except OSError as error:
        raise UsageError(f"cannot read image {path}: {error}") from error
    return (rgb.sum(axis=-1) // 3).astype(np.uint8)


def image_patches(image: np.ndarray, first: int, num_chunks: int, chunk_size: int
                  ) -> list[bytes]:
    """Patches `first` .. `first + num_chunks - 1` of a grayscale image, row-major."""
    rows, columns = closest_factors(chunk_size)
    per_row = image.shape[1] // columns
    patches = []
    for index in range(first, first + num_chunks):
        top, left = (index // per_row) * rows, (index % per_row) * columns
        patches.append(image[top:top + rows, left:left + columns].tobytes())
    return patches


#: LibriSpeech's sample rate, at which audio is modelled (prompts in other rates are
#: resampled to it).
SAMPLE_RATE = 16000


def audio_to_bytes(samples: np.ndarray) -> bytes:
    """16-bit signed samples → 8-bit unsigned: the high byte (arithmetic shift) + 128."""
    return ((samples.astype(np.int16) >> 8) + 128).astype(np.uint8).tobytes()


def _read_audio(path: str, first: int, num_chunks: int, chunk_size: int) -> bytes:
    start = first * chunk_size
    try:
        samples, _ = soundfile.read(path, start=start, stop=start + num_chunks * chunk_size,
                                    dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise UsageError(f"cannot read audio {path}: {error}") from error
    if samples.shape[1] != 1:
        raise UsageError(f"expected mono audio, {path} has {samples.shape[1]} channels")
    return audio_to_bytes(samples[:, 0])


def _random_chunk(seed: int, index: int, chunk_size: int) -> bytes:
    return np.random.default_rng([seed, index]).bytes(chunk_size)


def read_chunks(name: str, segments: Sequence[Segment], chunk_size: int = CHUNK_SIZE
                ) -> list[bytes]:
    """The chunks the segments describe, in order; reads only those bytes."""
    chunks: list[bytes] = []
    for segment in segments:
        if name == "text":
            with open(segment.source, "rb") as handle:
                handle.seek(segment.first * chunk_size)
                data = handle.read(segment.num_chunks * chunk_size)
        elif name == "audio":
            data = _read_audio(segment.source, segment.first, segment.num_chunks, chunk_size)
        elif name == "image":
            chunks += image_patches(grayscale_image(segment.source), segment.first,
                                    segment.num_chunks, chunk_size)
            continue
        elif name == "random":
            chunks += [_random_chunk(int(segment.source), index, chunk_size)
                       for index in range(segment.first, segment.first + segment.num_chunks)]
            continue
        else:
            raise UsageError(f"unknown data set {name!r}")
        if len(data) != segment.num_chunks * chunk_size:
            raise UsageError(f"{segment.source} is shorter than its index says (changed?)")
        chunks += [data[offset:offset + chunk_size] for offset in range(0, len(data), chunk_size)]
    return chunks


def load_chunks(name: str, locations: DataLocations, num_chunks: int,
                chunk_size: int = CHUNK_SIZE, seed: int = 0) -> list[bytes]:
    """The first `num_chunks` chunks of a data set (fewer if it holds fewer)."""
    dataset = open_dataset(name, locations, chunk_size, seed)
    available = dataset.available(num_chunks)
    return read_chunks(name, dataset.segments(0, available), chunk_size)
