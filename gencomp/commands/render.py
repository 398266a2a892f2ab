"""`gencomp render`: build the gallery page of what each compressor generates."""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gencomp.commands.progress import PROGRESS_HELP, JobBars, job_progress, on_terminal
from gencomp.errors import DataNotFoundError, UsageError

if TYPE_CHECKING:
    from gencomp.gallery import GallerySettings


def _names(text: str | None, option: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UsageError(f"{option} needs at least one name")
    return names


def _image_size(text: str) -> tuple[int, int]:
    height, separator, width = text.lower().partition("x")
    if not separator or not height.isdigit() or not width.isdigit():
        raise UsageError(f"--image-size takes HEIGHTxWIDTH, e.g. 32x64; got {text!r}")
    return int(height), int(width)


def gallery_command(settings: GallerySettings, output: Path) -> str:
    """The `gencomp render` call that rebuilds a gallery with these settings, every option
    spelled out (the page shows it and gallery.json records it)."""
    from gencomp.gallery import PROMPT_OF, shown_path

    arguments = ["gencomp", "render", "-o", str(output)]
    for prompt in dict.fromkeys(PROMPT_OF[modality] for modality in settings.modalities):
        arguments += [f"--{prompt}", shown_path(getattr(settings, prompt))]
    arguments += [
        "--modalities", ",".join(settings.modalities),
        "--compressors", ",".join(settings.compressors),
        "--samplers", ",".join(settings.samplers),
        "--horizon", str(settings.horizon),
        "--length-unit", ",".join(settings.length_units),
        "--frozen" if settings.frozen else "--learning",
        "--image-size", "{}x{}".format(*settings.image_size),
        "--audio-prompt", f"{settings.audio_prompt_seconds:g}",
        "--audio-length", f"{settings.audio_seconds:g}",
        "--audio-context", str(settings.audio_context),
        "--text-offset", str(settings.text_offset),
        "--prompt-bytes", str(settings.prompt_bytes),
        "--length", str(settings.length),
        "--seed", str(settings.seed),
    ]
    if settings.temperature is not None:
        arguments += ["--temperature", f"{settings.temperature:g}"]
    arguments += (["--no-bench"] if settings.bench_dir is None
                  else ["--bench-dir", shown_path(settings.bench_dir)])
    return shlex.join(arguments)


def render(
    output: Path = typer.Option(Path("outputs") / "gallery", "-o", "--output",
                                help="Gallery folder (index.html and its files)."),
    data_dir: Path = typer.Option(None, "--data-dir",
                                  help="Data folder for the default prompts (default: "
                                       "$GENCOMP_DATA, then ../shared/data)."),
    image: Path = typer.Option(None, "--image", help="Image prompt (default: an ImageNet zebra)."),
    audio: Path = typer.Option(None, "--audio", help="WAV/FLAC prompt (default: LibriSpeech)."),
    text: Path = typer.Option(None, "--text", help="Text prompt (default: enwik8)."),
    modalities: str = typer.Option("image,patch,audio,text", "--modalities",
                                   help="Which of image,patch,audio,text to render (patch: the "
                                        "image's bottom half from its top half)."),
    compressors: str = typer.Option(None, "--compressors",
                                    help="Comma-separated (default: gzip,lzma2,png,flac and "
                                         "cm,transformer if registered)."),
    samplers: str = typer.Option("code-length", "--samplers",
                                 help="Comma-separated: code-length, lookahead, exact."),
    horizon: int = typer.Option(8, "--horizon", help="Bytes the lookahead sampler scores."),
    temperature: float | None = typer.Option(
        None, "--temperature", help="One sampling temperature for every row (default: "
        "what `gencomp sample` uses for images and audio, T 1 for text)."),
    length_unit: str = typer.Option("bits", "--length-unit",
                                    help="Code lengths in exact bits where a codec offers "
                                         "them (default), or in bytes (the paper's); "
                                         "bits,bytes shows both side by side."),
    frozen: bool = typer.Option(True, "--frozen/--learning",
                                help="Model compressors' images and audio: drawn from the "
                                     "model as the prompt left it, or learning from their "
                                     "own samples (the code-length distribution)."),
    image_size: str = typer.Option("32x64", "--image-size",
                                   help="Image region HEIGHTxWIDTH (the image centre, "
                                        "downscaled)."),
    audio_prompt: float = typer.Option(1.0, "--audio-prompt", help="Seconds of audio given."),
    audio_length: float = typer.Option(0.5, "--audio-length",
                                       help="Seconds of audio generated."),
    audio_context: int = typer.Option(512, "--audio-context",
                                      help="Samples of audio each stretch of a "
                                           "classical codec's continuation follows (its "
                                           "cost per sample grows with them; model "
                                           "compressors continue the whole prompt)."),
    text_offset: int = typer.Option(None, "--text-offset",
                                    help="Where the text prompt starts (default: 0; "
                                         "2000000 in the default enwik8)."),
    prompt_bytes: int = typer.Option(1024, "--prompt-bytes", help="Bytes of text given."),
    length: int = typer.Option(100, "--length", help="Bytes of text generated."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same gallery)."),
    bench_dir: Path = typer.Option(Path("outputs") / "bench", "--bench-dir",
                                   help="Where compress-bench runs are (newest one is shown)."),
    no_bench: bool = typer.Option(False, "--no-bench", help="Leave the benchmark out."),
    force: bool = typer.Option(False, "--force", help="Replace an existing gallery."),
    workers: int = typer.Option(os.cpu_count() or 1, "-w", "--workers",
                                help="Worker processes generating continuations (the files "
                                     "do not change)."),
    progress: bool = typer.Option(on_terminal(), "--progress/--no-progress", help=PROGRESS_HELP,
                                  show_default=False),
) -> None:
    """Sample an image, a speech clip and a text with each compressor; write a gallery page."""
    # Imported here: the gallery loads the samplers and matplotlib, which other commands
    # (and `gencomp --help`) need not pay for.
    from gencomp.gallery import build_gallery, check_settings_usable, default_settings

    try:
        settings = default_settings(
            data_dir,
            image=image, audio=audio, text=text,
            modalities=_names(modalities, "--modalities"),
            compressors=_names(compressors, "--compressors"),
            samplers=_names(samplers, "--samplers"), horizon=horizon, temperature=temperature,
            length_units=_names(length_unit, "--length-unit"), frozen=frozen,
            image_size=_image_size(image_size),
            audio_prompt_seconds=audio_prompt, audio_seconds=audio_length,
            audio_context=audio_context, text_offset=text_offset, prompt_bytes=prompt_bytes,
            length=length, seed=seed,
        )
    except DataNotFoundError as error:  # a default prompt: say which options point elsewhere
        if error.dataset is None:
            raise
        raise UsageError(f"{error}: pass --{error.dataset} FILE or --data-dir DIR") from error
    settings = dataclasses.replace(settings, bench_dir=None if no_bench else bench_dir)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    check_settings_usable(settings)  # before the command line is made of the settings
    command = gallery_command(settings, output)
    if not progress:
        build_gallery(settings, output, command, force=force, workers=workers)
        return
    with job_progress() as bars:
        build_gallery(settings, output, command, force=force, workers=workers,
                      progress=JobBars(bars))


def register(app: typer.Typer) -> None:
    app.command()(render)
