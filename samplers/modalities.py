"""Images and audio as byte prompts, the paper's way, and their continuations.

- Images are grayscale (mean of R, G, B cast to uint8, as `gencomp.datasets` prepares
  ImageNet), one byte per pixel, row-major. `continue_image_rows` is the paper's setup:
  every row is conditioned on its own first half and its second half is generated (rows
  are independent, so a row sees no other row unless `rows_above` asks for the original
  rows above it). `continue_patch` gives the top rows of a patch and generates the rest,
  row-major, each byte conditioned on everything before it.
- Audio is 8-bit unsigned mono at 16 kHz: the high byte of each 16-bit sample plus 128,
  the paper's LibriSpeech preprocessing. `continue_audio` appends generated samples,
  scored by `compressor.for_audio(prompt)` (for FLAC a sliding window of one frame, since
  its frames are coded independently, and in exact bits the linear predictor fitted to the
  prompt; see `gencomp.codecs.flac`).

A layout-aware codec must see the real layout: PNG predicts each pixel from the one above
and the one to the left, so images are scored by `compressor.for_image(width)`, the
compressor as it lays out an image of that width (for PNG, see `gencomp.codecs.png`; every
other codec sees the same bytes either way). Both tasks use it, so on the `patch` task the
prompt's rows lie above the generated ones, as in the image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from gencomp.compressor import Compressor
from gencomp.constants import SAMPLE_RATE
from gencomp.errors import UsageError
from gencomp.preprocessing import audio_to_bytes, grayscale_image
from samplers.continuation import progress_bar, sample_continuation


def load_image_prompt(path: str | Path) -> np.ndarray:
    """Any image Pillow reads, as a uint8 (rows, columns) grayscale array."""
    if not Path(path).is_file():
        raise UsageError(f"image prompt not found: {path}")
    try:
        image = grayscale_image(str(path))
    except Image.DecompressionBombError as error:
        raise UsageError(f"image {path} is too large: {error}") from error
    return image.copy()  # the loader caches its arrays; callers may write to theirs


def load_audio_prompt(path: str | Path, seconds: float | None = None) -> np.ndarray:
    """Any audio file libsndfile reads (WAV, FLAC, ...) as 8-bit unsigned mono samples at
    16 kHz, the first `seconds` of it if given. Channels are averaged; another sample rate
    is resampled by linear interpolation."""
    if not Path(path).is_file():
        raise UsageError(f"audio prompt not found: {path}")
    if seconds is not None and not seconds > 0:
        raise UsageError(f"seconds must be positive, got {seconds}")
    try:
        with soundfile.SoundFile(str(path)) as audio:
            rate = audio.samplerate
            frames = -1 if seconds is None else int(round(seconds * rate))
            samples = audio.read(frames, dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise UsageError(f"cannot read audio {path}: {error}") from error
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE and len(mono):
        times = np.arange(int(len(mono) * SAMPLE_RATE / rate)) * (rate / SAMPLE_RATE)
        mono = np.interp(times, np.arange(len(mono)), mono)
    clipped = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    return np.frombuffer(audio_to_bytes(clipped), dtype=np.uint8).copy()


def _check_image(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        raise UsageError(f"{what} must be a 2-D uint8 array")
    if image.size == 0:
        raise UsageError(f"{what} is empty")


def continue_image_rows(compressor: Compressor, image: np.ndarray, *,
                        sampler: str = "code-length", seed: int = 0, rows_above: int = 0,
                        progress: bool = False, **settings: Any) -> np.ndarray:
    """Each row's second half generated from its first half (and, if `rows_above` > 0,
    from that many original rows above it). Row r is sampled with seed `seed + r`, so a
    row does not depend on how many rows came before it."""
    _check_image(image, "image")
    if not isinstance(rows_above, int) or rows_above < 0:
        raise UsageError(f"rows_above must be an integer ≥ 0, got {rows_above!r}")
    rows, columns = image.shape
    given = columns // 2
    compressor = compressor.for_image(columns)
    result = image.copy()
    with progress_bar(progress, rows, f"image rows {compressor.name}") as advance:
        for row in range(rows):
            above = image[max(0, row - rows_above):row].tobytes()
            prompt = above + image[row, :given].tobytes()
            continuation = sample_continuation(compressor, prompt, columns - given, sampler,
                                               seed=seed + row, **settings)
            result[row, given:] = np.frombuffer(continuation, dtype=np.uint8)
            advance(1)
    return result


def continue_patch(compressor: Compressor, patch: np.ndarray, rows_given: int = 16, *,
                   sampler: str = "code-length", seed: int = 0, **settings: Any) -> np.ndarray:
    """The top `rows_given` rows of `patch` kept, the rest generated row-major."""
    _check_image(patch, "patch")
    rows, columns = patch.shape
    if not isinstance(rows_given, int) or not 0 <= rows_given <= rows:
        raise UsageError(f"rows_given must be an integer from 0 to {rows}, got {rows_given!r}")
    prompt = patch[:rows_given].tobytes()
    continuation = sample_continuation(compressor.for_image(columns), prompt,
                                       (rows - rows_given) * columns, sampler, seed=seed,
                                       **settings)
    return np.frombuffer(prompt + continuation, dtype=np.uint8).reshape(rows, columns).copy()


def continue_audio(compressor: Compressor, samples: np.ndarray, length: int, *,
                   sampler: str = "code-length", seed: int = 0, **settings: Any) -> np.ndarray:
    """`samples` (uint8, 16 kHz) followed by `length` generated samples."""
    if not isinstance(samples, np.ndarray) or samples.dtype != np.uint8 or samples.ndim != 1:
        raise UsageError("audio samples must be a 1-D uint8 array")
    prompt = samples.tobytes()
    continuation = sample_continuation(compressor.for_audio(prompt), prompt, length,
                                       sampler, seed=seed, **settings)
    return np.frombuffer(prompt + continuation, dtype=np.uint8).copy()


def image_png_bytes(image: np.ndarray) -> bytes:
    """A grayscale image as PNG file bytes (for saving samples)."""
    with io.BytesIO() as buffer:
        Image.fromarray(image).save(buffer, format="PNG")
        return buffer.getvalue()
