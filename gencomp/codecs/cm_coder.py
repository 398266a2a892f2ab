"""The `cm` codec's coding loops: the context-mixing model's bit predictions drive a binary
arithmetic coder, compiled with numba.

The coder is the carry-less 32-bit binary arithmetic coder of lpaq1 (Mahoney): the
interval [low, high] is split in proportion to the model's 12-bit P(1); a bit keeps one
part; whenever low and high agree in their leading byte, that byte is final and is
written. At the end one byte that lies inside the interval suffices, because the decoder
reads missing bytes as 0xFF. The decoder makes the same splits, so it reads back every
bit, given the same probabilities, which `predictors.cm_kernels` computes identically on
both sides (integers only).

The decoder also counts the bytes it consumed: a stream that is longer or shorter than
what the encoder wrote for that many bytes is damaged.

numba caches compiled code per source file, and these loops inline the model's kernels
from another file: an edit there would leave this file's cache stale (other
probabilities, payloads that decode nowhere else). So this file records the kernels'
digest and refuses to load with any other: an edit to `predictors/cm_kernels.py` must
update KERNELS_SHA256, which changes this file and so recompiles it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np

from predictors import cm_kernels
from predictors.cm_kernels import learn, predict

#: sha256 of predictors/cm_kernels.py, whose code these loops inline (module doc).
KERNELS_SHA256 = "88c661d44759a401fd16b99ee20e2ab5156581950be5ae4248da02a34c392620"


def kernels_digest() -> str:
    return hashlib.sha256(Path(cm_kernels.__file__).read_bytes()).hexdigest()


if kernels_digest() != KERNELS_SHA256:
    raise RuntimeError("predictors/cm_kernels.py changed: set KERNELS_SHA256 in "
                       f"{__file__} to {kernels_digest()} (its compiled cache inlines them)")

_kernel = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy",
                     _nrt=False)


@_kernel
def encode_bytes(model, data, out):
    """Code `data` under `model` (which learns it) into `out`; return the number of bytes
    written, or −1 if `out` is too small."""
    tables, maps, registers, history = model
    low, high, written, capacity = 0, 0xFFFFFFFF, 0, len(out)
    for byte in data:
        for i in range(7, -1, -1):
            bit = (byte >> i) & 1
            middle = low + ((high - low) >> 12) * predict(tables, maps, registers)
            if bit:
                high = middle
            else:
                low = middle + 1
            learn(tables, maps, registers, history, bit)
            while ((low ^ high) & 0xFF000000) == 0:
                if written == capacity:
                    return -1
                out[written] = high >> 24
                written += 1
                low = (low << 8) & 0xFFFFFFFF
                high = ((high << 8) & 0xFFFFFFFF) | 0xFF
    if written == capacity:
        return -1
    out[written] = low >> 24
    return written + 1


#: The decoder's state between calls (`decode_bytes`): low, high, the code value x, and
#: how many stream bytes it has consumed.
LOW, HIGH, CODE, CONSUMED = range(4)


def start_decoding() -> np.ndarray:
    """A decoder state before the first byte."""
    return np.array([0, 0xFFFFFFFF, 0, 0], dtype=np.int64)


def consumed_exactly(state: np.ndarray, stream: np.ndarray) -> bool:
    """Whether the stream was exactly as long as the encoder would have written it for
    the bytes decoded: it wrote one byte per shift and one at the end; we read four at
    the start."""
    return int(state[CONSUMED]) - 3 == len(stream)


@_kernel
def decode_bytes(model, stream, out, state):
    """Decode len(out) more bytes from `stream` under `model` into `out`, from and into
    the decoder `state` (`start_decoding`), so that a long stream decodes in pieces."""
    tables, maps, registers, history = model
    low, high, x, consumed = state[LOW], state[HIGH], state[CODE], state[CONSUMED]
    length = len(stream)
    if consumed == 0:
        for _ in range(4):
            x = (x << 8) | (stream[consumed] if consumed < length else 0xFF)
            consumed += 1
    for position in range(len(out)):
        byte = 0
        for _ in range(8):
            middle = low + ((high - low) >> 12) * predict(tables, maps, registers)
            bit = 1 if x <= middle else 0
            if bit:
                high = middle
            else:
                low = middle + 1
            learn(tables, maps, registers, history, bit)
            byte = (byte << 1) | bit
            while ((low ^ high) & 0xFF000000) == 0:
                low = (low << 8) & 0xFFFFFFFF
                high = ((high << 8) & 0xFFFFFFFF) | 0xFF
                x = ((x << 8) & 0xFFFFFFFF) | (stream[consumed] if consumed < length else 0xFF)
                consumed += 1
        out[position] = byte
    state[LOW], state[HIGH], state[CODE], state[CONSUMED] = low, high, x, consumed
