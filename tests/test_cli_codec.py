"""`gencomp compress` / `decompress` / `list` through the real CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gencomp.cli import main
from gencomp.compressor import compressor_specs

CLASSICAL = [spec.name for spec in compressor_specs() if not spec.is_model]


def _single_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gencomp: error:")
    return err[0]


@pytest.mark.parametrize("name", CLASSICAL)
def test_every_canterbury_and_enwik_file_restores_exactly(name: str, data_dir: Path,
                                                          tmp_path: Path) -> None:
    files = sorted((data_dir / "text" / "canterbury").iterdir())
    files.append(data_dir / "text" / "enwik8_first_4154400_bytes")
    for source in files:
        packed = tmp_path / (source.name + ".gcz")
        restored = tmp_path / (source.name + ".restored")
        assert main(["compress", str(source), "-o", str(packed), "-c", name]) == 0
        assert main(["decompress", str(packed), "-o", str(restored)]) == 0
        assert restored.read_bytes() == source.read_bytes()
        packed.unlink()
        restored.unlink()


@pytest.mark.parametrize("name", CLASSICAL)
def test_damaged_container_exits_2_with_one_line_and_no_output(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "input.txt"
    source.write_bytes(b"a line of text that will be compressed\n" * 50)
    packed = tmp_path / "input.txt.gcz"
    assert main(["compress", str(source), "-c", name]) == 0
    container = packed.read_bytes()
    step = max(1, len(container) // 40)
    damaged_versions = [container[:cut] for cut in range(0, len(container), step)]
    for position in range(0, len(container), step):
        flipped = bytearray(container)
        flipped[position] ^= 0xFF
        damaged_versions.append(bytes(flipped))
    for damaged in damaged_versions:
        bad = tmp_path / "bad.gcz"
        bad.write_bytes(damaged)
        capsys.readouterr()
        assert main(["decompress", str(bad), "-o", str(tmp_path / "out")]) == 2
        _single_error_line(capsys)
        assert not (tmp_path / "out").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.gcz", "input.txt",
                                                                "input.txt.gcz"]


def test_level_and_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "patch.bin"
    source.write_bytes(bytes(range(64)) * 32)
    assert main(["compress", str(source), "-c", "png", "--param", "width=64"]) == 0
    assert main(["compress", str(source), "-c", "zstd", "--level", "3", "-o",
                 str(tmp_path / "z.gcz")]) == 0
    assert main(["compress", str(source), "-c", "png", "--level", "3", "-o",
                 str(tmp_path / "p.gcz")]) == 2
    assert "has no level" in _single_error_line(capsys)
    assert main(["compress", str(source), "-c", "gzip", "--param", "nope=1", "-o",
                 str(tmp_path / "q.gcz")]) == 2
    assert "takes no parameter" in _single_error_line(capsys)


def test_no_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"precious")
    existing = tmp_path / "a.txt.gcz"
    existing.write_bytes(b"do not touch")
    assert main(["compress", str(source)]) == 2
    assert "--force" in _single_error_line(capsys)
    assert existing.read_bytes() == b"do not touch"
    assert main(["compress", str(source), "--force"]) == 0
    assert existing.read_bytes() != b"do not touch"
    assert source.read_bytes() == b"precious"


def test_bad_input_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        ["compress", str(tmp_path / "missing")],
        ["compress", str(tmp_path)],
        ["compress", str(tmp_path / "x"), "-c", "nope"],
        ["decompress", str(tmp_path / "missing.gcz")],
        ["compress"],
        ["compress", "--bogus-option", "x"],
    ]
    for arguments in cases:
        capsys.readouterr()
        assert main(arguments) == 2, arguments
        _single_error_line(capsys)


def test_list_names_every_compressor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in CLASSICAL:
        assert name in out


def test_console_script_pipes_stdin_to_stdout(tmp_path: Path) -> None:
    data = b"through a pipe and back " * 100
    script = [sys.executable, "-m", "gencomp"]
    packed = subprocess.run([*script, "compress", "-", "-c", "bz2"], input=data,
                            capture_output=True, check=True).stdout
    restored = subprocess.run([*script, "decompress", "-"], input=packed,
                              capture_output=True, check=True).stdout
    assert restored == data
    failed = subprocess.run([*script, "decompress", "-"], input=b"garbage", capture_output=True)
    assert failed.returncode == 2
    assert failed.stderr.decode().strip().count("\n") == 0
    assert b"Traceback" not in failed.stderr


def test_decompress_max_output_refuses_a_larger_container(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    original = tmp_path / "data.bin"
    original.write_bytes(b"gencomp " * 1000)  # 8000 bytes
    packed = tmp_path / "data.gcz"
    assert main(["compress", str(original), "-o", str(packed)]) == 0
    capsys.readouterr()
    for limit, code in (("7999", 2), ("7K", 2), ("8K", 0), ("lots", 2), ("-5", 2)):
        restored = tmp_path / f"restored-{limit}"
        assert main(["decompress", "--max-output", limit, str(packed), "-o", str(restored)]) == code
        assert restored.exists() == (code == 0)
        if code:
            error = capsys.readouterr().err.strip()
            assert error.startswith("gencomp: error:") and "\n" not in error
    assert (tmp_path / "restored-8K").read_bytes() == original.read_bytes()
