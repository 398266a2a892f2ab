"""Reading what the user gave and writing outputs without ever leaving half a file.

Every output goes to a temporary file in the destination folder, is flushed and fsynced,
then renamed over the destination: a crash or Ctrl-C leaves either the old state or the
complete new file, never a partial one. Existing files are not replaced without `force`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from gencomp.errors import OutputExistsError, UsageError

STDIO = "-"


def read_input(path: str | Path) -> bytes:
    """The bytes of a file, or of stdin for '-', with a one-line error on any problem."""
    if str(path) == STDIO:
        return sys.stdin.buffer.read()
    path = Path(path)
    if not path.exists():
        raise UsageError(f"input not found: {path}")
    if path.is_dir():
        raise UsageError(f"input is a directory, expected a file: {path}")
    if path.is_char_device() or path.is_block_device():  # /dev/zero would never end
        raise UsageError(f"input is a device, expected a file (use '-' for stdin): {path}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error


def check_distinct(input_path: str | Path, output_path: str | Path) -> None:
    """Refuse an output that is the input itself (by another name too, e.g. a symlink):
    replacing it would destroy the data being read, --force or not."""
    if STDIO in (str(input_path), str(output_path)):
        return
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise UsageError(f"output would overwrite the input: {output_path}")


def check_writable(path: str | Path, force: bool) -> None:
    """Refuse early (before any work) to replace an existing output without `force`."""
    if str(path) == STDIO:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"output is a directory: {path}")
    if path.exists() and not force:
        raise OutputExistsError(f"output exists: {path} (use --force to overwrite)")
    if not path.parent.exists():
        raise UsageError(f"output folder does not exist: {path.parent}")
    if not path.parent.is_dir():
        raise UsageError(f"output folder is not a folder: {path.parent}")


@contextlib.contextmanager
def _write_errors_reported(path: Path) -> Iterator[None]:
    """A full disk or a read-only folder is the user's to fix: one line, not a traceback."""
    try:
        yield
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from error


@contextlib.contextmanager
def atomic_open(path: str | Path, force: bool = False) -> Iterator[IO[bytes]]:
    """Open `path` for binary writing; it appears, complete, only if the block succeeds."""
    path = Path(path)
    check_writable(path, force)
    with _write_errors_reported(path):
        descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                      dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            with _write_errors_reported(path):
                handle.flush()
                os.fchmod(handle.fileno(), _output_mode(path))
                os.fsync(handle.fileno())
        if path.exists() and not force:
            raise OutputExistsError(f"output exists: {path} (use --force to overwrite)")
        with _write_errors_reported(path):
            os.replace(temporary_name, path)
        _fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary_name)
        raise


def _output_mode(path: Path) -> int:
    """The permissions the output gets: those of the file it replaces (a private file stays
    private), else those of a new file under the umask. (mkstemp's own are 0600.)"""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable. Some file systems cannot sync a folder: then the
    rename is as durable as they make it."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_output(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write `data` atomically to `path`, or to stdout for '-'."""
    if str(path) == STDIO:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError as error:
            # The reader left (`| head`). Point stdout at /dev/null so that the
            # interpreter's own flush at exit does not fail a second time.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise UsageError("output pipe closed before all data was written") from error
        return
    with atomic_open(path, force) as handle, _write_errors_reported(Path(path)):
        handle.write(data)


def write_text(path: str | Path, text: str, force: bool = True) -> None:
    """Atomically write a UTF-8 text file (results, metadata); replaces by default."""
    write_output(path, text.encode("utf-8"), force=force)
