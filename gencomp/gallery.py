"""The gallery application (`gencomp render`): what every compressor generates from the same
image, speech clip and text, published as one static page.

This module decides what to generate and runs it: it finds the default prompts, cuts them,
runs every compressor × sampler as one job (in worker processes when asked), collects the
newest `compress-bench` run, and writes the folder. Drawing is `gencomp.render`'s: pure
functions from the generated data to PNG, WAV and HTML.

The gallery appears all at once or not at all: it is built in a hidden sibling folder and
renamed into place, and an existing gallery is replaced only with `force`. The same
settings and seed give the same files, whatever the number of workers.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Empty
from typing import Any, Protocol

import numpy as np

from gencomp.compressor import Compressor, available_compressors, compressor_spec, get_compressor
from gencomp.constants import ENWIK8_SAMPLE, PATCH_COLUMNS, PATCH_ROWS, SAMPLE_RATE
from gencomp.datasets import DataLocations
from gencomp.errors import DataNotFoundError, OutputExistsError, UsageError
from gencomp.fileio import read_input, write_output, write_text
from gencomp.processes import process_pool, wait_first
from gencomp.render.audio import AudioClip, loudest_window
from gencomp.render.images import ImagePanel, image_prompt_region
from gencomp.render.page import (
    Section,
    audio_section,
    bench_section,
    gallery_html,
    image_section,
    temperature_note,
    text_section,
    timing_note,
)
from gencomp.render.text import TextSample
from samplers import sample_continuation
from samplers.continuation import check_settings
from samplers.defaults import sampler_defaults
from samplers.modalities import (
    continue_audio,
    continue_image_rows,
    continue_patch,
    load_audio_prompt,
    load_image_prompt,
)

#: Tried in this order; those not registered (e.g. no trained transformer) are left out.
DEFAULT_COMPRESSORS = ("gzip", "lzma2", "png", "flac", "cm", "transformer", "transformer-cm")
#: Default prompts, relative to a data folder laid out like ../shared/data.
DEFAULT_PROMPTS = {
    "image": Path("imagenet") / "n02391049_zebra.JPEG",
    "audio": Path("librispeech") / "train-clean-100" / "103-1240-0000.flac",
    "text": Path(ENWIK8_SAMPLE),
}
#: Where the default text prompt starts: the Wikipedia article on Einstein, prose with
#: some wiki markup (byte 0 is XML metadata). Other texts start at byte 0.
DEFAULT_TEXT_OFFSET = 2_000_000
#: Audio long enough to hear: 1 s given, 0.5 s generated.
DEFAULT_AUDIO_PROMPT_SECONDS = 1.0
DEFAULT_AUDIO_SECONDS = 0.5
#: Samples of audio each stretch of a continuation follows (see `audio_continuation`): 32 ms,
#: a few pitch periods of speech. A classical codec's cost per sample grows with it.
DEFAULT_AUDIO_CONTEXT = 512
#: Generated audio samples per progress report (and per sampler call, see
#: `audio_continuation`).
AUDIO_SEGMENT = 256
#: The gallery's sections and the prompt each continues: "image" every row's second half
#: from its first half (the paper's Figure 3), "patch" the image's bottom half from its top
#: half, row-major (the task `benchmarks/bench_bit_exact.py` holds samples to).
PROMPT_OF = {"image": "image", "patch": "image", "audio": "audio", "text": "text"}
MODALITIES = tuple(PROMPT_OF)
MANIFEST = "gallery.json"
INDEX = "index.html"


@dataclass(frozen=True)
class GallerySettings:
    """Everything that determines a gallery (`gencomp render` turns it into the command line
    that rebuilds it)."""

    compressors: tuple[str, ...]
    image: Path | None = None
    audio: Path | None = None
    text: Path | None = None
    samplers: tuple[str, ...] = ("code-length",)
    horizon: int = 8
    #: One temperature for every job; None: each job's default (`samplers.defaults`) for
    #: images, patches and audio, as `gencomp sample` draws them, and T 1 for text, the
    #: code-length sampler's own distribution.
    temperature: float | None = None
    #: What the code-length sampler counts: exact "bits" where a codec offers them (the
    #: samplers' default) or whole "bytes" (the paper's). With both, a codec that offers
    #: both gets a row for each, side by side.
    length_units: tuple[str, ...] = ("bits",)
    #: Images and audio from model compressors drawn frozen after the prompt
    #: (`samplers.exact`), as `gencomp sample` draws them; text learns either way.
    frozen: bool = True
    modalities: tuple[str, ...] = MODALITIES
    image_size: tuple[int, int] = (PATCH_ROWS, PATCH_COLUMNS)
    audio_prompt_seconds: float = DEFAULT_AUDIO_PROMPT_SECONDS
    audio_seconds: float = DEFAULT_AUDIO_SECONDS
    audio_context: int = DEFAULT_AUDIO_CONTEXT
    text_offset: int = 0
    prompt_bytes: int = 1024
    length: int = 100
    seed: int = 0
    bench_dir: Path | None = Path("outputs") / "bench"

    @property
    def audio_lengths(self) -> tuple[int, int]:
        """(samples given, samples generated)."""
        return (round(self.audio_prompt_seconds * SAMPLE_RATE),
                round(self.audio_seconds * SAMPLE_RATE))


def shown_path(path: Path) -> str:
    """A path as a command line shows it: relative to the working folder when that is
    shorter (../shared/data/..., not the folder the data was found in, resolved)."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)


def default_compressors() -> tuple[str, ...]:
    registered = set(available_compressors())
    return tuple(name for name in DEFAULT_COMPRESSORS if name in registered)


def default_prompt(modality: str, data_dir: Path | None) -> Path:
    """The default prompt file of `modality`, searched where the benchmark looks for data."""
    roots = DataLocations(data_dir=data_dir).roots()
    for root in roots:
        if (root / DEFAULT_PROMPTS[modality]).is_file():
            return root / DEFAULT_PROMPTS[modality]
    raise DataNotFoundError(f"default {modality} prompt {DEFAULT_PROMPTS[modality]} not "
                            f"found under {', '.join(map(str, roots))}", dataset=modality)


def default_settings(data_dir: Path | None = None, **overrides: object) -> GallerySettings:
    """Settings with the default prompts and compressors; non-None `overrides` replace
    fields. Prompts are looked up only for the modalities that will be rendered."""
    fields = {key: value for key, value in overrides.items() if value is not None}
    fields["compressors"] = tuple(compressor_spec(name).name  # aliases: xz is lzma2
                                  for name in fields.get("compressors", default_compressors()))
    for modality in fields.get("modalities", MODALITIES):  # type: ignore[union-attr]
        prompt = PROMPT_OF.get(modality)
        if prompt is not None and prompt not in fields:
            fields[prompt] = default_prompt(prompt, data_dir)
            if prompt == "text":
                fields.setdefault("text_offset", DEFAULT_TEXT_OFFSET)
    return GallerySettings(**fields)  # type: ignore[arg-type]


# --- Prompts ------------------------------------------------------------------------------

def image_prompt(settings: GallerySettings) -> np.ndarray:
    """The image's centre, grayscale, downscaled to `image_size`."""
    return image_prompt_region(load_image_prompt(settings.image), *settings.image_size)


def audio_prompt(settings: GallerySettings) -> np.ndarray:
    """The loudest stretch of the utterance as long as prompt plus continuation."""
    total = sum(settings.audio_lengths)
    utterance = load_audio_prompt(settings.audio)
    start = loudest_window(utterance, total)
    return utterance[start:start + total]


def text_prompt(settings: GallerySettings) -> tuple[bytes, bytes]:
    """(prompt, the bytes that really follow it) from the text file."""
    data = read_input(settings.text)[settings.text_offset:]
    prompt = data[:settings.prompt_bytes]
    if not prompt:
        raise UsageError(f"text prompt is empty: {settings.text} from byte "
                         f"{settings.text_offset}")
    return prompt, data[settings.prompt_bytes:settings.prompt_bytes + settings.length]


PROMPTS: dict[str, Callable[[GallerySettings], Any]] = {
    "image": image_prompt, "audio": audio_prompt, "text": text_prompt}


# --- Continuations ------------------------------------------------------------------------

def image_continuation(compressor: Compressor, region: np.ndarray, *, sampler: str,
                       seed: int, report: Callable[[int], None], **options: Any
                       ) -> np.ndarray:
    """Each row's second half generated from its first half (`continue_image_rows`), one
    row at a time so that `report` hears of every row: rows are independent and row r is
    sampled with seed + r either way, so the image is the same."""
    rows = []
    for row in range(region.shape[0]):
        rows.append(continue_image_rows(compressor, region[row:row + 1], sampler=sampler,
                                        seed=seed + row, **options))
        report(region.shape[1] - region.shape[1] // 2)
    return np.concatenate(rows)


def patch_continuation(compressor: Compressor, region: np.ndarray, *, sampler: str,
                       seed: int, report: Callable[[int], None], **options: Any
                       ) -> np.ndarray:
    """The region's bottom half generated from its top half (`continue_patch`)."""
    given = region.shape[0] // 2
    continued = continue_patch(compressor, region, given, sampler=sampler, seed=seed,
                               **options)
    report((region.shape[0] - given) * region.shape[1])
    return continued


def audio_continuation(compressor: Compressor, prompt: np.ndarray, length: int, *,
                       context: int, sampler: str, seed: int,
                       report: Callable[[int], None], **options: Any) -> np.ndarray:
    """`prompt` followed by `length` generated samples, made `AUDIO_SEGMENT` samples at a
    time (segment i with seed + i), each segment continuing the last `context` samples
    before it.

    The code-length sampler recompresses the context with each of the 256 candidates, so a
    classical codec's cost per generated sample grows with the context: after a second of
    audio (16,000 samples) LZMA2 and PNG take half a second per sample. The paper's
    compressors see 2048-byte chunks; a recent window keeps the cost per sample bounded,
    and the continuation one of what was just heard. The exact sampler costs one model step
    per sample whatever the context, so a model compressor continues the whole prompt in
    one stretch (restarting it on the last `context` samples would also let a frozen model
    learn from its own sample)."""
    if sampler_used(compressor.name, sampler) == "exact":
        continued = continue_audio(compressor, prompt, length, sampler=sampler, seed=seed,
                                   **options)
        report(length)
        return continued
    samples = prompt
    for index, start in enumerate(range(0, length, AUDIO_SEGMENT)):
        count = min(AUDIO_SEGMENT, length - start)
        recent = samples[max(0, len(samples) - context):]
        continued = continue_audio(compressor, recent, count, sampler=sampler,
                                   seed=seed + index, **options)
        samples = np.concatenate([samples, continued[len(recent):]])
        report(count)
    return samples


def text_continuation(compressor: Compressor, prompt: bytes, length: int, *, sampler: str,
                      seed: int, report: Callable[[int], None], **options: Any) -> bytes:
    """`length` bytes after the text prompt."""
    generated = sample_continuation(compressor, prompt, length, sampler, seed=seed, **options)
    report(length)
    return generated


# --- Jobs: one compressor × sampler × modality each ----------------------------------------

def sampler_used(compressor: str, sampler: str) -> str:
    """The sampler that really runs (see `samplers.continuation.resolved_sampler`), from the
    registry, without building the compressor."""
    return "exact" if sampler == "code-length" and compressor_spec(compressor).is_model \
        else sampler


@dataclass(frozen=True)
class Job:
    """One continuation to generate; `units` are the bytes (pixels, samples) it generates."""

    index: int
    modality: str
    compressor: str
    sampler: str
    units: int
    #: The unit its code lengths are counted in, and whether the label names it (where
    #: the gallery shows more than one).
    length_unit: str = "bits"
    unit_shown: bool = False
    temperature: float = 1.0

    @property
    def label(self) -> str:
        """'gzip · code-length', 'cm · exact', 'gzip · code-length · bytes': the compressor,
        the sampler that ran and, where the gallery shows both, the unit."""
        label = f"{self.compressor} · {sampler_used(self.compressor, self.sampler)}"
        return f"{label} · {self.length_unit}" if self.unit_shown else label


def job_temperature(settings: GallerySettings, compressor: str, modality: str) -> float:
    """The temperature `compressor` continues `modality` at (GallerySettings.temperature)."""
    if settings.temperature is not None:
        return settings.temperature
    if modality == "text":
        return 1.0
    spec = compressor_spec(compressor)
    return sampler_defaults(spec.name, spec.is_model, modality).get("temperature", 1.0)


def plan_jobs(settings: GallerySettings) -> list[Job]:
    """Every modality × compressor × sampler × length unit, once per sampler and unit that
    really run (for a model compressor code-length and exact are the same sampler, and
    its unit is always its predictor's bits; a codec counts a unit it lacks in its own)."""
    height, width = settings.image_size
    units = {"image": height * (width - width // 2), "patch": (height - height // 2) * width,
             "audio": settings.audio_lengths[1], "text": settings.length}
    both = len(settings.length_units) > 1
    rows = []  # (compressor, sampler, unit used, unit shown): the same for every modality
    for name in settings.compressors:
        for sampler in settings.samplers:
            model = sampler_used(name, sampler) == "exact"
            codec = None if model else get_compressor(name)
            rows += [(name, sampler, "bits" if codec is None else codec.length_unit(unit),
                      both and not model) for unit in settings.length_units]
    jobs: list[Job] = []
    for modality in settings.modalities:
        labels = set()
        for name, sampler, unit, shown in rows:
            job = Job(len(jobs), modality, name, sampler, units[modality], unit, shown,
                      job_temperature(settings, name, modality))
            if job.label not in labels:
                labels.add(job.label)
                jobs.append(job)
    return jobs


@dataclass(frozen=True)
class Generated:
    """A job's continuation and what it cost: wall seconds, and CPU seconds of its process
    (its threads included), which a machine's other load changes much less."""

    value: Any
    seconds: float
    cpu_seconds: float


def run_job(job: Job, settings: GallerySettings, prompt: Any, compressor: Compressor,
            report: Callable[[int], None]) -> Generated:
    """Generate one job's continuation."""
    options = {"sampler": job.sampler, "seed": settings.seed, "horizon": settings.horizon,
               "temperature": job.temperature, "length_unit": job.length_unit,
               "frozen": (settings.frozen and job.modality != "text"
                          and sampler_used(job.compressor, job.sampler) == "exact"),
               "report": report}
    started, started_cpu = time.perf_counter(), time.process_time()
    if job.modality == "image":
        result = image_continuation(compressor, prompt, **options)
    elif job.modality == "patch":
        result = patch_continuation(compressor, prompt, **options)
    elif job.modality == "audio":
        result = audio_continuation(compressor, prompt[:settings.audio_lengths[0]],
                                    settings.audio_lengths[1], context=settings.audio_context,
                                    **options)
    else:
        result = text_continuation(compressor, prompt[0], settings.length, **options)
    return Generated(result, time.perf_counter() - started, time.process_time() - started_cpu)


class Progress(Protocol):
    """What the gallery tells its user while it runs (the CLI draws bars)."""

    def planned(self, jobs: Sequence[Job]) -> None: ...

    def started(self, job: Job) -> None: ...

    def advanced(self, job: Job, units: int) -> None: ...

    def finished(self, job: Job, seconds: float) -> None: ...


class LogProgress:
    """One line on stderr per finished job (for logs, where bars would be noise)."""

    def planned(self, jobs: Sequence[Job]) -> None:
        pass

    def started(self, job: Job) -> None:
        pass

    def advanced(self, job: Job, units: int) -> None:
        pass

    def finished(self, job: Job, seconds: float) -> None:
        print(f"{job.modality:5}  {job.label:32}  {seconds:7.1f} s", file=sys.stderr,
              flush=True)


_worker_compressors: dict[str, Compressor] = {}


def _compressor(name: str) -> Compressor:
    """Built once per process: a model loads its weights once for all its jobs."""
    if name not in _worker_compressors:
        _worker_compressors[name] = get_compressor(name)
    return _worker_compressors[name]


def _job_in_worker(job: Job, settings: GallerySettings, prompt: Any, reports: Any
                   ) -> Generated:
    reports.put(("started", job.index, 0))
    return run_job(job, settings, prompt, _compressor(job.compressor),
                   lambda units: reports.put(("advanced", job.index, units)))


def run_jobs(jobs: Sequence[Job], settings: GallerySettings, prompts: dict[str, Any],
             workers: int, progress: Progress) -> dict[int, Generated]:
    """{job index: what it generated}, the jobs spread over `workers` processes."""
    results: dict[int, Generated] = {}
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            progress.started(job)
            results[job.index] = run_job(
                job, settings, prompts[job.modality], _compressor(job.compressor),
                lambda units, job=job: progress.advanced(job, units))
            progress.finished(job, results[job.index].seconds)
        return results
    by_index = {job.index: job for job in jobs}

    def relay(reports: Any) -> None:
        while True:
            try:
                kind, index, units = reports.get_nowait()
            except Empty:
                return
            if kind == "started":
                progress.started(by_index[index])
            else:
                progress.advanced(by_index[index], units)

    with multiprocessing.get_context("spawn").Manager() as manager, \
            process_pool(min(workers, len(jobs))) as pool:
        reports = manager.Queue()
        futures = {pool.submit(_job_in_worker, job, settings, prompts[job.modality], reports):
                   job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait_first(pending, timeout=0.2)
            relay(reports)  # a finished job's reports are queued before its result
            for future in done:
                job = futures[future]
                results[job.index] = future.result()
                progress.finished(job, results[job.index].seconds)
    return results


# --- Sections -----------------------------------------------------------------------------

def _sections(settings: GallerySettings, jobs: Sequence[Job], prompts: dict[str, Any],
              results: dict[int, Generated]) -> tuple[list[Section], dict[str, Any]]:
    """The page's sections, and the wall and CPU seconds of each job, by section and label."""
    sections, seconds = [], {}
    for modality in settings.modalities:
        done = [(job.label, results[job.index].value, results[job.index]) for job in jobs
                if job.modality == modality]
        times = {label: generated.seconds for label, _, generated in done}
        temperatures = {job.label: job.temperature for job in jobs if job.modality == modality}
        note = temperature_note(temperatures) + timing_note(times)
        if modality in ("image", "patch"):
            panels = [ImagePanel("original", prompts[modality])]
            panels += [ImagePanel(label, image) for label, image, _ in done]
            section = image_section(settings.image.name, panels, note,
                                    patch=modality == "patch")
        elif modality == "audio":
            given = settings.audio_lengths[0]
            clips = [AudioClip("original", prompts["audio"], given)]
            clips += [AudioClip(label, samples, given) for label, samples, _ in done]
            context_note = (f"Each compressor generates {AUDIO_SEGMENT} samples at a time, "
                            f"after the last {settings.audio_context} samples before them.")
            section = audio_section(settings.audio.name, clips, context_note, note)
        else:
            prompt, truth = prompts["text"]
            samples = [TextSample("original", truth)] if truth else []
            samples += [TextSample(label, text) for label, text, _ in done]
            section = text_section(settings.text.name, settings.text_offset, prompt, samples,
                                   settings.length, note)
        sections.append(section)
        seconds[section.key] = {label: {"seconds": round(generated.seconds, 1),
                                        "cpu_seconds": round(generated.cpu_seconds, 1)}
                                for label, _, generated in done}
    return sections, seconds


def newest_bench_run(bench_dir: Path) -> Path | None:
    """The `compress-bench` run folder with the newest table.md, or None."""
    if not bench_dir.is_dir():
        return None
    tables = sorted(bench_dir.glob("*/table.md"), key=lambda path: path.stat().st_mtime)
    return tables[-1].parent if tables else None


def _bench_command(run: Path) -> str | None:
    """The command recorded in the run's manifest, if the bench recorded one."""
    try:
        command = json.loads((run / "run.json").read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def newest_bench_section(bench_dir: Path) -> Section:
    """The newest benchmark run's table and figure, or a note saying how to make them."""
    run = newest_bench_run(bench_dir)
    if run is None:
        return bench_section(None)
    figure = run / "figure.png"
    return bench_section(str(run), (run / "table.md").read_text(encoding="utf-8",
                                                                errors="replace"),
                         figure.read_bytes() if figure.is_file() else None, _bench_command(run))


# --- Checking and publishing --------------------------------------------------------------

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


def check_settings_usable(settings: GallerySettings) -> None:
    """A one-line `UsageError` for any setting the gallery cannot use, before any work."""
    for modality in settings.modalities:
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality {modality!r}; choose from "
                             f"{', '.join(MODALITIES)}")
        path = getattr(settings, PROMPT_OF[modality])
        if path is None or not path.is_file():
            raise DataNotFoundError(f"{PROMPT_OF[modality]} prompt not found: {path}")
    if not settings.compressors or not settings.samplers:
        raise UsageError("need at least one compressor and one sampler")
    if not settings.length_units:
        raise UsageError("need at least one length unit")
    for sampler in settings.samplers:
        for unit in settings.length_units:
            check_settings(sampler, settings.length, settings.horizon, beam_width=8,
                           temperature=1.0 if settings.temperature is None
                           else settings.temperature, top_k=None, seed=settings.seed,
                           length_unit=unit)
    for name in settings.compressors:
        if not compressor_spec(name).is_model and "exact" in settings.samplers:
            raise UsageError(f"sampler 'exact' needs a model compressor; {name!r} is not one")
    height, width = settings.image_size
    if height < 1 or width < 2:
        raise UsageError(f"image size must be at least 1x2, got {height}x{width}")
    seconds = (settings.audio_prompt_seconds, settings.audio_seconds)
    if not all(math.isfinite(value) for value in seconds) or min(settings.audio_lengths) < 1:
        raise UsageError("audio prompt and audio length must each be at least 1 sample")
    if settings.audio_context < 1:
        raise UsageError(f"audio context must be at least 1 sample, got "
                         f"{settings.audio_context}")
    if settings.length < 1 or settings.prompt_bytes < 1 or settings.text_offset < 0:
        raise UsageError("text length and prompt bytes must be positive, text offset ≥ 0")


def build_gallery(settings: GallerySettings, output: Path, command: str, force: bool = False,
                  workers: int = 1, progress: Progress | None = None) -> Path:
    """Generate, render and write the gallery to `output`; return the path of index.html.
    `command` is shown as what made it, and recorded."""
    check_settings_usable(settings)
    if not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    check_output_dir(output, force)
    # Every prompt is loaded before anything is generated, so a bad one fails at once.
    loaded = {prompt: PROMPTS[prompt](settings)  # the image once for its two sections
              for prompt in {PROMPT_OF[modality] for modality in settings.modalities}}
    prompts = {modality: loaded[PROMPT_OF[modality]] for modality in settings.modalities}
    started = time.perf_counter()
    jobs = plan_jobs(settings)
    progress = progress or LogProgress()
    progress.planned(jobs)
    results = run_jobs(jobs, settings, prompts, workers, progress)
    sections, seconds = _sections(settings, jobs, prompts, results)
    if settings.bench_dir is not None:
        sections.append(newest_bench_section(settings.bench_dir))
    manifest = {
        "command": command,
        "settings": {key: shown_path(value) if isinstance(value, Path) else value
                     for key, value in asdict(settings).items()},
        "files": sorted(name for section in sections for name in section.files),
        "generation_seconds": seconds,
        "workers": workers,
        "total_seconds": round(time.perf_counter() - started, 1),
        "total_cpu_seconds": round(sum(result.cpu_seconds for result in results.values()), 1),
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
    print(f"gallery: {output / INDEX} ({manifest['total_seconds']} s; generating took "
          f"{manifest['total_cpu_seconds']} s of CPU)", file=sys.stderr)
    return output / INDEX
