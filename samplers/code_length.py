"""The paper's sampler (Sec. 3.4): the next byte from code-length differences.

    p(b | x) ∝ 2^((ℓ(x) − ℓ(x·b)) / T)   over the 256 single bytes b.

Whatever the compressor, this is its conditional distribution, one byte at a time. With
lengths counted in bytes (the paper's; zstd, brotli and LZMA2 offer no other)
ℓ(x·b) − ℓ(x) is a multiple of 8 bits, usually 0 or 8, so the distribution is a step
function: many candidates tie at the minimum and are equally likely, and T only rescales
the 8-bit steps (T = 8 turns a one-byte step into a factor of 2). In exact bits (gzip,
bz2, PNG, FLAC) the steps are single bits: the cost of a byte is what the codec's model
charges for it, e.g. the Rice code of FLAC's prediction residual. An LZ codec also cannot
see that b begins a repeat until the repeat is a few bytes long, so its horizon-1 samples
are close to uniform gibberish; `samplers.lookahead` scores whole repeats instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gencomp.compressor import Compressor
from samplers.choice import choose

SINGLE_BYTES = tuple(bytes([value]) for value in range(256))


def sample_code_length(compressor: Compressor, prompt: bytes, length: int, *,
                       temperature: float, top_k: int | None, rng: np.random.Generator,
                       unit: str, advance: Callable[[int], None]) -> bytes:
    """`length` bytes, each drawn from the code-length distribution (lengths in `unit`)
    given all before it."""
    text = bytearray(prompt)
    for _ in range(length):
        cost = compressor.continuation_bits(bytes(text), SINGLE_BYTES, unit)
        text.append(choose(cost, temperature, top_k, rng))
        advance(1)
    return bytes(text[len(prompt):])
