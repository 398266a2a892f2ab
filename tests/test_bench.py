"""The benchmark's arithmetic, its task plan, its output files and its CLI."""

from __future__ import annotations

import csv
import gzip
import json
import shlex
import zlib
from pathlib import Path

import pytest

from gencomp.bench import (
    BenchSettings,
    assemble,
    choose_compressors,
    plan_tasks,
    run_plan,
)
from gencomp.cli import main
from gencomp.compressor import get_compressor
from gencomp.datasets import DataLocations, load_chunks


def _text_file(tmp_path: Path) -> Path:
    """Five chunks of varied text plus a partial one (which must be dropped)."""
    words = [f"word{(index * 7919) % 1009} " for index in range(4000)]
    path = tmp_path / "enwik8"
    path.write_bytes("".join(words).encode()[: 5 * 2048 + 100])
    return path


def _run(tmp_path: Path, compressors: str, datasets: tuple[str, ...], num_chunks: int,
         task_chunks: int, **paths: Path) -> list[dict]:
    settings = BenchSettings(choose_compressors(compressors), datasets, num_chunks,
                             task_chunks=task_chunks)
    plan = plan_tasks(settings, DataLocations(paths=paths))
    return assemble(run_plan(plan, tmp_path / "run"))


def test_header_is_counted_once_and_unchunked_is_the_concatenation(tmp_path: Path) -> None:
    text = _text_file(tmp_path)
    rows = _run(tmp_path, "gzip,lzma2", ("text",), 100, 2, text=text)
    chunks = [text.read_bytes()[offset:offset + 2048] for offset in range(0, 5 * 2048, 2048)]
    gzip_row, lzma2_row = rows
    assert gzip_row["num_chunks"] == 5 and gzip_row["raw_bytes"] == 5 * 2048

    # By hand, with the libraries themselves: gzip -9 with a fixed header (mtime 0).
    def gzip_size(data: bytes) -> int:
        return len(gzip.compress(data, compresslevel=9, mtime=0))

    header = gzip_size(b"\x00")
    assert header == 21  # 10-byte header, 8-byte trailer, 3 bytes of DEFLATE
    total = sum(gzip_size(chunk) for chunk in chunks) - 4 * header
    assert gzip_row["header_bits"] == 8 * header
    assert gzip_row["chunked_rate"] == pytest.approx(100 * total / (5 * 2048), abs=1e-12)
    assert gzip_row["unchunked_rate"] == pytest.approx(
        100 * gzip_size(b"".join(chunks)) / (5 * 2048), abs=1e-12)

    lzma2 = get_compressor("lzma2")
    lzma2_total = (sum(lzma2.code_length_bits(chunk) for chunk in chunks)
                   - 4 * lzma2.code_length_bits(b"\x00"))
    assert lzma2_row["chunked_rate"] == pytest.approx(100 * lzma2_total / (8 * 5 * 2048))
    assert lzma2_row["unchunked_rate"] == pytest.approx(
        100 * lzma2.code_length_bits(b"".join(chunks)) / (8 * 5 * 2048))


def test_gzip_header_accounting_matches_zlib_raw_deflate(tmp_path: Path) -> None:
    """Header-once gzip is raw DEFLATE plus the 18 bytes of gzip framing once, less the
    3 DEFLATE bytes of the one-byte probe for every chunk but one."""
    text = _text_file(tmp_path)
    row = _run(tmp_path, "gzip", ("text",), 5, 5, text=text)[0]
    chunks = [text.read_bytes()[offset:offset + 2048] for offset in range(0, 5 * 2048, 2048)]

    def deflate_size(data: bytes) -> int:
        stream = zlib.compressobj(9, zlib.DEFLATED, -15)
        return len(stream.compress(data) + stream.flush())

    expected = sum(deflate_size(chunk) for chunk in chunks) + 18 - 4 * 3
    assert row["chunked_rate"] == pytest.approx(100 * expected / (5 * 2048))


def test_tasks_cover_every_chunk_once_and_unchunked_tasks_come_first(tmp_path: Path) -> None:
    text = _text_file(tmp_path)
    settings = BenchSettings(choose_compressors("gzip,flac"), ("text", "random"), 5,
                             task_chunks=2)
    plan = plan_tasks(settings, DataLocations(paths={"text": text}))
    assert [task.mode for task in plan.tasks[:4]] == ["unchunked"] * 4
    assert len({task.key for task in plan.tasks}) == len(plan.tasks)
    for compressor in ("gzip", "flac"):
        for dataset in ("text", "random"):
            ranges = [(task.start, task.stop) for task in plan.tasks if task.mode == "chunked"
                      and task.compressor.name == compressor and task.dataset == dataset]
            assert ranges == [(0, 2), (2, 4), (4, 5)]
    assert plan.data["text"]["num_chunks"] == 5


def test_fewer_chunks_than_asked_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    text = _text_file(tmp_path)
    plan = plan_tasks(BenchSettings(choose_compressors("gzip"), ("text",), 9),
                      DataLocations(paths={"text": text}))
    assert plan.data["text"]["num_chunks"] == 5
    assert "only 5 chunks" in plan.warnings[0]


@pytest.mark.parametrize("arguments", [
    ["-c", "gzip,nonesuch"], ["-d", "text,video"], ["-n", "0"], ["--task-chunks", "-1"],
    ["--param", "gzip.level=42"], ["--param", "brotli.window=3"], ["--param", "level=3"],
    ["-c", "gzip", "--param", "zstd.level=3"], ["--executor", "threads"],
    ["--scheduler", "tcp://127.0.0.1:1", "--executor", "processes"]])
def test_bad_choices_fail_before_any_work(arguments: list[str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compress-bench", "-d", "random", "-o", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1, error
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_four_files_and_refuses_to_overwrite(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "run"
    arguments = ["compress-bench", "-c", "gzip,png", "-d", "image,random", "-n", "30",
                 "--task-chunks", "20", "--data-dir", str(data_dir), "-o", str(output)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "ours (paper)" in printed and "(68.6)" in printed  # gzip, ImageNet, chunked

    document = json.loads((output / "results.json").read_text())
    rows = {(row["compressor"], row["dataset"]): row for row in document["rows"]}
    expected = load_chunks("image", DataLocations(data_dir=data_dir), 30)
    png = get_compressor("png")
    by_hand = (sum(png.code_length_bits(chunk) for chunk in expected)
               - 29 * png.code_length_bits(b"\x00")) / (8 * 30 * 2048)
    assert rows["png", "image"]["chunked_rate"] == pytest.approx(100 * by_hand)
    assert rows["png", "image"]["paper_chunked"] == 61.7
    assert document["paper_scale_estimate"][-1]["compressor"] == "all"
    with open(output / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    assert "| gzip |" in (output / "table.md").read_text()
    assert (output / "figure.png").read_bytes().startswith(b"\x89PNG")
    assert len(list((output / "tasks").glob("*.json"))) == 2 * 2 * (1 + 2)
    recorded = json.loads((output / "run.json").read_text())["command"]
    assert shlex.split(recorded) == ["gencomp", *arguments]

    assert main(arguments) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*arguments, "--force"]) == 0


def test_resume_refuses_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    output = tmp_path / "run"
    base = ["compress-bench", "-c", "gzip", "-d", "random", "-n", "4", "-o", str(output)]
    assert main(base) == 0
    assert main([*base, "--resume", "--seed", "1"]) == 2
    assert "other settings (seed)" in capsys.readouterr().err
    assert main(["compress-bench", "--resume", "-o", str(tmp_path / "nothing")]) == 2
