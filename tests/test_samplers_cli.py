"""`gencomp sample`: outputs, metadata, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from gencomp import get_compressor
from gencomp.cli import main
from samplers import sample_continuation

PROMPT = b"It was the best of times, it was the worst of times, it was the age of wisdom, "


@pytest.fixture
def text_prompt(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.txt"
    path.write_bytes(b"HEADER" + PROMPT)
    return path


def run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cm_continues_text_with_a_copy_limit_unless_told_otherwise(
        text_prompt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cm's text default is exact sampling at T 0.5, top-k 2, copy limit 5, recorded in
    the JSON; --copy-limit 0 samples the plain sharpened distribution."""
    cm = get_compressor("cm")
    for given, recorded in [([], 5), (["--copy-limit", "0"], None), (["--copy-limit", "3"], 3)]:
        output = tmp_path / f"cm-{recorded}.txt"
        code, _, err = run(["sample", "-c", "cm", "--prompt", str(text_prompt), "--offset", "6",
                            "--length", "30", "--seed", "1", "-o", str(output), *given], capsys)
        assert code == 0, err
        record = json.loads(output.with_name(output.name + ".json").read_text())
        assert (record["sampled_with"], record["temperature"], record["top_k"],
                record["copy_limit"]) == ("exact", 0.5, 2, recorded)
        assert output.read_bytes() == sample_continuation(
            cm, PROMPT, 30, "exact", temperature=0.5, top_k=2, copy_limit=recorded, seed=1)


def test_text_output_is_exactly_the_continuation(text_prompt: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "sample.txt"
    code, out, err = run(["sample", "-c", "gzip", "--prompt", str(text_prompt), "--offset", "6",
                          "--prompt-bytes", str(len(PROMPT)), "--sampler", "lookahead",
                          "--length", "20", "--seed", "3", "--report", "-o", str(output)],
                         capsys)
    assert code == 0, err
    expected = sample_continuation(get_compressor("gzip"), PROMPT, 20, "lookahead",
                                   horizon=8, seed=3)
    assert output.read_bytes() == expected
    record = json.loads((tmp_path / "sample.txt.json").read_text())
    assert record["compressor"] == "gzip" and record["params"] == {"level": 9}
    assert (record["sampler"], record["seed"], record["horizon"]) == ("lookahead", 3, 8)
    assert record["prompt"]["text"] == PROMPT.decode()
    assert record["prompt"]["offset"] == 6
    assert 0 <= record["quality"]["known_word_share"] <= 1
    assert record["timings"]["seconds"] > 0
    assert expected.decode("utf-8", "backslashreplace") in out


def test_no_overwrite_without_force(text_prompt: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "sample.txt"
    arguments = ["sample", "-c", "gzip", "--prompt", str(text_prompt), "--length", "2",
                 "-o", str(output)]
    assert run(arguments, capsys)[0] == 0
    output.write_bytes(b"keep")
    code, _, err = run(arguments, capsys)
    assert code == 2 and "exists" in err and output.read_bytes() == b"keep"
    assert run([*arguments, "--force", "--seed", "1"], capsys)[0] == 0
    assert len(output.read_bytes()) == 2


def test_image_rows_and_patch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pixels = (np.arange(8 * 16).reshape(8, 16) * 3 % 256).astype(np.uint8)
    prompt = tmp_path / "tiny.png"
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(prompt)
    for task in ("rows", "patch"):
        output = tmp_path / f"{task}.png"
        code, _, err = run(["sample", "-c", "png", "--prompt", str(prompt), "--modality",
                            "image", "--image-task", task, "--crop", "0,0,16,4",
                            "-o", str(output)], capsys)
        assert code == 0, err
        result = np.asarray(Image.open(output))
        assert result.shape == (4, 16)
        kept = pixels[:4, :8] if task == "rows" else pixels[:2]
        np.testing.assert_array_equal(result[:kept.shape[0], :kept.shape[1]], kept)
        record = json.loads(output.with_name(output.name + ".json").read_text())
        assert record["prompt"]["task"] == task and record["params"] == {"width": None}
        # The codecs' image temperatures by task (samplers.defaults), unless asked.
        assert record["temperature"] == {"rows": 0.3, "patch": 0.7}[task]
    output = tmp_path / "asked.png"
    assert run(["sample", "-c", "png", "--prompt", str(prompt), "--modality", "image",
                "--crop", "0,0,16,4", "--temperature", "1", "-o", str(output)], capsys)[0] == 0
    assert json.loads((tmp_path / "asked.png.json").read_text())["temperature"] == 1.0


def test_model_compressors_sample_images_frozen_unless_asked(
        tmp_path: Path, text_prompt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Images from a model compressor: frozen at T 0.8 by default, learning with
    --learning; text keeps learning (the code-length distribution), and so does a sampler
    other than the exact one, which cannot freeze."""
    pixels = (np.arange(8 * 16).reshape(8, 16) * 7 % 256).astype(np.uint8)
    prompt = tmp_path / "tiny.png"
    Image.fromarray(pixels).save(prompt)
    recorded = {}
    for label, extra, modality, source in (
            ("image", [], "image", prompt), ("learning", ["--learning"], "image", prompt),
            ("text", ["--length", "3"], "text", text_prompt),
            ("lookahead", ["--sampler", "lookahead", "--crop", "0,0,8,2"], "image", prompt)):
        output = tmp_path / f"{label}.out"
        code, _, err = run(["sample", "-c", "cm", "--prompt", str(source), "--modality",
                            modality, *extra, "-o", str(output)], capsys)
        assert code == 0, err
        record = json.loads(output.with_name(output.name + ".json").read_text())
        recorded[label] = (record["frozen"], record["temperature"])
    assert recorded == {"image": (True, 0.8), "learning": (False, 0.8), "text": (False, 0.5),
                        "lookahead": (False, 0.8)}


def test_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tone = (np.sin(np.arange(800) / 5) * 12000).astype(np.int16)
    prompt = tmp_path / "tone.wav"
    soundfile.write(prompt, tone, 16000)
    output = tmp_path / "tone-out.wav"
    code, _, err = run(["sample", "-c", "flac", "--prompt", str(prompt), "--modality", "audio",
                        "--seconds", "0.025", "--length", "6", "-o", str(output)], capsys)
    assert code == 0, err
    samples, rate = soundfile.read(output, dtype="int16")
    assert rate == 16000 and len(samples) == 400 + 6
    np.testing.assert_array_equal(samples[:400] >> 8, tone[:400] >> 8)


@pytest.mark.parametrize("compressor, unit, used", [
    ("flac", "bits", "bits"), ("flac", "bytes", "bytes"), ("zstd", "bits", "bytes")])
def test_length_unit_is_recorded_and_bytes_is_the_papers_sampler(
        compressor: str, unit: str, used: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tone = (np.sin(np.arange(800) / 5) * 12000).astype(np.int16)
    prompt = tmp_path / "tone.wav"
    soundfile.write(prompt, tone, 16000)
    output = tmp_path / "out.wav"
    code, _, err = run(["sample", "-c", compressor, "--prompt", str(prompt), "--modality",
                        "audio", "--length", "5", "--seed", "2", "--length-unit", unit,
                        "-o", str(output)], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "out.wav.json").read_text())
    assert (record["length_unit"], record["length_unit_used"]) == (unit, used)
    samples, _ = soundfile.read(output, dtype="int16")
    generated = ((samples[len(tone):] >> 8) + 128).astype(np.uint8).tobytes()
    prompt_bytes = ((tone >> 8) + 128).astype(np.uint8).tobytes()
    assert generated == sample_continuation(get_compressor(compressor).for_audio(prompt_bytes),
                                            prompt_bytes, 5, seed=2, length_unit=unit)


@pytest.mark.parametrize("arguments, message", [
    (["--prompt", "MISSING"], "not found"),
    (["--prompt", "EMPTY"], "prompt is empty"),
    (["--prompt", "TEXT", "--modality", "image"], "cannot read image"),
    (["--prompt", "TEXT", "--modality", "audio"], "cannot read audio"),
    (["--prompt", "TEXT", "--modality", "video"], "unknown modality"),
    (["--prompt", "TEXT", "--temperature", "-1"], "temperature"),
    (["--prompt", "TEXT", "--top-k", "0"], "top-k"),
    (["--prompt", "TEXT", "--horizon", "4"], "lookahead sampler only"),
    (["--prompt", "TEXT", "--sampler", "lookahead", "--horizon", "0"], "horizon"),
    (["--prompt", "TEXT", "--sampler", "exact"], "model compressor"),
    (["--prompt", "TEXT", "--sampler", "beam"], "unknown sampler"),
    (["--prompt", "TEXT", "--offset", "9999"], "outside"),
    (["--prompt", "TEXT", "--prompt-bytes", "0"], "prompt-bytes"),
    (["--prompt", "TEXT", "--crop", "0,0,4,4"], "--crop applies to --modality image"),
    (["--prompt", "TEXT", "--modality", "image", "--length", "5"], "does not apply"),
    (["--prompt", "TEXT", "--param", "level=99"], "level"),
    (["--prompt", "TEXT", "-c", "nosuch"], "unknown compressor"),
    (["--prompt", "TEXT", "--length-unit", "nats"], "unknown length unit"),
    (["--prompt", "TEXT", "--frozen"], "--frozen applies to model compressors"),
    (["--prompt", "TEXT", "--sampler", "lookahead", "--copy-limit", "5"],
     "--copy-limit applies to text"),
    (["--prompt", "TEXT", "-c", "cm", "--copy-limit", "-1"], "copy limit"),
])
def test_bad_input_is_one_line_and_exit_2(arguments: list[str], message: str, tmp_path: Path,
                                          text_prompt: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    replacements = {"MISSING": str(tmp_path / "missing.txt"), "TEXT": str(text_prompt),
                    "EMPTY": str(tmp_path / "empty.txt")}
    arguments = [replacements.get(argument, argument) for argument in arguments]
    if "-c" not in arguments:
        arguments = ["-c", "gzip", *arguments]
    output = tmp_path / "out.bin"
    code, _, err = run(["sample", *arguments, "-o", str(output)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not output.exists() and not (tmp_path / "out.bin.json").exists()


def test_an_image_is_continued_as_its_centre_patch_unless_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default is the paper's 32×64 patch (seconds), not the whole photo (an hour)."""
    pixels = (np.arange(34 * 66).reshape(34, 66) * 7 % 256).astype(np.uint8)
    prompt = tmp_path / "photo.png"
    Image.fromarray(pixels).save(prompt)
    patch = ["sample", "-c", "gzip", "--prompt", str(prompt), "--modality", "image",
             "--image-task", "patch", "--rows-given"]
    code, _, err = run([*patch, "31", "-o", str(tmp_path / "patch.png")], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "patch.png"))[:31],
                                  pixels[1:32, 1:65])
    record = json.loads((tmp_path / "patch.png.json").read_text())
    assert record["prompt"]["crop"] == "1,1,64,32" and record["prompt"]["shape"] == [32, 64]
    code, _, err = run([*patch, "33", "--whole-image", "-o", str(tmp_path / "whole.png")],
                       capsys)
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "whole.png")).shape == (34, 66)
    assert json.loads((tmp_path / "whole.png.json").read_text())["prompt"]["crop"] is None
    code, _, err = run([*patch, "3", "--whole-image", "--crop", "0,0,4,4"], capsys)
    assert code == 2 and "exclude each other" in err


def test_report_prints_rounded_measures(text_prompt: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sample", "-c", "gzip", "--prompt", str(text_prompt), "--length",
                          "30", "--report", "-o", str(tmp_path / "s.txt")], capsys)
    assert code == 0, err
    measures = out.splitlines()[-6:]
    assert any(line.startswith("known word share: ") and line.endswith(" %")
               for line in measures), out
    assert not any(len(number) > 6 for number in re.findall(r"[\d.]+", "\n".join(measures)))


def test_an_existing_output_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    """Seconds of loading the Transformer before "output exists" would be wasted."""
    prompt = tmp_path / "p.txt"
    prompt.write_bytes(PROMPT)
    (tmp_path / "out.txt").write_bytes(b"keep")
    (tmp_path / "p.txt.gcz").write_bytes(b"keep")
    script = ("import sys\nfrom gencomp.cli import main\n"
              f"codes = [main(['sample', '-c', 'transformer', '--prompt', {str(prompt)!r}, "
              f"'-o', {str(tmp_path / 'out.txt')!r}]), main(['compress', {str(prompt)!r}, "
              "'-c', 'transformer'])]\n"
              "print(codes, sorted(m for m in sys.modules if m.startswith(('torch', "
              "'predictors.transformer'))))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "[2, 2] []", result
    assert result.stderr.count("output exists") == 2
