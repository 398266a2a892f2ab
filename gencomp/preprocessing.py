"""The paper's preprocessing of images and audio into bytes, shared by the data sets (which
cut them into chunks) and the samplers (which turn a user's prompt into the same bytes).

- images: RGB, then grayscale as the mean of the three channels cast to uint8; a chunk of n
  bytes is a patch of the two closest factors of n (2048 → 32 rows × 64 columns);
- audio: 16-bit samples reduced to 8-bit unsigned, the high byte + 128 (the paper's
  `audioop.lin2lin` + `bias`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from gencomp.errors import UsageError


def closest_factors(length: int) -> tuple[int, int]:
    """(rows, columns) with rows × columns = length, rows ≤ columns, as close as possible."""
    rows = math.isqrt(length)
    while length % rows:
        rows -= 1
    return rows, length // rows


@functools.lru_cache(maxsize=4)
def grayscale_image(path: str) -> np.ndarray:
    """RGB → mean of the three channels cast to uint8 (the paper's `np.mean(...).astype`).

    The integer floor of (r + g + b) / 3 equals the float mean truncated, exactly. Cached:
    consecutive benchmark tasks often share the image at their boundary."""
    from PIL import Image  # loaded where an image is read, not by every command

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint16)
    except OSError as error:
        raise UsageError(f"cannot read image {path}: {error}") from error
    return (rgb.sum(axis=-1) // 3).astype(np.uint8)


def image_patches(image: np.ndarray, first: int, num_chunks: int, chunk_size: int
                  ) -> list[bytes]:
    """Patches `first` .. `first + num_chunks - 1` of a grayscale image, row-major."""
    rows, columns = closest_factors(chunk_size)
    per_row = image.shape[1] // columns
    patches = []
    for index in range(first, first + num_chunks):
        top, left = (index // per_row) * rows, (index % per_row) * columns
        patches.append(image[top:top + rows, left:left + columns].tobytes())
    return patches


def audio_to_bytes(samples: np.ndarray) -> bytes:
    """16-bit signed samples → 8-bit unsigned: the high byte (arithmetic shift) + 128."""
    return ((samples.astype(np.int16) >> 8) + 128).astype(np.uint8).tobytes()
