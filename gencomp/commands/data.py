"""`gencomp data download`: fetch enwik8, enwik9 and LibriSpeech into the data cache.

The cache (default ~/.cache/gencomp, or --cache-dir) is laid out like ../shared/data, so
`compress-bench` finds it on its own: text/enwik9, librispeech/LibriSpeech/<subset>/.
ImageNet cannot be downloaded without an account; point --image-dir at a copy.

What is verified, and on whose word:
- enwik8/enwik9: the archive's size (36,445,475 / 322,592,222 bytes), the zip's CRC-32,
  and the MD5 of the extracted file as Matt Mahoney publishes it
  (a1fa5ffddb56f4953e226637dabbb36a for enwik8, e206c3450ac99950df65bf70ef61a12d for
  enwik9, http://mattmahoney.net/dc/textdata.html);
- LibriSpeech: the SHA-256 of each archive, as torchaudio's LibriSpeech loader lists them
  (we cannot re-derive them here: this code was written without network access).
`--sha256` replaces these checks with the archive digest you give (mirrors, tests).

Nothing half-done stays behind: the archive downloads to a temporary file that is renamed
only once verified, files are extracted to a temporary name (a folder for LibriSpeech) and
renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from gencomp.errors import UsageError
from gencomp.locations import cache_dir

BASE_URL_ENV = "GENCOMP_DOWNLOAD_URL"
ENWIK_URL = "http://mattmahoney.net/dc"
LIBRISPEECH_URL = "https://www.openslr.org/resources/12"
#: torchaudio.datasets.librispeech._CHECKSUMS, SHA-256 of each subset's archive.
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
BLOCK = 1 << 20


@dataclass(frozen=True)
class Download:
    """One downloadable data set and how to check it."""

    name: str
    archive: str  # file name on the server
    base_url: str
    target: str  # path under the cache folder
    archive_size: int | None = None
    archive_sha256: str | None = None
    member_md5: str | None = None  # enwik: the extracted file's published MD5


DOWNLOADS = {
    "enwik8": Download("enwik8", "enwik8.zip", ENWIK_URL, "text/enwik8", 36_445_475,
                       member_md5="a1fa5ffddb56f4953e226637dabbb36a"),
    "enwik9": Download("enwik9", "enwik9.zip", ENWIK_URL, "text/enwik9", 322_592_222,
                       member_md5="e206c3450ac99950df65bf70ef61a12d"),
    **{f"librispeech-{subset}": Download(f"librispeech-{subset}", f"{subset}.tar.gz",
                                         LIBRISPEECH_URL, f"librispeech/LibriSpeech/{subset}",
                                         archive_sha256=digest)
       for subset, digest in LIBRISPEECH_SHA256.items()},
}
ALIASES = {"librispeech": "librispeech-train-clean-100"}  # the paper's subset


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<24}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)


@contextlib.contextmanager
def _temporary_path(folder: Path, name: str) -> Iterator[Path]:
    """A fresh temporary path next to where `name` will go; removed unless renamed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the cache folder {folder}: {error.strerror}") from error
    path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=folder))
    try:
        yield path / name
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fetch(url: str, destination: Path, console: Console) -> tuple[int, str, str]:
    """Stream `url` to `destination`; return (size, sha256, md5)."""
    import urllib.error  # with http and ssl: 20 ms that only a download needs
    import urllib.request

    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, \
                open(destination, "wb") as handle, _progress(console) as progress:
            length = response.headers.get("Content-Length")
            bar = progress.add_task(f"fetching {url.rsplit('/', 1)[-1]}",
                                    total=int(length) if length else None)
            while block := response.read(BLOCK):
                handle.write(block)
                sha256.update(block)
                md5.update(block)
                size += len(block)
                progress.update(bar, advance=len(block))
    except urllib.error.HTTPError as error:
        raise UsageError(f"download of {url} failed: HTTP {error.code} {error.reason}"
                         ) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise UsageError(f"download of {url} failed: {reason}") from error
    return size, sha256.hexdigest(), md5.hexdigest()


class _CountingReader:
    """A file wrapper that reports how far extraction has read (progress bar)."""

    def __init__(self, handle: IO[bytes], progress: Progress, bar: int) -> None:
        self.handle, self.progress, self.bar = handle, progress, bar

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.progress.update(self.bar, advance=len(block))
        return block


def _extract_enwik(archive: Path, item: Download, destination: Path, check_md5: bool,
                   console: Console) -> None:
    member = item.name
    md5 = hashlib.md5()
    try:
        with zipfile.ZipFile(archive) as bundle, _progress(console) as progress:
            if member not in bundle.namelist():
                raise UsageError(f"{item.archive} has no member {member!r}")
            bar = progress.add_task(f"extracting {member}", total=bundle.getinfo(member).file_size)
            with bundle.open(member) as source, open(destination, "wb") as target:
                while block := source.read(BLOCK):  # zipfile checks the CRC-32 at the end
                    target.write(block)
                    md5.update(block)
                    progress.update(bar, advance=len(block))
    except (zipfile.BadZipFile, OSError) as error:
        raise UsageError(f"{item.archive} is not a valid zip archive: {error}") from error
    if check_md5 and item.member_md5 and md5.hexdigest() != item.member_md5:
        raise UsageError(f"{member} has MD5 {md5.hexdigest()}, expected {item.member_md5}")


def _extract_librispeech(archive: Path, item: Download, destination: Path,
                         console: Console) -> None:
    """Extract LibriSpeech/<subset>/ of the archive to `destination`."""
    subset = Path(item.target).name
    try:
        with open(archive, "rb") as raw, _progress(console) as progress:
            bar = progress.add_task(f"extracting {subset}", total=archive.stat().st_size)
            with tarfile.open(fileobj=_CountingReader(raw, progress, bar), mode="r|gz") as tar:
                # filter="data": no absolute paths, no "..", no links out, no devices.
                tar.extractall(destination.parent / "unpacked", filter="data")
    except (tarfile.TarError, OSError) as error:
        raise UsageError(f"cannot extract {item.archive}: {error}") from error
    unpacked = destination.parent / "unpacked" / "LibriSpeech" / subset
    if not unpacked.is_dir():
        raise UsageError(f"{item.archive} has no LibriSpeech/{subset}/ folder")
    unpacked.rename(destination)


def download(name: str, cache: Path, base_url: str | None = None, url: str | None = None,
             sha256: str | None = None, force: bool = False,
             console: Console | None = None) -> Path:
    """Fetch, verify and extract one data set into `cache`; return where it now is."""
    console = console or Console(stderr=True)
    name = ALIASES.get(name, name)
    if name not in DOWNLOADS:
        raise UsageError(f"unknown data set {name!r}; choose from "
                         f"{', '.join([*DOWNLOADS, *ALIASES])} (ImageNet needs an account: "
                         "point --image-dir at your copy)")
    item = DOWNLOADS[name]
    target = cache / item.target
    if target.exists() and not force:
        console.print(f"{name}: already in {target} (--force fetches it again)")
        return target
    url = url or f"{(base_url or item.base_url).rstrip('/')}/{item.archive}"
    with _temporary_path(cache / "downloads", item.archive) as archive:
        size, archive_sha256, _ = _fetch(url, archive, console)
        if sha256 is not None:
            if archive_sha256 != sha256.lower():
                raise UsageError(f"{item.archive} has SHA-256 {archive_sha256}, expected {sha256}")
        else:
            if item.archive_size is not None and size != item.archive_size:
                raise UsageError(f"{item.archive} has {size:,} bytes, expected "
                                 f"{item.archive_size:,} (use --sha256 for another copy)")
            if item.archive_sha256 is not None and archive_sha256 != item.archive_sha256:
                raise UsageError(f"{item.archive} has SHA-256 {archive_sha256}, expected "
                                 f"{item.archive_sha256}")
        with _temporary_path(target.parent, target.name) as extracted:
            if item.name.startswith("enwik"):
                _extract_enwik(archive, item, extracted, sha256 is None, console)
            else:
                _extract_librispeech(archive, item, extracted, console)
            if target.is_dir():  # --force: replace the old copy only now
                shutil.rmtree(target)
            os.replace(extracted, target)
    console.print(f"{name}: verified and extracted to {target}")
    return target


data_app = typer.Typer(help="Fetch the benchmark's data sets.", no_args_is_help=True)


@data_app.command("download")
def download_command(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="enwik8, enwik9, librispeech (= "
                                      "librispeech-train-clean-100), librispeech-SUBSET."),
    cache: Path | None = typer.Option(None, "--cache-dir",
                                      help="Where to put them (default ~/.cache/gencomp)."),
    base_url: str | None = typer.Option(None, "--base-url", envvar=BASE_URL_ENV,
                                        help="Fetch ARCHIVE from BASE_URL/ARCHIVE instead."),
    url: str | None = typer.Option(None, "--url", help="The archive's full URL (one name)."),
    sha256: str | None = typer.Option(None, "--sha256",
                                      help="Expected SHA-256 of the archive (one name); "
                                           "replaces the built-in checks."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if present."),
) -> None:
    """Download, verify and extract data sets into the cache, laid out like ../shared/data."""
    if (url or sha256) and len(names) != 1:
        raise UsageError("--url and --sha256 apply to a single data set")
    for name in names:
        download(name, cache or cache_dir(), base_url, url, sha256, force)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
