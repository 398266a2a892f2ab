"""PNG's row filters, undone (PNG 1.2, section 6): the decoding half of our PNG codec.

Each row of a filtered image starts with its filter type; the rest are differences from a
prediction made of the pixel to the left (a), the one above (b) and the one above-left
(c), modulo 256. We undo them ourselves, row by row, so that an image decodes a piece at
a time (Pillow decodes a whole image into memory first). Grayscale, 8 bits per pixel: one
byte per pixel, which is all our codec writes.
"""

from __future__ import annotations

import numba
import numpy as np

NONE, SUB, UP, AVERAGE, PAETH = range(5)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _unfilter(filtered: np.ndarray, above: np.ndarray, out: np.ndarray) -> int:
    rows, columns = out.shape
    for row in range(rows):
        kind = filtered[row, 0]
        if kind > PAETH:
            return row
        previous = above if row == 0 else out[row - 1]
        for column in range(columns):
            left = np.int32(out[row, column - 1]) if column else np.int32(0)
            up = np.int32(previous[column])
            up_left = np.int32(previous[column - 1]) if column else np.int32(0)
            if kind == NONE:
                prediction = np.int32(0)
            elif kind == SUB:
                prediction = left
            elif kind == UP:
                prediction = up
            elif kind == AVERAGE:
                prediction = (left + up) >> 1
            else:
                estimate = left + up - up_left
                to_left, to_up = abs(estimate - left), abs(estimate - up)
                to_up_left = abs(estimate - up_left)
                if to_left <= to_up and to_left <= to_up_left:
                    prediction = left
                elif to_up <= to_up_left:
                    prediction = up
                else:
                    prediction = up_left
            out[row, column] = (np.int32(filtered[row, column + 1]) + prediction) & 0xFF
    return -1


def unfilter(filtered: np.ndarray, above: np.ndarray) -> np.ndarray:
    """The pixels of `filtered` (rows of a filter-type byte and `columns` bytes), given the
    row `above` the first one (zeros for an image's first row). A ValueError names a
    row with an unknown filter type."""
    out = np.empty((filtered.shape[0], filtered.shape[1] - 1), dtype=np.uint8)
    bad_row = _unfilter(filtered, above, out)
    if bad_row >= 0:
        raise ValueError(f"row {bad_row} has unknown filter type {filtered[bad_row, 0]}")
    return out
