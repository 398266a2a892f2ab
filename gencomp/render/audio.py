"""Audio continuations as sound (WAV) and as pictures (waveform + spectrogram).

Samples are what the compressors model: 8-bit unsigned mono at 16 kHz (the high byte of
each 16-bit LibriSpeech sample plus 128). WAV stores exactly that (PCM_U8), so what you
hear is byte for byte what was generated. The figure follows the paper's audio figure: a
spectrogram per continuation, with the waveform above it and the prompt/generated boundary
marked on both.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile
from matplotlib.figure import Figure
from PIL import Image

from gencomp.constants import SAMPLE_RATE
from gencomp.errors import UsageError

BOUNDARY_COLOR = "#e41a1c"
SPECTROGRAM_RANGE_DB = 80.0


def _signed(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.int16) - 128


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """An 8-bit unsigned mono WAV file holding exactly `samples` (uint8)."""
    if samples.dtype != np.uint8 or samples.ndim != 1 or not len(samples):
        raise UsageError(f"expected a non-empty 1-D uint8 array, got {samples.dtype} "
                         f"{samples.shape}")
    with io.BytesIO() as buffer:
        # libsndfile takes int16 and keeps its high byte for PCM_U8, so this is exact.
        soundfile.write(buffer, _signed(samples) << 8, sample_rate, format="WAV",
                        subtype="PCM_U8")
        return buffer.getvalue()


def wav_samples(wav: bytes) -> np.ndarray:
    """The uint8 samples of an 8-bit WAV made by `wav_bytes` (its exact inverse)."""
    with soundfile.SoundFile(io.BytesIO(wav)) as audio:
        return ((audio.read(dtype="int16") >> 8) + 128).astype(np.uint8)


@dataclass(frozen=True)
class AudioClip:
    """One labelled clip: uint8 samples, the first `prompt_samples` of which were given."""

    label: str
    samples: np.ndarray
    prompt_samples: int


def loudest_window(samples: np.ndarray, length: int, step: int = SAMPLE_RATE // 50) -> int:
    """Start of the `length`-sample window with the most energy (on a `step` grid).

    Utterances open with silence; a prompt cut from the start would ask the compressors to
    continue silence. The loudest window puts speech on both sides of the boundary.
    """
    if len(samples) < length:
        raise UsageError(f"audio has {len(samples)} samples, need at least {length}")
    energy = np.concatenate([[0], np.cumsum(np.abs(_signed(samples)), dtype=np.int64)])
    starts = np.arange(0, len(samples) - length + 1, step)
    return int(starts[np.argmax(energy[starts + length] - energy[starts])])


def audio_figure(clips: Sequence[AudioClip], sample_rate: int = SAMPLE_RATE,
                 title: str = "") -> Figure:
    """Waveform and spectrogram for each clip, one row each, boundary marked in red."""
    if not clips:
        raise UsageError("an audio figure needs at least one clip")
    figure = Figure(figsize=(11, 1.9 * len(clips) + (0.4 if title else 0)), dpi=100,
                    layout="constrained")
    axes = figure.subplots(len(clips), 2, squeeze=False, width_ratios=[1, 1.3])
    spectrograms = []
    for (wave_axis, spectrum_axis), clip in zip(axes, clips, strict=True):
        seconds = np.arange(len(clip.samples)) / sample_rate
        boundary = clip.prompt_samples / sample_rate
        wave_axis.plot(seconds, _signed(clip.samples), linewidth=0.6, color="#333333")
        wave_axis.set_ylim(-129, 128)
        wave_axis.set_ylabel(clip.label, rotation=0, ha="right", va="center", fontsize=10)
        wave_axis.set_yticks([])
        *_, image = spectrum_axis.specgram(_signed(clip.samples).astype(np.float64),
                                           NFFT=256, Fs=sample_rate, noverlap=192, cmap="magma")
        spectrograms.append(image)
        spectrum_axis.set_ylabel("Hz", fontsize=8)
        for axis in (wave_axis, spectrum_axis):
            axis.axvline(boundary, color=BOUNDARY_COLOR, linewidth=1.5)
            axis.set_xlim(0, len(clip.samples) / sample_rate)
            axis.tick_params(labelsize=8)
    # One colour scale for all rows, so louder really looks louder across compressors.
    loudest = max(image.get_clim()[1] for image in spectrograms)
    for image in spectrograms:
        image.set_clim(loudest - SPECTROGRAM_RANGE_DB, loudest)
    axes[-1][0].set_xlabel("seconds (red line: end of the prompt)", fontsize=9)
    axes[-1][1].set_xlabel("seconds", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def figure_png(figure: Figure) -> bytes:
    """PNG bytes of a matplotlib figure (no pyplot, no global state), reduced to a
    256-colour palette: spectrograms look the same and the file is about half the size."""
    with io.BytesIO() as rendered, io.BytesIO() as reduced:
        figure.savefig(rendered, format="png")
        Image.open(rendered).convert("RGB").quantize(256).save(reduced, format="PNG",
                                                               optimize=True)
        return reduced.getvalue()
