"""Audio continuations as sound (WAV) and as pictures (waveform + spectrogram).

Samples are what the compressors model: 8-bit unsigned mono at 16 kHz (the high byte of
each 16-bit LibriSpeech sample plus 128). WAV stores exactly that (PCM_U8), so what you
hear is byte for byte what was generated. The figure follows the paper's audio figure: a
spectrogram per continuation, with the waveform beside it and the prompt/generated
boundary marked on both; no spectrogram frame mixes prompt and generated samples.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import soundfile
from PIL import Image

from gencomp.constants import SAMPLE_RATE
from gencomp.errors import UsageError

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: it costs every command 0.3 s
    from matplotlib.figure import Figure

BOUNDARY_COLOR = "#e41a1c"
SPECTROGRAM_RANGE_DB = 80.0
#: 64 levels of magma (1.25 dB each): few enough that the 256-colour PNG keeps them all.
SPECTROGRAM_LEVELS = 64
#: Spectrogram frames: 16 ms Hann windows every 4 ms.
SPECTROGRAM_WINDOW = 256
SPECTROGRAM_HOP = 64


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


def spectrogram_sides(samples: np.ndarray, boundary: int, sample_rate: int = SAMPLE_RATE
                      ) -> list[tuple[np.ndarray, float, float]]:
    """The clip's power spectrogram in dB, as one image per side of `boundary`:
    [(power (frequencies, frames), start seconds, end seconds)], prompt side first.

    A frame centred on its window would smear the generated samples half a window (8 ms)
    into the prompt's side of the picture. So no frame straddles the boundary: the prompt's
    frames end at or before it, and each is drawn over the last `SPECTROGRAM_HOP` samples
    of its window; the continuation's frames start at or after it, each drawn over the
    first hop of its window. What lies left of the boundary is computed from prompt samples
    only, and what lies right of it from generated samples only.
    """
    signal = _signed(samples).astype(np.float64)
    window = np.hanning(SPECTROGRAM_WINDOW)
    ends = np.arange(boundary, SPECTROGRAM_WINDOW - 1, -SPECTROGRAM_HOP)[::-1]
    starts = np.arange(boundary, len(signal) - SPECTROGRAM_WINDOW + 1, SPECTROGRAM_HOP)
    sides = []
    for frame_starts, first, last in (
            (ends - SPECTROGRAM_WINDOW, ends[:1] - SPECTROGRAM_HOP, ends[-1:]),
            (starts, starts[:1], starts[-1:] + SPECTROGRAM_HOP)):
        if not len(frame_starts):
            continue
        frames = np.stack([signal[start:start + SPECTROGRAM_WINDOW] for start in frame_starts])
        power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        sides.append((10 * np.log10(power.T + 1e-10), first[0] / sample_rate,
                      last[0] / sample_rate))
    return sides


def audio_figure(clips: Sequence[AudioClip], sample_rate: int = SAMPLE_RATE,
                 title: str = "") -> Figure:
    """Waveform and spectrogram for each clip, one row each, boundary marked in red, one
    colour scale (with its colour bar) for every spectrogram."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    if not clips:
        raise UsageError("an audio figure needs at least one clip")
    figure = Figure(figsize=(12, 1.9 * len(clips) + (0.4 if title else 0)), dpi=100,
                    layout="constrained")
    axes = figure.subplots(len(clips), 2, squeeze=False, width_ratios=[1, 1.3])
    sides = [spectrogram_sides(clip.samples, clip.prompt_samples, sample_rate)
             for clip in clips]
    # One colour scale for all rows, so louder really looks louder across compressors.
    loudest = max(power.max() for clip_sides in sides for power, _, _ in clip_sides)
    colours = colormaps["magma"].resampled(SPECTROGRAM_LEVELS)
    image = None
    for (wave_axis, spectrum_axis), clip, clip_sides in zip(axes, clips, sides, strict=True):
        seconds = np.arange(len(clip.samples)) / sample_rate
        boundary = clip.prompt_samples / sample_rate
        wave_axis.plot(seconds, _signed(clip.samples), linewidth=0.5, color="#333333")
        wave_axis.set_ylim(-129, 128)
        wave_axis.set_ylabel(clip.label, rotation=0, ha="right", va="center", fontsize=10)
        wave_axis.set_yticks([])
        for power, start, end in clip_sides:
            image = spectrum_axis.imshow(
                power - loudest, origin="lower", aspect="auto", cmap=colours,
                vmin=-SPECTROGRAM_RANGE_DB, vmax=0, interpolation="nearest",
                extent=(start, end, 0, sample_rate / 2))
        spectrum_axis.set_ylim(0, sample_rate / 2)
        spectrum_axis.set_ylabel("Hz", fontsize=8)
        for axis in (wave_axis, spectrum_axis):
            axis.axvline(boundary, color=BOUNDARY_COLOR, linewidth=1.5)
            axis.set_xlim(0, len(clip.samples) / sample_rate)
            axis.tick_params(labelsize=8)
    if image is not None:
        colour_bar = figure.colorbar(image, ax=axes[:, 1], shrink=min(1.0, 3 / len(clips)),
                                     aspect=30, pad=0.01)
        colour_bar.set_label("power, dB below the loudest", fontsize=9)
        colour_bar.ax.tick_params(labelsize=8)
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
