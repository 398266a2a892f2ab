"""The gallery: one static page showing what each compressor generates.

`build_gallery` samples continuations of an image, a speech clip and a text with every
requested compressor and sampler, renders them (image grid, WAV files and spectrograms,
escaped text) and writes `index.html` next to them, plus the newest `compress-bench` table
and figure if there is one. The page has no external assets: every file it shows is a
relative file in the same folder, so the folder can be zipped, mailed or opened from disk.

The gallery appears all at once or not at all: it is built in a hidden sibling folder and
renamed into place, and an existing gallery is replaced only with `force`.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from gencomp.compressor import (
    Compressor,
    available_compressors,
    compressor_spec,
    get_compressor,
)
from gencomp.datasets import DataLocations
from gencomp.errors import DataNotFoundError, OutputExistsError, UsageError
from gencomp.fileio import read_input, write_output, write_text
from gencomp.render.audio import (
    SAMPLE_RATE,
    AudioClip,
    audio_figure,
    figure_png,
    loudest_window,
    wav_bytes,
)
from gencomp.render.images import ImagePanel, image_grid, image_prompt_region
from gencomp.render.text import TextSample, text_html, text_markdown
from samplers import sample_continuation
from samplers.continuation import check_settings
from samplers.modalities import (
    continue_audio,
    continue_image_rows,
    load_audio_prompt,
    load_image_prompt,
)

#: Tried in this order; those not registered (e.g. no trained transformer) are left out.
DEFAULT_COMPRESSORS = ("gzip", "lzma2", "png", "flac", "cm", "transformer")
#: Default prompts, relative to a data folder laid out like ../shared/data.
DEFAULT_PROMPTS = {
    "image": Path("imagenet") / "n02391049_zebra.JPEG",
    "audio": Path("librispeech") / "train-clean-100" / "103-1240-0000.flac",
    "text": Path("text") / "enwik8_first_4154400_bytes",
}
#: Where the default text prompt starts: the Wikipedia article on Einstein, prose with
#: some wiki markup (byte 0 is XML metadata). Other texts start at --text-offset, 0.
DEFAULT_TEXT_OFFSET = 2_000_000
MODALITIES = tuple(DEFAULT_PROMPTS)
MANIFEST = "gallery.json"
INDEX = "index.html"

T = TypeVar("T")


@dataclass(frozen=True)
class GallerySettings:
    """Everything that determines a gallery; `command()` is the call that rebuilds it."""

    compressors: tuple[str, ...]
    image: Path | None = None
    audio: Path | None = None
    text: Path | None = None
    samplers: tuple[str, ...] = ("code-length",)
    horizon: int = 8
    temperature: float = 1.0
    modalities: tuple[str, ...] = MODALITIES
    image_size: tuple[int, int] = (32, 64)
    audio_prompt_seconds: float = 0.064
    audio_seconds: float = 0.064
    text_offset: int = 0
    prompt_bytes: int = 1024
    length: int = 100
    seed: int = 0
    bench_dir: Path | None = Path("outputs") / "bench"

    def command(self, output: Path) -> str:
        arguments = ["gencomp", "render", "-o", str(output)]
        for modality in self.modalities:
            arguments += [f"--{modality}", str(getattr(self, modality))]
        arguments += [
            "--modalities", ",".join(self.modalities),
            "--compressors", ",".join(self.compressors),
            "--samplers", ",".join(self.samplers),
            "--horizon", str(self.horizon),
            "--temperature", f"{self.temperature:g}",
            "--image-size", "{}x{}".format(*self.image_size),
            "--audio-prompt", f"{self.audio_prompt_seconds:g}",
            "--audio-length", f"{self.audio_seconds:g}",
            "--text-offset", str(self.text_offset),
            "--prompt-bytes", str(self.prompt_bytes),
            "--length", str(self.length),
            "--seed", str(self.seed),
        ]
        arguments += ["--no-bench"] if self.bench_dir is None else ["--bench-dir",
                                                                    str(self.bench_dir)]
        return shlex.join(arguments)


def default_compressors() -> tuple[str, ...]:
    registered = set(available_compressors())
    return tuple(name for name in DEFAULT_COMPRESSORS if name in registered)


def default_prompt(modality: str, data_dir: Path | None) -> Path:
    """The default prompt file of `modality`, searched where the benchmark looks for data."""
    roots = DataLocations(data_dir=data_dir).roots()
    for root in roots:
        if (root / DEFAULT_PROMPTS[modality]).is_file():
            return root / DEFAULT_PROMPTS[modality]
    raise DataNotFoundError(
        f"default {modality} prompt {DEFAULT_PROMPTS[modality]} not found under "
        f"{', '.join(map(str, roots))}: pass --{modality} FILE or --data-dir DIR")


def default_settings(data_dir: Path | None = None, **overrides: object) -> GallerySettings:
    """Settings with the default prompts and compressors; non-None `overrides` replace
    fields. Prompts are looked up only for the modalities that will be rendered."""
    fields = {key: value for key, value in overrides.items() if value is not None}
    fields.setdefault("compressors", default_compressors())
    for modality in fields.get("modalities", MODALITIES):  # type: ignore[union-attr]
        if modality in DEFAULT_PROMPTS and modality not in fields:
            fields[modality] = default_prompt(modality, data_dir)
            if modality == "text":
                fields.setdefault("text_offset", DEFAULT_TEXT_OFFSET)
    return GallerySettings(**fields)  # type: ignore[arg-type]


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Section:
    """One part of the page: its HTML and the files it refers to (name -> bytes)."""

    key: str
    title: str
    body: str
    files: dict[str, bytes] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _generate_all(settings: GallerySettings, modality: str,
                  generate: Callable[[Compressor, str, dict[str, Any]], T],
                  log: Callable[[str], None]) -> tuple[list[tuple[str, T]], dict[str, float]]:
    """Run `generate(compressor, sampler, options)` for every compressor × sampler, timing
    each; `options` are the sampler settings (seed, horizon, temperature).

    Returns [(label, result)] in order and {label: seconds}; labels read "gzip · code-length".
    """
    results: list[tuple[str, T]] = []
    seconds: dict[str, float] = {}
    options = {"seed": settings.seed, "horizon": settings.horizon,
               "temperature": settings.temperature}
    for name in settings.compressors:
        compressor = get_compressor(name)
        for sampler in settings.samplers:
            label = f"{name} · {sampler}"
            started = time.perf_counter()
            results.append((label, generate(compressor, sampler, options)))
            seconds[label] = time.perf_counter() - started
            log(f"{modality:5}  {label:32}  {seconds[label]:7.1f} s")
    return results, seconds


def _timing_note(seconds: dict[str, float]) -> str:
    parts = ", ".join(f"{label} {value:.1f} s" for label, value in seconds.items())
    return f'<p class="note">Generation time: {html.escape(parts)}.</p>' if parts else ""


def image_prompt(settings: GallerySettings) -> np.ndarray:
    """The image's centre, grayscale, downscaled to `image_size`."""
    return image_prompt_region(load_image_prompt(settings.image), *settings.image_size)


def image_section(settings: GallerySettings, region: np.ndarray,
                  log: Callable[[str], None]) -> Section:
    """The paper's Figure 3 setup: each row of the image, its first half given."""
    height, width = region.shape
    generated, seconds = _generate_all(
        settings, "image", lambda compressor, sampler, options: continue_image_rows(
            compressor, region, sampler=sampler, **options), log)
    panels = [ImagePanel("original", region)]
    panels += [ImagePanel(label, image) for label, image in generated]
    grid = image_grid(panels, split_column=width // 2,
                      title="left of the red bar: given; right: generated")
    files = {"image_grid.png": _png(grid)}
    body = (
        f"<p>{html.escape(settings.image.name)}: grayscale (mean of RGB), its centre "
        f"downscaled to {height}×{width} pixels. Every row's first {width // 2} pixels are "
        f"given; the compressor generates the rest of the row, pixel by pixel.</p>\n"
        f'<img src="image_grid.png" alt="image continuations">\n'
    )
    return Section("images", "Images", body, files, seconds)


def _png(image: Image.Image) -> bytes:
    with io.BytesIO() as buffer:
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def _audio_lengths(settings: GallerySettings) -> tuple[int, int]:
    return (round(settings.audio_prompt_seconds * SAMPLE_RATE),
            round(settings.audio_seconds * SAMPLE_RATE))


def audio_prompt(settings: GallerySettings) -> np.ndarray:
    """The loudest stretch of the utterance as long as prompt plus continuation."""
    total = sum(_audio_lengths(settings))
    utterance = load_audio_prompt(settings.audio)
    start = loudest_window(utterance, total)
    return utterance[start:start + total]


def audio_section(settings: GallerySettings, original: np.ndarray,
                  log: Callable[[str], None]) -> Section:
    """A speech prompt continued by each compressor: WAV players and spectrograms."""
    prompt_length, generated_length = _audio_lengths(settings)
    generated, seconds = _generate_all(
        settings, "audio", lambda compressor, sampler, options: continue_audio(
            compressor, original[:prompt_length], generated_length, sampler=sampler,
            **options), log)
    clips = [AudioClip("original", original, prompt_length)]
    clips += [AudioClip(label, samples, prompt_length) for label, samples in generated]
    files = {"audio_spectrogram.png": figure_png(audio_figure(clips))}
    rows = []
    for clip in clips:
        name = "audio_" + clip.label.replace(" · ", "_") + ".wav"
        files[name] = wav_bytes(clip.samples)
        rows.append(f'<tr><th>{html.escape(clip.label)}</th><td><audio controls '
                    f'preload="metadata" src="{html.escape(name)}"></audio></td></tr>')
    body = (
        f"<p>{html.escape(settings.audio.name)}, 8-bit 16 kHz mono as the compressors see "
        f"it; the loudest {settings.audio_prompt_seconds + settings.audio_seconds:g} s. "
        f"The first {settings.audio_prompt_seconds:g} s are given, the last "
        f"{settings.audio_seconds:g} s generated (after the red line).</p>\n"
        f'<table class="audio">\n' + "\n".join(rows) + "\n</table>\n"
        '<img src="audio_spectrogram.png" alt="waveforms and spectrograms">\n'
    )
    return Section("audio", "Audio", body, files, seconds)


def text_prompt(settings: GallerySettings) -> tuple[bytes, bytes]:
    """(prompt, the bytes that really follow it) from the text file."""
    data = read_input(settings.text)[settings.text_offset:]
    prompt = data[:settings.prompt_bytes]
    if not prompt:
        raise UsageError(f"text prompt is empty: {settings.text} from byte "
                         f"{settings.text_offset}")
    return prompt, data[settings.prompt_bytes:settings.prompt_bytes + settings.length]


def text_section(settings: GallerySettings, prompt_and_truth: tuple[bytes, bytes],
                 log: Callable[[str], None]) -> Section:
    """A text prompt continued by each compressor, every byte visible."""
    prompt, truth = prompt_and_truth
    generated, seconds = _generate_all(
        settings, "text", lambda compressor, sampler, options: sample_continuation(
            compressor, prompt, settings.length, sampler=sampler, **options), log)
    samples = [TextSample("original", truth)] if truth else []
    samples += [TextSample(label, continuation) for label, continuation in generated]
    files = {"text_samples.md": text_markdown(prompt, samples).encode("utf-8")}
    body = (
        f"<p>{html.escape(settings.text.name)}: {len(prompt)} bytes from byte "
        f"{settings.text_offset} are the prompt; each compressor generates "
        f"{settings.length} bytes. Escapes such as "
        f'<span class="esc">\\x00</span> and <span class="esc">↵</span> (newline) mark '
        f"bytes that are not printable text.</p>\n" + text_html(prompt, samples)
        + '<p><a href="text_samples.md">text_samples.md</a> (the same as Markdown)</p>\n'
    )
    return Section("text", "Text", body, files, seconds)


def newest_bench_run(bench_dir: Path) -> Path | None:
    """The `compress-bench` run folder with the newest table.md, or None."""
    tables = sorted(bench_dir.glob("*/table.md"), key=lambda path: path.stat().st_mtime)
    return tables[-1].parent if tables else None


def _bench_command(run: Path) -> str | None:
    """The command recorded in the run's manifest, if the bench recorded one."""
    try:
        command = json.loads((run / "run.json").read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def _inline_markdown(text: str) -> str:
    """Escaped text with `code` spans (all the inline markup the bench report uses)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if index % 2 else part
                   for index, part in enumerate(parts))


def markdown_html(markdown: str) -> str:
    """HTML for the Markdown subset `compress-bench` writes: headings, pipe tables, bullet
    lists (items may continue on indented lines) and paragraphs. No library needed, and
    nothing in the file can inject markup: all text is escaped."""
    blocks: list[str] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if not line:
            index += 1
        elif line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + 2)
            blocks.append(f"<h{level}>{_inline_markdown(line.lstrip('#').strip())}</h{level}>")
            index += 1
        elif line.startswith("|"):
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append([cell.strip() for cell in lines[index].strip().strip("|").split("|")])
                index += 1
            separator = len(rows) > 1 and all(set(cell) <= set("-: ") for cell in rows[1])
            body = rows[2:] if separator else rows[1:]
            cells = ["<tr>" + "".join(f"<th>{_inline_markdown(cell)}</th>" for cell in rows[0])
                     + "</tr>"]
            cells += ["<tr>" + "".join(f"<td>{_inline_markdown(cell)}</td>" for cell in row)
                      + "</tr>" for row in body]
            blocks.append('<table class="bench">' + "\n".join(cells) + "</table>")
        elif line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith(("- ", "  ")):
                if lines[index].startswith("- "):
                    items.append(lines[index][2:].strip())
                else:
                    items[-1] += " " + lines[index].strip()
                index += 1
            blocks.append("<ul>" + "".join(f"<li>{_inline_markdown(item)}</li>" for item in items)
                          + "</ul>")
        else:
            paragraph = []
            while index < len(lines) and lines[index].strip() and not lines[index].startswith(
                    ("#", "|", "- ")):
                paragraph.append(lines[index].strip())
                index += 1
            blocks.append(f"<p>{_inline_markdown(' '.join(paragraph))}</p>")
    return "\n".join(blocks) + "\n"


def bench_section(bench_dir: Path) -> Section:
    """The newest benchmark table and figure, or a note saying how to make them."""
    run = newest_bench_run(bench_dir) if bench_dir.is_dir() else None
    if run is None:
        body = (f"<p class=\"note\">No benchmark results yet in "
                f"{html.escape(str(bench_dir))}: run <code>gencomp compress-bench</code>, "
                f"then render again.</p>\n")
        return Section("bench", "Compression rates", body)
    files = {}
    body = f"<p>From <code>{html.escape(str(run))}</code>.</p>\n"
    body += markdown_html((run / "table.md").read_text(encoding="utf-8", errors="replace"))
    if (run / "figure.png").is_file():
        files["bench_figure.png"] = (run / "figure.png").read_bytes()
        body += '<img src="bench_figure.png" alt="benchmark figure">\n'
    command = _bench_command(run)
    if command:
        body += f'<p class="command">Made by <code>{html.escape(command)}</code></p>\n'
    return Section("bench", "Compression rates", body, files)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; }
img { max-width: 100%; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }
th { white-space: nowrap; font-weight: 600; }
.prompt { color: #999; }
.generated { color: #0b5; font-weight: 600; }
.esc { color: #c22; background: #fee; }
.note { color: #666; }
.command code { background: #f4f4f4; padding: 0.2em 0.4em; }
"""


def gallery_html(sections: list[Section], command: str) -> str:
    """The page: an introduction, the command, then every section."""
    navigation = " · ".join(f'<a href="#{section.key}">{section.title}</a>'
                            for section in sections)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="generator" content="gencomp render">',
        "<title>gencomp gallery: what compressors generate</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        "<h1>What compressors generate</h1>",
        "<p>Every lossless compressor is a generative model: its code length ℓ(x) defines "
        "ρ(b | x) ∝ 2<sup>ℓ(x) − ℓ(x·b)</sup> over the next byte b (Delétang et al., "
        "<i>Language Modeling Is Compression</i>, ICLR 2024). Below, each compressor "
        "continues the same image, speech clip and text.</p>",
        f'<p class="command">Made by <code>{html.escape(command)}</code></p>',
        f"<nav>{navigation}</nav>",
    ]
    for section in sections:
        parts += [f'<section id="{section.key}"><h2>{section.title}</h2>', section.body,
                  _timing_note(section.seconds), "</section>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


PROMPTS: dict[str, Callable[[GallerySettings], Any]] = {
    "image": image_prompt, "audio": audio_prompt, "text": text_prompt}
SECTIONS: dict[str, Callable[[GallerySettings, Any, Callable[[str], None]], Section]] = {
    "image": image_section, "audio": audio_section, "text": text_section}


def check_output_dir(output: Path, force: bool) -> None:
    """Refuse early to replace an existing folder unless it is a gallery and `force` is on.

    A folder that is not empty and holds no gallery manifest is never replaced, even with
    `force`: `-o ~` must not delete a home folder.
    """
    if output.exists() and not output.is_dir():
        raise UsageError(f"output is not a folder: {output}")
    if output.is_dir() and any(output.iterdir()):
        if not (output / MANIFEST).is_file():
            raise UsageError(f"output folder is not empty and holds no gallery: {output}")
        if not force:
            raise OutputExistsError(f"output exists: {output} (use --force to overwrite)")
    if not output.parent.is_dir():
        raise UsageError(f"output folder's parent does not exist: {output.parent}")


def _sibling(output: Path, purpose: str) -> Path:
    """A new hidden folder next to `output` (made with the user's umask, unlike mkdtemp's
    private 0700 folders, since it becomes the gallery)."""
    folder = output.parent / f".{output.name}.{purpose}.{os.getpid()}.{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


def _publish(staging: Path, output: Path, force: bool) -> None:
    """Rename `staging` to `output`, swapping out an old gallery."""
    check_output_dir(output, force)
    if output.exists():
        retired = _sibling(output, "old")
        os.replace(output, retired / output.name)
        os.replace(staging, output)
        shutil.rmtree(retired)
    else:
        os.replace(staging, output)


def _check_inputs(settings: GallerySettings) -> None:
    for modality in settings.modalities:
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality {modality!r}; choose from "
                             f"{', '.join(MODALITIES)}")
        path = getattr(settings, modality)
        if path is None or not path.is_file():
            raise DataNotFoundError(f"{modality} prompt not found: {path}")
    if not settings.compressors or not settings.samplers:
        raise UsageError("need at least one compressor and one sampler")
    for sampler in settings.samplers:
        check_settings(sampler, settings.length, settings.horizon, beam_width=8,
                       temperature=settings.temperature, top_k=None, seed=settings.seed)
    for name in settings.compressors:
        if not compressor_spec(name).is_model and "exact" in settings.samplers:
            raise UsageError(f"sampler 'exact' needs a model compressor; {name!r} is not one")
    height, width = settings.image_size
    if height < 1 or width < 2:
        raise UsageError(f"--image-size must be at least 1x2, got {height}x{width}")
    seconds = (settings.audio_prompt_seconds, settings.audio_seconds)
    if not all(math.isfinite(value) for value in seconds) or min(_audio_lengths(settings)) < 1:
        raise UsageError("--audio-prompt and --audio-length must each be at least 1 sample")
    if settings.length < 1 or settings.prompt_bytes < 1 or settings.text_offset < 0:
        raise UsageError("--length and --prompt-bytes must be positive, --text-offset ≥ 0")


def build_gallery(settings: GallerySettings, output: Path, force: bool = False,
                  log: Callable[[str], None] = _print_progress) -> Path:
    """Generate, render and write the gallery to `output`; return the path of index.html."""
    _check_inputs(settings)
    check_output_dir(output, force)
    # Every prompt is loaded before anything is generated, so a bad one fails at once.
    prompts = {modality: PROMPTS[modality](settings) for modality in settings.modalities}
    started = time.perf_counter()
    sections = [SECTIONS[modality](settings, prompts[modality], log)
                for modality in settings.modalities]
    if settings.bench_dir is not None:
        sections.append(bench_section(settings.bench_dir))
    command = settings.command(output)
    manifest = {
        "command": command,
        "settings": {key: str(value) if isinstance(value, Path) else value
                     for key, value in asdict(settings).items()},
        "files": sorted(name for section in sections for name in section.files),
        "generation_seconds": {section.key: section.seconds for section in sections
                               if section.seconds},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    staging = _sibling(output, "new")
    try:
        for section in sections:
            for name, data in section.files.items():
                write_output(staging / name, data)
        write_text(staging / INDEX, gallery_html(sections, command))
        write_text(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _publish(staging, output, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"gallery: {output / INDEX} ({manifest['total_seconds']} s)")
    return output / INDEX
