"""Arithmetic coding: how a next-byte model becomes a compressor (Delétang et al., Sec. 2).

Given the model's distribution p(· | x<t) for each byte, an arithmetic coder spends about
−log2 p(x_t | x<t) bits on byte x_t, so a sequence costs its ideal code length
Σ −log2 p plus a few bits. We use constriction's range coder (a fast arithmetic coder,
32-bit words, 24-bit probability precision) and wrap it here once, for every predictor.

Quantisation. The coder needs integer frequencies summing to 2**24; constriction's
`Categorical(perfect=False)` derives them from each float row (rescaled to sum to 1),
deterministically, and gives every symbol at least the smallest representable mass,
2**-24, even a symbol the model gives probability 0. So any byte is always encodable, and
the decoder, given the same float rows, rebuilds the same frequencies. What that costs is
measured, not assumed: `benchmarks/bench_coder.py` compares the payload with Σ −log2 p
(the ideal code length) on real model probabilities; the overhead is a few hundredths of
a percent.

Encoding takes all of a sequence's rows at once (one call per block of symbols); decoding
must go one symbol at a time, because the model's next row depends on the decoded byte.
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from gencomp.errors import CorruptPayloadError

#: Probability precision of constriction's default range coder.
PRECISION_BITS = 24
#: The smallest probability a symbol is coded with (constriction's floor).
MIN_PROBABILITY = 2.0 ** -PRECISION_BITS

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


class Encoder:
    """Appends symbols, coded under their distributions, to one compressed stream."""

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, probabilities: np.ndarray) -> None:
        """Code `symbols` (n,) under `probabilities` (n, alphabet), row i for symbol i."""
        if len(symbols):
            self._coder.encode(np.asarray(symbols, dtype=np.int32), _CATEGORICAL,
                               np.ascontiguousarray(probabilities, dtype=np.float64))

    def words(self) -> np.ndarray:
        """The compressed stream so far: uint32 words."""
        return self._coder.get_compressed()


class Decoder:
    """Reads symbols back from a stream made by `Encoder`, one distribution at a time."""

    def __init__(self, words: np.ndarray) -> None:
        self._coder = constriction.stream.queue.RangeDecoder(
            np.ascontiguousarray(words, dtype=np.uint32))

    def decode(self, probabilities: np.ndarray) -> int:
        """The next symbol, coded under `probabilities` (alphabet,)."""
        try:
            return int(self._coder.decode(_CATEGORICAL, probabilities[None, :])[0])
        except (ValueError, RuntimeError, AssertionError) as error:  # constriction: bad data
            raise CorruptPayloadError(f"arithmetic decoder failed: {error}") from error


def encode(symbols: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """One sequence's compressed words."""
    encoder = Encoder()
    encoder.encode(symbols, probabilities)
    return encoder.words()


def decode(words: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Decode len(probabilities) symbols whose distributions are all known in advance, in
    one call (a model's decoder cannot: it goes through `Decoder`, a symbol at a time)."""
    coder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
    try:
        return coder.decode(_CATEGORICAL, np.ascontiguousarray(probabilities, dtype=np.float64)
                            ).astype(np.int64)
    except (ValueError, RuntimeError) as error:
        raise CorruptPayloadError(f"arithmetic decoder failed: {error}") from error


def ideal_code_length_bits(symbols: np.ndarray, probabilities: np.ndarray) -> float:
    """Σ −log2 p(symbol): the length an ideal arithmetic coder would reach."""
    chosen = probabilities[np.arange(len(symbols)), symbols]
    return math.fsum(-np.log2(chosen))


def words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


def bytes_to_words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise CorruptPayloadError("compressed stream is not a whole number of 32-bit words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
