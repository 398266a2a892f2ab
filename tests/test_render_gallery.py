"""`gencomp render`: the gallery opens in a real browser (headless Chromium, see
`tests/chromium.py`) with every image decoded and every audio clip at least a second long,
is reproducible, is replaced only on request, and bad prompts get a one-line error. The
committed curated gallery is checked the same way, and its screenshot beside it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from gencomp.cli import main
from gencomp.gallery import GallerySettings, plan_jobs
from gencomp.render import wav_bytes
from tests.chromium import WINDOW_WIDTH, assert_everything_loaded, inspect_page

CURATED = Path(__file__).resolve().parent.parent / "outputs" / "curated"


def _bench_run(bench_dir: Path) -> None:
    """A compress-bench run folder as the bench writes it: table.md and figure.png."""
    run = bench_dir / "run-1"
    run.mkdir(parents=True)
    (run / "table.md").write_text("| compressor | text rate |\n| --- | --- |\n| gzip | 32.0 |\n")
    figure = Figure(figsize=(3, 2))
    figure.subplots().bar(["gzip"], [32.0])
    figure.savefig(run / "figure.png")


#: Small settings: an 8×16 image, 1 s of audio given and 0.02 s generated after 256 samples
#: of context, 8 text bytes; two codecs, in this process.
TINY = ["--compressors", "gzip,png", "--image-size", "8x16", "--audio-prompt", "1",
        "--audio-length", "0.02", "--audio-context", "256", "--prompt-bytes", "64",
        "--length", "8", "--workers", "1"]


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    _bench_run(root / "bench")
    assert main(["render", "-o", str(root / "gallery"), *TINY,
                 "--bench-dir", str(root / "bench")]) == 0
    return root / "gallery"


def test_gallery_opens_with_every_image_and_clip(tiny_gallery: Path, tmp_path: Path) -> None:
    report = inspect_page(tiny_gallery / "index.html", tmp_path / "shot.png", tmp_path / "p")
    assert_everything_loaded(report, min_seconds=1.0)
    sources = sorted(image["src"] for image in report["images"])
    assert sources == ["audio_spectrogram.png", "bench_figure.png", "image_grid.png",
                       "patch_grid.png"]
    assert len(report["audio"]) == 3  # the original and two compressors
    for clip in report["audio"]:
        assert clip["duration"] == pytest.approx(1.02, abs=1e-3)
    screenshot = np.asarray(Image.open(tmp_path / "shot.png").convert("L"))
    assert screenshot.shape[1] == WINDOW_WIDTH
    assert screenshot.shape[0] > 900 and screenshot.std() > 10  # a long, non-blank page


def test_the_curated_gallery_plays_and_its_screenshot_is_of_it(tmp_path: Path) -> None:
    """outputs/curated, which the README shows: every clip ≥ 1 s (a second given, half a
    second generated), every image decoded, and the committed screenshot the size of the
    page as it renders now (`python -m tests.chromium` remakes it)."""
    report = inspect_page(CURATED / "index.html", tmp_path / "shot.png", tmp_path / "p")
    assert_everything_loaded(report, min_seconds=1.0)
    manifest = json.loads((CURATED / "gallery.json").read_text())
    clips = [name for name in manifest["files"] if name.endswith(".wav")]
    assert len(report["audio"]) == len(clips) >= 1 + len(manifest["settings"]["compressors"])
    assert all(clip["duration"] >= 1.5 - 1e-3 for clip in report["audio"])
    assert {image["src"] for image in report["images"]} >= {"image_grid.png", "patch_grid.png",
                                                           "audio_spectrogram.png"}
    fresh = Image.open(tmp_path / "shot.png")
    committed = Image.open(CURATED / "screenshot.png")
    assert committed.size[0] == fresh.size[0] == WINDOW_WIDTH
    assert abs(committed.size[1] - fresh.size[1]) <= 0.05 * fresh.size[1]


def test_a_broken_image_or_clip_is_caught(tiny_gallery: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_gallery, broken)
    (broken / "image_grid.png").unlink()
    (broken / "audio_gzip_code-length.wav").write_bytes(b"RIFF not really a wav")
    (broken / "audio_png_code-length.wav").write_bytes(wav_bytes(np.full(8000, 128, np.uint8)))
    report = inspect_page(broken / "index.html", tmp_path / "shot.png", tmp_path / "p")
    with pytest.raises(AssertionError, match=r"image_grid.png.*audio_gzip_code-length.wav.*"
                                             r"audio_png_code-length.wav \(0.500 s\)"):
        assert_everything_loaded(report, min_seconds=1.0)
    images = {image["src"]: image["width"] for image in report["images"]}
    assert images["image_grid.png"] == 0
    assert images["audio_spectrogram.png"] > 0 and images["bench_figure.png"] > 0
    assert [clip["error"] for clip in report["audio"]] == [None, 4, None]  # 4: unsupported



def test_same_seed_same_gallery_and_force_replaces_it(tiny_gallery: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again"
    bench = tiny_gallery.parent / "bench"
    assert main(["render", "-o", str(again), *TINY, "--bench-dir", str(bench),
                 "--workers", "2"]) == 0  # worker processes make the same files
    manifest = json.loads((again / "gallery.json").read_text())
    for name in manifest["files"]:
        assert (again / name).read_bytes() == (tiny_gallery / name).read_bytes(), name

    capsys.readouterr()
    assert main(["render", "-o", str(again), *TINY, "--modalities", "text"]) == 2
    assert "--force" in _one_error_line(capsys)
    assert (again / "image_grid.png").exists()  # untouched
    assert main(["render", "-o", str(again), *TINY, "--modalities", "text", "--seed", "1",
                 "--bench-dir", str(tmp_path / "no-bench"), "--force"]) == 0
    assert sorted(path.name for path in again.iterdir()) == ["gallery.json", "index.html",
                                                             "text_samples.md"]
    assert [path.name for path in tmp_path.iterdir()] == ["again"]  # no leftover staging


def test_both_length_units_side_by_side_once_per_unit_a_codec_offers() -> None:
    """bits,bytes: a row per unit for a codec that counts both (gzip), one for a codec that
    counts bytes only (lzma2) and one for a model, whose unit is its predictor's."""
    settings = GallerySettings(compressors=("gzip", "lzma2", "cm"), modalities=("text",),
                               length_units=("bits", "bytes"))
    assert [job.label for job in plan_jobs(settings)] == [
        "gzip · code-length · bits", "gzip · code-length · bytes",
        "lzma2 · code-length · bytes", "cm · exact"]
    assert [job.label for job in plan_jobs(dataclasses.replace(
        settings, length_units=("bytes",)))] == ["gzip · code-length", "lzma2 · code-length",
                                                 "cm · exact"]


def test_each_row_samples_at_gencomp_samples_temperature_unless_one_is_given() -> None:
    settings = GallerySettings(compressors=("png", "cm"),
                               modalities=("image", "patch", "audio", "text"))
    assert [(job.modality, job.compressor, job.temperature) for job in plan_jobs(settings)] == [
        ("image", "png", 0.3), ("image", "cm", 0.8), ("patch", "png", 0.7),
        ("patch", "cm", 0.8), ("audio", "png", 1.0), ("audio", "cm", 1.0),
        ("text", "png", 1.0), ("text", "cm", 1.0)]
    assert {job.temperature for job in plan_jobs(dataclasses.replace(
        settings, temperature=0.5))} == {0.5}


def test_a_gallery_of_both_units_samples_each_with_its_own(tmp_path: Path) -> None:
    output = tmp_path / "gallery"
    assert main(["render", "-o", str(output), *TINY, "--modalities", "audio,text",
                 "--length-unit", "bits,bytes", "--no-bench"]) == 0
    manifest = json.loads((output / "gallery.json").read_text())
    assert "--length-unit bits,bytes" in manifest["command"]
    bits, in_bytes = ((output / f"audio_gzip_code-length_{unit}.wav").read_bytes()
                      for unit in ("bits", "bytes"))
    assert bits != in_bytes
    text = (output / "text_samples.md").read_text()
    assert "png · code-length · bits" in text and "png · code-length · bytes" in text


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gencomp: error:"), err
    return err[0]


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_prompt_of_the_wrong_kind_is_one_line_and_exit_2(
        modality: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_media = tmp_path / "notes.txt"
    not_media.write_text("this is text, not a picture or a sound\n" * 20)
    output = tmp_path / "gallery"
    assert main(["render", "-o", str(output), *TINY, "--modalities", modality,
                 f"--{modality}", str(not_media)]) == 2
    assert "notes.txt" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == [not_media]  # nothing written, no staging left


@pytest.mark.parametrize("options, message", [
    (["--compressors", "nosuch"], "unknown compressor"),
    (["--samplers", "nosuch"], "unknown sampler"),
    (["--samplers", "exact"], "model compressor"),
    (["--image-size", "32by64"], "HEIGHTxWIDTH"),
    (["--modalities", "video"], "unknown modality"),
    (["--length-unit", "bits,nats"], "unknown length unit"),
    (["--text", "/nonexistent/prompt.txt"], "not found"),
])
def test_bad_options_are_one_line_and_exit_2(options: list[str], message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-o", str(tmp_path / "gallery"), *TINY, *options]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "gallery").exists()


def test_never_replaces_a_folder_that_is_not_a_gallery(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["render", "-o", str(precious), *TINY, "--modalities", "text", "--force"]) == 2
    assert "holds no gallery" in _one_error_line(capsys)
    assert [path.name for path in precious.iterdir()] == ["thesis.tex"]


def test_bench_markdown_becomes_escaped_html() -> None:
    from gencomp.render.page import markdown_html

    page = markdown_html("# Title\n\nText with `code` and <b>.\n\n| a | b |\n|---|---:|\n"
                         "| 1 | <script> |\n\nNotes\n- one\n  continued\n- two\n")
    assert "<h3>Title</h3>" in page and "<code>code</code>" in page
    assert "<script>" not in page and "&lt;b&gt;" in page
    assert page.count("<tr>") == 2 and page.count("<td>") == 2
    assert "<li>one continued</li><li>two</li>" in page


def test_without_bench_results_the_page_says_how_to_make_them(tmp_path: Path) -> None:
    from gencomp.gallery import newest_bench_section

    section = newest_bench_section(tmp_path / "bench")
    assert "gencomp compress-bench" in section.body and not section.files
