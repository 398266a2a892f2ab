"""Reading what the user gave and writing outputs without ever leaving half a file.

Every output goes to a temporary file in the destination folder, is flushed and fsynced,
then renamed over the destination: a crash or Ctrl-C leaves either the old state or the
complete new file, never a partial one. Existing files are not replaced without `force`.
"""

from __future__ import annotations

import contextlib
import os
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
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error


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


@contextlib.contextmanager
def atomic_open(path: str | Path, force: bool = False) -> Iterator[IO[bytes]]:
    """Open `path` for binary writing; it appears, complete, only if the block succeeds."""
    path = Path(path)
    check_writable(path, force)
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                  dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists() and not force:
            raise OutputExistsError(f"output exists: {path} (use --force to overwrite)")
        os.replace(temporary_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary_name)
        raise


def write_output(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write `data` atomically to `path`, or to stdout for '-'."""
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with atomic_open(path, force) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str, force: bool = True) -> None:
    """Atomically write a UTF-8 text file (results, metadata); replaces by default."""
    write_output(path, text.encode("utf-8"), force=force)
