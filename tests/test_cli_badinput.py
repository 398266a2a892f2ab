"""Bad user input to every command: exit code 2, exactly one line on stderr, no traceback,
and no file written or changed.

One table for all commands. A case names its command path; the test first asserts that
the command exists, so a renamed or missing command fails loudly instead of passing.
Placeholders in arguments: {text} a real text file, {empty} an empty file, {folder} a
folder, {image} a real JPEG, {missing} a path that does not exist, {container} a valid
.gcz, {tampered} a copy of the shipped transformer checkpoint with one byte changed, {tmp}
the working folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from gencomp.cli import app, main
from predictors.transformer import WEIGHTS_DIR


@dataclass(frozen=True)
class BadInput:
    name: str
    command: tuple[str, ...]
    arguments: tuple[str, ...]
    #: A fragment of the expected message (case-insensitive).
    message: str


def case(name: str, command: str, arguments: str, message: str) -> BadInput:
    return BadInput(name, tuple(command.split()), tuple(arguments.split()), message)


CASES = [
    case("unknown-command", "", "nonesuch", "no such command"),
    # compress
    case("compress-missing-file", "compress", "{missing}", "not found"),
    case("compress-folder-as-input", "compress", "{folder}", "directory"),
    case("compress-device-as-input", "compress", "/dev/zero -o {folder}/zero.gcz", "device"),
    case("compress-no-input", "compress", "", "missing argument"),
    case("compress-unknown-compressor", "compress", "{text} -c nonesuch", "unknown compressor"),
    case("compress-level-out-of-range", "compress", "{text} --level 99", "level"),
    case("compress-level-not-a-number", "compress", "{text} --level abc", "--level"),
    case("compress-codec-without-level", "compress", "{text} -c png --level 3", "no level"),
    case("compress-param-without-value", "compress", "{text} --param width", "KEY=VALUE"),
    case("compress-unknown-param", "compress", "{text} --param nonesuch=1", "no parameter"),
    case("compress-bad-param-value", "compress", "{text} -c png --param width=-3", "width"),
    case("compress-param-wrong-type", "compress", "{text} -c flac --param sample_bits=x",
         "sample_bits"),
    case("compress-unknown-option", "compress", "{text} --bogus", "--bogus"),
    case("compress-output-folder-missing", "compress", "{text} -o {missing}/out.gcz",
         "does not exist"),
    case("compress-output-is-a-folder", "compress", "{text} -o {folder}", "directory"),
    case("compress-output-under-a-file", "compress", "{text} -o {text}/out.gcz", "not a folder"),
    case("compress-tampered-checkpoint", "compress",
         "{text} -c transformer --param checkpoint={tampered}", "sha256"),
    # decompress
    case("decompress-missing-file", "decompress", "{missing}", "not found"),
    case("decompress-folder-as-input", "decompress", "{folder}", "directory"),
    case("decompress-device-as-input", "decompress", "/dev/zero -o {folder}/zero", "device"),
    case("decompress-not-a-container", "decompress", "{text} -o out", "not a .gcz"),
    case("decompress-empty-file", "decompress", "{empty} -o out", "not a .gcz"),
    case("decompress-image-as-container", "decompress", "{image} -o out", "not a .gcz"),
    case("decompress-output-is-a-folder", "decompress", "{container} -o {folder}", "directory"),
    # list
    case("list-extra-argument", "list", "extra", "unexpected extra argument"),
    case("list-unknown-option", "list", "--bogus", "--bogus"),
    # compress-bench
    case("bench-unknown-compressor", "compress-bench", "-c nonesuch -o run", "unknown compressor"),
    case("bench-unknown-dataset", "compress-bench", "-d video -o run", "unknown data set"),
    case("bench-zero-chunks", "compress-bench", "-n 0 -o run", "num-chunks"),
    case("bench-negative-chunk-size", "compress-bench", "--chunk-size -1 -o run", "chunk-size"),
    case("bench-missing-text-file", "compress-bench", "-d text --text-file {missing} -o run",
         "not a file"),
    case("bench-file-as-image-dir", "compress-bench", "-d image --image-dir {text} -o run",
         "not a folder"),
    case("bench-unknown-executor", "compress-bench", "--executor nonesuch -o run",
         "unknown executor"),
    case("bench-bad-param", "compress-bench", "-c gzip --param gzip.level=99 -o run", "level"),
    case("bench-zero-workers", "compress-bench", "-w 0 -o run", "workers"),
    case("bench-output-is-a-file", "compress-bench",
         "-c gzip -d text --text-file {text} -n 1 -o {text} --force", "text.txt"),
    # sample
    case("sample-no-compressor", "sample", "--prompt {text}", "missing option"),
    case("sample-unknown-compressor", "sample", "-c nonesuch --prompt {text}",
         "unknown compressor"),
    case("sample-missing-prompt", "sample", "-c gzip --prompt {missing}", "not found"),
    case("sample-folder-as-prompt", "sample", "-c gzip --prompt {folder}", "directory"),
    case("sample-empty-prompt", "sample", "-c gzip --prompt {empty}", "empty"),
    case("sample-text-as-image", "sample", "-c png --prompt {text} --modality image -o out.png",
         "image"),
    case("sample-text-as-audio", "sample", "-c flac --prompt {text} --modality audio -o out.wav",
         "audio"),
    case("sample-image-as-audio", "sample",
         "-c flac --prompt {image} --modality audio -o out.wav", "audio"),
    case("sample-unknown-modality", "sample", "-c gzip --prompt {text} --modality video",
         "unknown modality"),
    case("sample-negative-length", "sample", "-c gzip --prompt {text} --length -1", "length"),
    case("sample-unknown-sampler", "sample", "-c gzip --prompt {text} --sampler nonesuch",
         "unknown sampler"),
    case("sample-negative-temperature", "sample", "-c gzip --prompt {text} --temperature -1",
         "temperature"),
    case("sample-zero-top-k", "sample", "-c gzip --prompt {text} --top-k 0", "top-k"),
    case("sample-zero-beam-width", "sample",
         "-c gzip --prompt {text} --sampler lookahead --beam-width 0", "beam width"),
    case("sample-offset-past-the-prompt", "sample", "-c gzip --prompt {text} --offset 99999999",
         "outside"),
    case("sample-bad-param", "sample", "-c gzip --prompt {text} --param level=99", "level"),
    case("sample-output-is-a-folder", "sample", "-c gzip --prompt {text} -o {folder}",
         "directory"),
    case("sample-output-is-the-prompt", "sample", "-c gzip --prompt {text} -o {text} --force",
         "input"),
    # train
    case("train-missing-data", "train", "--data {missing} --out run", "not found"),
    case("train-folder-as-data", "train", "--data {folder} --out run", "directory"),
    case("train-empty-data", "train", "--data {empty} --out run", "too small"),
    case("train-unknown-size", "train", "--data {text} --size huge --out run",
         "unknown transformer size"),
    case("train-zero-steps", "train", "--data {text} --steps 0 --out run", "--steps"),
    case("train-negative-learning-rate", "train", "--data {text} --lr -1 --out run", "--lr"),
    case("train-unknown-device", "train", "--data {text} --device tpu --out run", "device"),
    case("train-out-is-the-data", "train", "--data {text} --out {text}", "not a directory"),
    # render
    case("render-text-as-image", "render",
         "--image {text} --modalities image --compressors png -o gallery", "image"),
    case("render-text-as-audio", "render",
         "--audio {text} --modalities audio --compressors flac -o gallery", "audio"),
    case("render-missing-text", "render", "--text {missing} --modalities text -o gallery",
         "not found"),
    case("render-empty-text", "render",
         "--text {empty} --modalities text --compressors gzip -o gallery", "empty"),
    case("render-unknown-modality", "render", "--modalities video -o gallery",
         "unknown modality"),
    case("render-bad-image-size", "render", "--image-size 0x0 -o gallery", "image size"),
    case("render-unknown-compressor", "render", "--compressors nonesuch -o gallery",
         "unknown compressor"),
    case("render-unknown-sampler", "render", "--samplers nonesuch -o gallery",
         "unknown sampler"),
    case("render-negative-length", "render",
         "--text {text} --modalities text --compressors gzip --length -5 -o gallery", "length"),
    case("render-output-is-a-file", "render",
         "--text {text} --modalities text --compressors gzip -o {text} --force", "not a folder"),
    # data download
    case("download-no-name", "data download", "", "missing argument"),
    case("download-unknown-dataset", "data download", "nonesuch", "unknown data set"),
    case("download-cache-dir-is-a-file", "data download", "enwik8 --cache-dir {text}",
         "text.txt"),
]


@pytest.fixture
def workspace(tmp_path, monkeypatch, enwik8_megabyte, data_dir) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_bytes(enwik8_megabyte[:4000])
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    image = sorted((data_dir / "imagenet").glob("*.JPEG"))[0]
    shutil.copy(image, tmp_path / "image.jpeg")
    assert main(["compress", "text.txt", "-o", "text.gcz"]) == 0
    shutil.copy(WEIGHTS_DIR / "transformer_200k.json", tmp_path / "tampered.json")
    weights = bytearray((WEIGHTS_DIR / "transformer_200k.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (tmp_path / "tampered.safetensors").write_bytes(bytes(weights))
    return {"text": "text.txt", "empty": "empty.txt", "folder": "folder",
            "image": "image.jpeg", "missing": "missing", "container": "text.gcz",
            "tampered": "tampered.safetensors", "tmp": str(tmp_path)}


def command_exists(path: tuple[str, ...]) -> bool:
    command = typer.main.get_command(app)
    for name in path:
        command = getattr(command, "commands", {}).get(name)
        if command is None:
            return False
    return True


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes (an empty default output folder is no harm)."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("bad", CASES, ids=[bad.name for bad in CASES])
def test_bad_input_exits_2_with_one_line(bad, workspace, capsys):
    assert command_exists(bad.command), f"`gencomp {' '.join(bad.command)}` does not exist"
    arguments = [argument.format(**workspace) for argument in bad.arguments]
    folder = Path(workspace["tmp"])
    before = listing(folder)
    capsys.readouterr()

    code = main([*bad.command, *arguments])

    err = capsys.readouterr().err
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("gencomp: error: "), err
    assert bad.message.lower() in err.lower(), err
    assert listing(folder) == before, "a failed command left files behind"


@pytest.mark.parametrize("script, argument", [
    ("text_continuation.py", "missing.txt"),
    ("image_continuation.py", "missing.jpg"),
    ("audio_continuation.py", "missing.flac"),
    ("reproduce_table1.py", "many"),
])
def test_examples_refuse_bad_arguments_in_one_line(script: str, argument: str,
                                                   tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "examples" / script), argument],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{script}: error: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
