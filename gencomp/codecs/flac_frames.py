"""Exact bit lengths of FLAC streams, by walking their frames.

A FLAC frame is a byte-aligned header, one subframe per channel packed bit after bit (most
significant bit first), zero bits up to the next byte boundary, and a CRC-16. The padding
is the only part of a frame the decoder does not need, and where it starts is known only
by walking the subframes: warm-up samples, predictor coefficients and the Rice-coded
residual, partition by partition. `padding_bits` walks every frame and adds up their
padding; a FLAC stream's exact code length is its size in bits less that sum.

Only what the decoder needs to find lengths is decoded: sample values are skipped, not
computed. The kernel runs in numba without the GIL, so the scoring threads walk candidates
in parallel.
"""

from __future__ import annotations

import numba
import numpy as np

_kernel = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")

#: Bits per sample for the frame header's sample-size codes (0: STREAMINFO's; −1: reserved).
SAMPLE_SIZE_BITS = np.array([0, 8, 12, -1, 16, 20, 24, 32], dtype=np.int64)
CORRUPT = -1


@_kernel
def _peek(stream: np.ndarray, position: int, count: int) -> int:
    """`count` (at most 32) bits from bit `position`, most significant first; bits past
    the end read as zeros (the caller checks it did not use them)."""
    first = position >> 3
    value = 0
    for index in range(5):
        value <<= 8
        if first + index < len(stream):
            value |= np.int64(stream[first + index])
    return (value >> (40 - (position & 7) - count)) & ((1 << count) - 1)


@_kernel
def _skip_unary(stream: np.ndarray, position: int, total_bits: int) -> int:
    """The bit after the first 1 bit at or after `position` (a unary code's end), or
    `total_bits` + 1 if there is none."""
    while position < total_bits:
        byte = (np.int64(stream[position >> 3]) << (position & 7)) & 0xFF
        if byte == 0:
            position += 8 - (position & 7)
            continue
        while byte < 0x80:
            byte <<= 1
            position += 1
        return position + 1
    return total_bits + 1


@_kernel
def _skip_residual(stream: np.ndarray, position: int, block_size: int, order: int,
                   total_bits: int) -> int:
    """The bit after a Rice-coded residual of `block_size` − `order` samples."""
    method = _peek(stream, position, 2)
    if method > 1:
        return CORRUPT
    parameter_bits = 4 + method
    escape = (1 << parameter_bits) - 1
    partition_order = _peek(stream, position + 2, 4)
    position += 6
    partitions = 1 << partition_order
    if block_size % partitions or (block_size >> partition_order) < order:
        return CORRUPT
    for partition in range(partitions):
        samples = (block_size >> partition_order) - (order if partition == 0 else 0)
        parameter = _peek(stream, position, parameter_bits)
        position += parameter_bits
        if parameter == escape:  # samples stored raw, in this many bits each
            position += 5 + samples * _peek(stream, position, 5)
            continue
        for _ in range(samples):
            position = _skip_unary(stream, position, total_bits) + parameter
        if position > total_bits:
            return CORRUPT
    return position


@_kernel
def _skip_subframe(stream: np.ndarray, position: int, block_size: int, sample_bits: int,
                   total_bits: int) -> int:
    """The bit after the subframe at `position`."""
    if _peek(stream, position, 1):  # the zero bit every subframe header starts with
        return CORRUPT
    kind = _peek(stream, position + 1, 6)
    position += 7
    if _peek(stream, position, 1):  # wasted bits: unary-coded count − 1
        end = _skip_unary(stream, position + 1, total_bits)
        sample_bits -= end - position - 1
        position = end
    else:
        position += 1
    if sample_bits < 1:
        return CORRUPT
    if kind == 0:  # constant
        return position + sample_bits
    if kind == 1:  # verbatim
        return position + block_size * sample_bits
    if 8 <= kind <= 12:  # fixed predictor of order kind − 8
        order = kind - 8
        return _skip_residual(stream, position + order * sample_bits, block_size, order,
                              total_bits)
    if kind >= 32:  # linear predictor of order kind − 31
        order = kind - 31
        position += order * sample_bits
        precision = _peek(stream, position, 4) + 1
        if precision == 16:
            return CORRUPT
        position += 4 + 5 + order * precision  # precision, shift, coefficients
        return _skip_residual(stream, position, block_size, order, total_bits)
    return CORRUPT


@_kernel
def _frame_padding(stream: np.ndarray, position: int, streaminfo_sample_bits: int
                   ) -> tuple[int, int]:
    """(padding bits of all frames from byte `position` to the end, frames), or
    (CORRUPT, frame) for the first frame that does not parse."""
    total_bits = 8 * len(stream)
    padding = 0
    frames = 0
    while position < len(stream):
        if position + 6 > len(stream) or stream[position] != 0xFF \
                or stream[position + 1] & 0xFE != 0xF8:
            return CORRUPT, frames
        size_code = stream[position + 2] >> 4
        rate_code = stream[position + 2] & 0xF
        channels = (stream[position + 3] >> 4) + 1
        sample_bits = SAMPLE_SIZE_BITS[(stream[position + 3] >> 1) & 7]
        if sample_bits == 0:
            sample_bits = streaminfo_sample_bits
        if size_code == 0 or channels > 8 or sample_bits < 0 or rate_code == 15:
            return CORRUPT, frames
        header = position + 4
        # The frame (or sample) number, UTF-8 coded: as many bytes as its first byte has
        # leading ones, or one byte.
        leading_ones = 0
        while leading_ones < 8 and stream[header] & (0x80 >> leading_ones):
            leading_ones += 1
        if leading_ones == 1 or leading_ones == 8:
            return CORRUPT, frames
        header += max(leading_ones, 1)
        if size_code == 1:
            block_size = 192
        elif size_code <= 5:
            block_size = 576 << (size_code - 2)
        elif size_code == 6:
            block_size = _peek(stream, 8 * header, 8) + 1
            header += 1
        elif size_code == 7:
            block_size = _peek(stream, 8 * header, 16) + 1
            header += 2
        else:
            block_size = 256 << (size_code - 8)
        header += 1 if rate_code == 12 else 2 if rate_code in (13, 14) else 0
        bit = 8 * (header + 1)  # after the CRC-8
        for _ in range(channels):
            bit = _skip_subframe(stream, bit, block_size, sample_bits, total_bits)
            if bit < 0 or bit > total_bits:
                return CORRUPT, frames
        padding += -bit & 7
        position = ((bit + 7) >> 3) + 2  # the CRC-16
        frames += 1
    if position != len(stream):
        return CORRUPT, frames
    return padding, frames


def padding_bits(frames: bytes, sample_bits: int) -> int:
    """Padding bits in FLAC `frames` (the stream after its metadata blocks) whose
    STREAMINFO says `sample_bits` bits per sample. ValueError if they do not parse."""
    padding, count = _frame_padding(np.frombuffer(frames, dtype=np.uint8), 0, sample_bits)
    if padding < 0:
        raise ValueError(f"not FLAC frames (frame {count} does not parse)")
    return padding
