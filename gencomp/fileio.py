"""Reading what the user gave and writing outputs without ever leaving half a file.

Every output goes to a temporary file in the destination folder, is flushed and fsynced,
then renamed over the destination: a crash or Ctrl-C leaves either the old state or the
complete new file, never a partial one. Existing files are not replaced without `force`.
A temporary file is named `.NAME.HOST-PID.RANDOM.tmp`; one that a killed process left
behind (its PID on this host is gone) is removed by the next run that writes NAME.

Output to stdout ('-') is written with every write's result checked: a short write, a
full disk, a closed pipe or a stdout that was closed before we started (`>&-`) is an
error, never a silently truncated output with exit code 0.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from gencomp.errors import OutputClosedError, OutputExistsError, UsageError

STDIO = "-"
STDIN, STDOUT = 0, 1
#: Bytes handed to one write(2) on stdout.
_WRITE_BLOCK = 1 << 20

#: The standard streams (0, 1, 2) that were closed when `guard_standard_streams` ran.
_closed_streams: set[int] = set()
_STDOUT_CLOSED = "stdout is closed: nowhere to write the output (use -o FILE)"


def guard_standard_streams() -> None:
    """Give a standard stream the caller closed (`>&-`) /dev/null, and remember it.

    Left closed, its number would go to the next file we open (the temporary output file,
    say), and whatever is written to "stdout" would land in that file; and worker
    processes would inherit it. Data that should go to a closed stream is refused
    (`write_output`, `read_input`)."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
            _closed_streams.add(descriptor)


def read_input(path: str | Path) -> bytes:
    """The bytes of a file, or of stdin for '-', with a one-line error on any problem."""
    if str(path) == STDIO:
        if STDIN in _closed_streams:
            raise UsageError("stdin is closed: nothing to read for '-'")
        try:
            return sys.stdin.buffer.read()
        except OSError as error:
            raise UsageError(f"cannot read stdin: {error.strerror or error}") from error
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
        if STDOUT in _closed_streams:
            raise UsageError(_STDOUT_CLOSED)
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
    remove_stale_temporaries(path)
    temporary_name = None
    try:  # from before the temporary file exists: Ctrl-C at any point must remove it
        with _write_errors_reported(path):
            # The name is known to the cleanup below before the file is created
            # (tempfile.mkstemp creates it first: a Ctrl-C on its way out would leave the
            # file with its name lost). A name clash can only be with one of this process's
            # temporaries or a dead writer's, as the name carries our PID.
            while True:
                temporary_name = _temporary_name(path)
                with contextlib.suppress(FileExistsError):
                    descriptor = os.open(temporary_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                         0o600)
                    break
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
        if temporary_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary_name)
        raise


def _temporary_name(path: Path) -> str:
    """A fresh `.NAME.HOST-PID.RANDOM.tmp` beside `path`."""
    name = f"{_temporary_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp"
    return str(path.parent / name)


def _output_mode(path: Path) -> int:
    """The permissions the output gets: those of the file it replaces (a private file stays
    private), else those of a new file under the umask. (The temporary's own are 0600.)"""
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


def _temporary_prefix(path: Path) -> str:
    """`.NAME.HOST-`: the temporary files of `path` made on this host, before their PID."""
    host = re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname())[:32] or "host"
    return f".{path.name}.{host}-"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of `path` that killed writers left: only files named as
    `atomic_open` names them, made on this host, by a process that no longer exists (a
    live writer's file is never touched). Returns what was removed."""
    path = Path(path)
    pattern = re.compile(re.escape(_temporary_prefix(path)) + r"(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if (match and entry.is_file(follow_symlinks=False)
                    and not _process_exists(int(match.group(1)))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _write_all(descriptor: int, data: bytes) -> None:
    """write(2) until all of `data` is written: a short write is retried from where it
    stopped (Python's buffered writers can report one and drop the rest), and a write
    that makes no progress is an error."""
    remaining = memoryview(data)
    while remaining:
        written = os.write(descriptor, remaining[:_WRITE_BLOCK])
        if written <= 0:
            raise OSError(errno.EIO, "a write made no progress")
        remaining = remaining[written:]


@contextlib.contextmanager
def _stdout_errors_reported() -> Iterator[None]:
    """A reader that left is an OutputClosedError, any other failure a UsageError. Either
    way stdout then points at /dev/null, so that what is still buffered cannot fail a
    second time, unreported, when the interpreter flushes it at exit."""
    try:
        yield
    except OSError as error:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, STDOUT)
        os.close(null)
        if isinstance(error, BrokenPipeError):
            raise OutputClosedError("output pipe closed before all data was written") \
                from error
        raise UsageError(f"cannot write to stdout: {error.strerror or error}") from error


class _CheckedTextStream:
    """sys.stdout whose writes and flushes fail as our errors (`checked_stdout`); with no
    stream (stdout was closed), writing any text is an error."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is None:
            if text:
                raise UsageError(_STDOUT_CLOSED)
            return 0
        with _stdout_errors_reported():
            return self._stream.write(text)

    def flush(self) -> None:
        if self._stream is not None:
            with _stdout_errors_reported():
                self._stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextlib.contextmanager
def checked_stdout() -> Iterator[None]:
    """While the block runs, text printed to stdout (tables, results) is checked as data
    written with `write_stdout` is: a full disk, a closed pipe or a closed stdout is our
    error, not a traceback or an unnoticed loss. Leaving the block flushes it, checked."""
    original = sys.stdout
    sys.stdout = _CheckedTextStream(original)  # type: ignore[assignment]
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = original


def write_stdout(data: bytes) -> None:
    """Write all of `data` to stdout, checking every write; fsync it when stdout is a
    file, so that a disk that fills late still fails here."""
    _write_stdout_blocks([data])


def _write_stdout_blocks(blocks: Iterable[bytes]) -> None:
    check_writable(STDIO, force=True)
    with _stdout_errors_reported():
        if sys.stdout is not None:
            sys.stdout.flush()  # text printed before goes out first
        for block in blocks:
            _write_all(STDOUT, block)
        if stat.S_ISREG(os.fstat(STDOUT).st_mode):
            os.fsync(STDOUT)


def write_output(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write `data` atomically to `path`, or to stdout for '-'."""
    with streamed_output(path, force) as write:
        write(data)


@contextlib.contextmanager
def streamed_output(path: str | Path, force: bool = False
                    ) -> Iterator[Callable[[bytes], None]]:
    """A function that appends bytes to the output `path` (stdout for '-'), which holds
    them, complete, only if the block succeeds: what a decoder writes a piece at a time
    and checks only at its end. For stdout, which cannot take back what it was given,
    the pieces wait in an unnamed temporary file (in $TMPDIR) until then."""
    if str(path) == STDIO:
        check_writable(STDIO, force=True)
        spool_name = Path(tempfile.gettempdir()) / "gencomp spool file"
        with _write_errors_reported(spool_name):
            spool = tempfile.TemporaryFile()
        with spool:
            def spool_piece(piece: bytes) -> None:
                with _write_errors_reported(spool_name):
                    _write_all(spool.fileno(), piece)

            yield spool_piece
            spool.seek(0)
            _write_stdout_blocks(iter(lambda: spool.read(_WRITE_BLOCK), b""))
        return
    path = Path(path)
    with atomic_open(path, force) as handle:
        def write_piece(piece: bytes) -> None:
            with _write_errors_reported(path):
                _write_all(handle.fileno(), piece)

        yield write_piece


def write_text(path: str | Path, text: str, force: bool = True) -> None:
    """Atomically write a UTF-8 text file (results, metadata); replaces by default."""
    write_output(path, text.encode("utf-8"), force=force)
