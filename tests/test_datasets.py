"""The data sets are cut exactly as the paper cuts them, and read range by range."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from gencomp.cli import main
from gencomp.commands import user_message
from gencomp.constants import DATA_ENV
from gencomp.datasets import (
    DATASETS,
    DataLocations,
    DataSource,
    Segment,
    load_chunks,
    locate,
    open_dataset,
    read_chunks,
)
from gencomp.errors import DataNotFoundError


def test_text_chunks_are_consecutive_and_drop_the_partial_tail(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20  # 5120 bytes: two whole 2048-byte chunks and a tail
    path = tmp_path / "enwik9"
    path.write_bytes(data)
    chunks = load_chunks("text", DataLocations(paths={"text": path}), 10)
    assert chunks == [data[:2048], data[2048:4096]]
    dataset = open_dataset("text", DataLocations(paths={"text": path}))
    assert dataset.segments(1, 2) == (Segment(str(path), 1, 1),)
    assert read_chunks("text", dataset.segments(1, 2)) == [data[2048:4096]]


def _save_rgb(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(path)


def test_image_patches_are_grayscale_means_in_row_major_order(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet"
    (folder / "nested").mkdir(parents=True)
    # 70 rows × 130 columns: 2 × 2 whole 32×64 patches; the extra rows/columns are cut.
    rows, columns = np.mgrid[0:70, 0:130]
    red = (rows + 3 * columns) % 256
    green = (2 * rows + columns) % 256
    blue = (rows * columns) % 256
    _save_rgb(folder / "a.png", np.stack([red, green, blue], axis=-1))
    # Sorted after a.png; one patch of (1 + 2 + 2) / 3 = 1.67 → 1 (the mean truncated).
    _save_rgb(folder / "nested" / "b.png", np.tile([1, 2, 2], (32, 64, 1)))
    _save_rgb(folder / "c.png", np.zeros((31, 500, 3)))  # too short for a patch: no chunk

    chunks = load_chunks("image", DataLocations(paths={"image": folder}), 100)
    gray = (red + green + blue) // 3
    expected = [gray[top:top + 32, left:left + 64].astype(np.uint8).tobytes()
                for top in (0, 32) for left in (0, 64)]
    assert chunks[:4] == expected
    assert chunks[4] == bytes([1]) * 2048
    assert len(chunks) == 5
    # A patch's bytes are its 32 rows of 64 pixels, row-major.
    assert chunks[1][64 * 5 + 7] == gray[5, 64 + 7]

    dataset = open_dataset("image", DataLocations(paths={"image": folder}))
    assert dataset.available(100) == 5
    assert [segment.num_chunks for segment in dataset.segments(3, 5)] == [1, 1]
    assert read_chunks("image", dataset.segments(3, 5)) == chunks[3:5]


def test_audio_keeps_the_high_byte_plus_128_and_drops_partial_chunks(tmp_path: Path) -> None:
    folder = tmp_path / "librispeech" / "speaker"
    folder.mkdir(parents=True)
    known = np.array([-32768, -257, -256, -1, 0, 255, 256, 32767, 1000, -1000], dtype=np.int16)
    # (s >> 8) + 128, the paper's audioop.lin2lin(…, 2, 1) + bias 128:
    eight_bit = [0, 126, 127, 127, 128, 128, 129, 255, 131, 124]
    soundfile.write(folder / "1-0.flac", known, 16000, subtype="PCM_16")  # 2 chunks + 2 left
    soundfile.write(folder / "1-1.flac", known[:3], 16000, subtype="PCM_16")  # no whole chunk
    soundfile.write(folder / "2-0.flac", known[::-1], 16000, subtype="PCM_16")  # 2 + 2 left

    locations = DataLocations(paths={"audio": tmp_path / "librispeech"})
    chunks = load_chunks("audio", locations, 100, chunk_size=4)
    assert chunks == [bytes(eight_bit[0:4]), bytes(eight_bit[4:8]),
                      bytes(eight_bit[::-1][0:4]), bytes(eight_bit[::-1][4:8])]
    dataset = open_dataset("audio", locations, chunk_size=4)
    assert dataset.segments(1, 3) == (Segment(str(folder / "1-0.flac"), 1, 1),
                                      Segment(str(folder / "2-0.flac"), 0, 1))
    assert read_chunks("audio", dataset.segments(1, 3), chunk_size=4) == chunks[1:3]


def test_random_chunks_are_seeded_and_readable_by_range() -> None:
    first = load_chunks("random", DataLocations(), 6, seed=7)
    assert first == load_chunks("random", DataLocations(), 6, seed=7)
    assert first != load_chunks("random", DataLocations(), 6, seed=8)
    assert len(set(first)) == 6 and all(len(chunk) == 2048 for chunk in first)
    dataset = open_dataset("random", DataLocations(), seed=7)
    assert read_chunks("random", dataset.segments(2, 5)) == first[2:5]


def test_real_data_ranges_match_the_full_read(data_dir: Path) -> None:
    locations = DataLocations(data_dir=data_dir)
    for name in ("text", "image", "audio"):
        chunks = load_chunks(name, locations, 300)
        assert len(chunks) == 300 and {len(chunk) for chunk in chunks} == {2048}
        dataset = open_dataset(name, locations)
        assert read_chunks(name, dataset.segments(123, 257)) == chunks[123:257]


def test_data_is_found_through_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "enwik8").write_bytes(b"x" * 4096)
    (tmp_path / "text" / "enwik9").write_bytes(b"y" * 4096)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert locate("text", DataLocations()) == tmp_path / "text" / "enwik9"  # the paper's


def test_missing_data_names_the_data_set_and_the_cli_names_its_options(tmp_path: Path
                                                                      ) -> None:
    with pytest.raises(DataNotFoundError, match="image data not found in") as missing:
        open_dataset("image", DataLocations(data_dir=tmp_path))
    assert missing.value.dataset == "image" and "--" not in str(missing.value)
    assert "--image-dir or --data-dir DIR, or set GENCOMP_DATA" in user_message(missing.value)
    with pytest.raises(DataNotFoundError, match=".*missing is not a file") as not_file:
        open_dataset("text", DataLocations(paths={"text": tmp_path / "missing"}))
    assert "fetch it with `gencomp data download enwik9`" in user_message(not_file.value)


def test_missing_data_folder_is_one_line_and_exit_2(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compress-bench", "--data-dir", str(tmp_path / "nowhere"), "-d", "audio",
                 "-c", "gzip", "-o", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert "audio data not found" in error[0]
    assert "--audio-dir" in error[0] and "--data-dir" in error[0] and DATA_ENV in error[0]
    assert not (tmp_path / "out").exists()


# --- gencomp data download, against a local HTTP server ---------------------------------

@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    folder = tmp_path / "server"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *arguments: object) -> None:
        pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.name.endswith(".tmp"))


def test_download_enwik_checks_size_then_extracts_atomically(
        served: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, url = served
    text = b"<mediawiki>" + bytes(range(256)) * 40
    with zipfile.ZipFile(folder / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("enwik8", text)
    cache = tmp_path / "cache"
    command = ["data", "download", "enwik8", "--cache-dir", str(cache), "--base-url", url]

    # Not the real enwik8.zip: the built-in size check refuses it and keeps nothing.
    assert main(command) == 2
    assert "expected 36,445,475" in capsys.readouterr().err
    assert not (cache / "text" / "enwik8").exists() and _leftovers(cache) == []
    # A wrong digest is refused too.
    assert main([*command, "--sha256", "0" * 64]) == 2
    assert "SHA-256" in capsys.readouterr().err
    # With its digest the copy is accepted, extracted, and found by the benchmark.
    assert main([*command, "--sha256", _sha256(folder / "enwik8.zip")]) == 0
    assert (cache / "text" / "enwik8").read_bytes() == text
    assert _leftovers(cache) == [] and not list((cache / "downloads").iterdir())
    assert locate("text", DataLocations(data_dir=cache)) == cache / "text" / "enwik8"
    assert main(command) == 0  # present: nothing to fetch
    assert "already in" in capsys.readouterr().err


def test_download_librispeech_extracts_the_subset_only(served: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    folder, url = served
    samples = (np.arange(5000) * 37 % 60000 - 30000).astype(np.int16)
    flac = tmp_path / "19-198-0000.flac"
    soundfile.write(flac, samples, 16000, subtype="PCM_16")
    with tarfile.open(folder / "dev-clean.tar.gz", "w:gz") as archive:
        archive.add(flac, "LibriSpeech/dev-clean/19/198/19-198-0000.flac")
    cache = tmp_path / "cache"
    assert main(["data", "download", "librispeech-dev-clean", "--cache-dir", str(cache),
                 "--url", f"{url}/dev-clean.tar.gz",
                 "--sha256", _sha256(folder / "dev-clean.tar.gz")]) == 0
    chunks = load_chunks("audio", DataLocations(data_dir=cache), 10)
    assert chunks == [bytes(((samples[:2048] >> 8) + 128).astype(np.uint8)),
                      bytes(((samples[2048:4096] >> 8) + 128).astype(np.uint8))]
    assert _leftovers(cache) == []


def test_download_refuses_unsafe_archives_and_reports_http_errors(
        served: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, url = served
    evil = tmp_path / "evil.txt"
    evil.write_text("outside")
    with tarfile.open(folder / "test-clean.tar.gz", "w:gz") as archive:
        archive.add(evil, "../../escaped.txt")
    cache = tmp_path / "cache"
    assert main(["data", "download", "librispeech-test-clean", "--cache-dir", str(cache),
                 "--base-url", url, "--sha256", _sha256(folder / "test-clean.tar.gz")]) == 2
    assert "cannot extract" in capsys.readouterr().err
    assert not list(tmp_path.rglob("escaped.txt")) and _leftovers(cache) == []

    assert main(["data", "download", "enwik9", "--cache-dir", str(cache), "--base-url",
                 url]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "404" in error[0]
    assert main(["data", "download", "imagenet", "--cache-dir", str(cache)]) == 2
    assert "--image-dir" in capsys.readouterr().err


# --- a data set is one class and one registry entry --------------------------------------

class Lines(DataSource):
    """A toy data set: every .txt file of a folder, cut into whole chunks."""

    name = "toy"
    title = "Toy lines"
    subfolder = "toy"
    suffixes = (".txt",)
    paper_rates = {"chunked": {"gzip": 12.5}}

    def count(self, source: str, chunk_size: int) -> int:
        return Path(source).stat().st_size // chunk_size

    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        data = Path(segment.source).read_bytes()[segment.first * chunk_size:]
        return [data[index * chunk_size:(index + 1) * chunk_size]
                for index in range(segment.num_chunks)]


def test_a_new_data_set_runs_in_compress_bench(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DATASETS, "toy", Lines())
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_bytes(b"the same line again\n" * 300)  # 2 chunks
    (tmp_path / "toy" / "b.txt").write_bytes(bytes(range(256)) * 9)  # 1 chunk

    assert main(["compress-bench", "-c", "gzip", "-d", "toy", "-n", "10", "--data-dir",
                 str(tmp_path), "-o", str(tmp_path / "run")]) == 0

    row, = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert (row["dataset"], row["num_chunks"]) == ("toy", 3)
    assert 0 < row["chunked_rate"] < 100
    assert "Toy lines" in (tmp_path / "run" / "table.md").read_text()
    assert "(12.5)" in (tmp_path / "run" / "table.md").read_text()  # the paper-number column
