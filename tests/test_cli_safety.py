"""The CLI never loses a byte the user gave it: no overwrite without --force, never the
input as the output, no partial or temporary file after a failure or Ctrl-C."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gencomp.fileio
from gencomp.cli import main
from gencomp.codecs.bytestream import GzipCompressor
from gencomp.container import unpack
from gencomp.errors import UsageError
from gencomp.fileio import check_distinct

DATA = b"Precious user data that must never be lost.\n" * 200


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_bytes(DATA)
    return tmp_path


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in the folder (hidden temporaries included), with content and mtime."""
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in folder.iterdir()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_round_trip_keeps_the_input(folder, capsys):
    assert main(["compress", "data.txt"]) == 0
    assert main(["decompress", "data.txt.gcz", "-o", "copy.txt"]) == 0
    assert (folder / "data.txt").read_bytes() == DATA
    assert (folder / "copy.txt").read_bytes() == DATA
    assert unpack((folder / "data.txt.gcz").read_bytes()) == DATA
    assert sorted(path.name for path in folder.iterdir()) == ["copy.txt", "data.txt",
                                                              "data.txt.gcz"]


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_an_existing_output_is_refused_untouched_without_force(folder, capsys, command):
    assert main(["compress", "data.txt", "-o", "data.gcz"]) == 0
    source = "data.txt" if command == "compress" else "data.gcz"
    (folder / "existing").write_bytes(b"keep me")
    before = snapshot(folder)
    assert main([command, source, "-o", "existing"]) == 2
    assert "use --force" in one_error_line(capsys)
    assert snapshot(folder) == before

    assert main([command, source, "-o", "existing", "--force"]) == 0
    written = (folder / "existing").read_bytes()
    assert (unpack(written) if command == "compress" else written) == DATA
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_the_default_output_is_not_overwritten_either(folder, capsys):
    (folder / "data.txt.gcz").write_bytes(b"an older archive")
    assert main(["compress", "data.txt"]) == 2
    one_error_line(capsys)
    assert (folder / "data.txt.gcz").read_bytes() == b"an older archive"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_the_input_is_never_the_output(folder, capsys, force):
    assert main(["compress", "data.txt", "-o", "data.gcz"]) == 0
    (folder / "link.txt").symlink_to("data.txt")
    before = snapshot(folder)
    for arguments in (["compress", "data.txt", "-o", "data.txt"],
                      ["compress", "data.txt", "-o", "./link.txt"],
                      ["decompress", "data.gcz", "-o", "data.gcz"]):
        assert main(arguments + force) == 2
        assert "overwrite the input" in one_error_line(capsys)
    assert snapshot(folder) == before


def test_a_corrupt_container_leaves_no_output_and_no_temporary(folder, capsys):
    assert main(["compress", "data.txt", "-o", "data.gcz"]) == 0
    damaged = bytearray((folder / "data.gcz").read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (folder / "damaged.gcz").write_bytes(bytes(damaged))
    before = snapshot(folder)
    assert main(["decompress", "damaged.gcz"]) == 2
    assert "corrupt" in one_error_line(capsys)
    assert snapshot(folder) == before


def test_ctrl_c_while_compressing_leaves_no_file_and_exits_130(folder, capsys, monkeypatch):
    def interrupted(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(GzipCompressor, "compress", interrupted)
    before = snapshot(folder)
    assert main(["compress", "data.txt"]) == 130
    assert one_error_line(capsys) == "gencomp: interrupted\n"
    assert snapshot(folder) == before


def test_ctrl_c_while_writing_leaves_no_partial_or_temporary_file(folder, capsys, monkeypatch):
    """The interrupt lands after the temporary file is written, before the rename."""
    def interrupted(descriptor):
        raise KeyboardInterrupt

    (folder / "old.txt").write_bytes(b"previous version")
    monkeypatch.setattr(gencomp.fileio.os, "fsync", interrupted)
    assert main(["compress", "data.txt", "-o", "new.gcz"]) == 130
    assert main(["compress", "data.txt", "-o", "old.txt", "--force"]) == 130
    assert capsys.readouterr().err == "gencomp: interrupted\n" * 2
    assert sorted(path.name for path in folder.iterdir()) == ["data.txt", "old.txt"]
    assert (folder / "old.txt").read_bytes() == b"previous version"


def test_ctrl_c_as_the_temporary_file_is_created_leaves_no_file(folder, capsys, monkeypatch):
    """The interrupt lands the moment the temporary file exists, before its maker returns
    (the window where a Ctrl-C of a benchmark run left a task's temporary file)."""
    real_open = os.open

    def interrupted(name, flags, *args):
        real_open(name, flags, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(gencomp.fileio.os, "open", interrupted)
    assert main(["compress", "data.txt", "-o", "new.gcz"]) == 130
    monkeypatch.undo()
    assert capsys.readouterr().err == "gencomp: interrupted\n"
    assert sorted(path.name for path in folder.iterdir()) == ["data.txt"]


def test_a_full_disk_is_one_line_and_leaves_no_temporary(folder, capsys, monkeypatch):
    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gencomp.fileio.os, "fsync", disk_full)
    before = snapshot(folder)
    assert main(["compress", "data.txt"]) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert snapshot(folder) == before


def test_outputs_get_the_usual_file_mode_not_a_private_temporary_one(folder):
    umask = os.umask(0o022)
    try:
        assert main(["compress", "data.txt"]) == 0
    finally:
        os.umask(umask)
    assert (folder / "data.txt.gcz").stat().st_mode & 0o777 == 0o644


def test_a_reader_that_leaves_early_gets_one_line_not_a_traceback(folder):
    """`gencomp decompress big.gcz -o - | head -c 10`: the pipe closes mid-write."""
    (folder / "big").write_bytes(os.urandom(1 << 20))
    assert main(["compress", "big", "-c", "zstd", "--level", "1"]) == 0
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gencomp.cli import main; sys.exit(main())",
         "decompress", "big.gcz", "-o", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder)
    process.stdout.close()  # the reader is gone before a byte is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141  # 128 + SIGPIPE, as a shell reports it
    assert err == "gencomp: error: output pipe closed before all data was written\n"


def test_check_distinct_sees_through_links_and_relative_paths(folder):
    """The shared check every command writing a file next to its input uses."""
    (folder / "link.txt").symlink_to("data.txt")
    for same in ("data.txt", "./data.txt", "link.txt", str(folder / "data.txt")):
        with pytest.raises(UsageError, match="overwrite the input"):
            check_distinct("data.txt", same)
    check_distinct("data.txt", "other.txt")
    check_distinct("-", "-")


def test_a_forced_overwrite_keeps_the_replaced_files_permissions(folder):
    (folder / "private.gcz").write_bytes(b"old")
    (folder / "private.gcz").chmod(0o600)
    assert main(["compress", "data.txt", "-o", "private.gcz", "--force"]) == 0
    assert (folder / "private.gcz").stat().st_mode & 0o777 == 0o600
