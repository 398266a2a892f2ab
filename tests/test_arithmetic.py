"""The range coder wrapper: exact round trips, every symbol encodable, small overhead."""

from __future__ import annotations

import numpy as np
import pytest

from gencomp import arithmetic
from gencomp.errors import CorruptPayloadError


def random_distributions(rng: np.random.Generator, count: int, concentration: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Peaked random distributions and symbols drawn from them."""
    probabilities = rng.dirichlet(np.full(256, concentration), size=count)
    symbols = np.array([rng.choice(256, p=row) for row in probabilities])
    return symbols, probabilities


@pytest.mark.parametrize("concentration", [0.01, 0.3, 10.0])
def test_round_trip(concentration: float) -> None:
    rng = np.random.default_rng(7)
    symbols, probabilities = random_distributions(rng, 500, concentration)
    words = arithmetic.encode(symbols, probabilities)
    assert np.array_equal(arithmetic.decode(words, probabilities), symbols)


def test_blocks_append_to_one_stream() -> None:
    """Encoding in several calls gives the same stream as one call: the compressor hands
    its rows to the coder a block at a time."""
    rng = np.random.default_rng(8)
    symbols, probabilities = random_distributions(rng, 300, 0.1)
    encoder = arithmetic.Encoder()
    for start in range(0, 300, 64):
        encoder.encode(symbols[start:start + 64], probabilities[start:start + 64])
    assert np.array_equal(encoder.words(), arithmetic.encode(symbols, probabilities))


def test_zero_probability_symbols_stay_encodable() -> None:
    """The quantiser floors every symbol at 2**-24, so a byte the model calls impossible
    is still coded (expensively) and decoded."""
    probabilities = np.zeros((4, 256))
    probabilities[:, 65] = 1.0
    symbols = np.array([65, 0, 255, 65])
    words = arithmetic.encode(symbols, probabilities)
    assert np.array_equal(arithmetic.decode(words, probabilities), symbols)
    # each impossible symbol costs about 24 bits, not more
    assert 32 * len(words) <= 2 * arithmetic.PRECISION_BITS + 64


def order1_model_probabilities(data: bytes) -> np.ndarray:
    """Probabilities of a small adaptive order-1 model (counts + 1/2): a real model on
    real data, cheap enough for a unit test."""
    counts = np.full((256, 256), 0.5)
    probabilities = np.empty((len(data), 256))
    previous = 0
    for position, byte in enumerate(data):
        row = counts[previous]
        probabilities[position] = row / row.sum()
        row[byte] += 1.0
        previous = byte
    return probabilities


def test_overhead_over_ideal_code_length_is_small(enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:65536]
    symbols = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    probabilities = order1_model_probabilities(data)
    ideal = arithmetic.ideal_code_length_bits(symbols, probabilities)
    actual = 32 * len(arithmetic.encode(symbols, probabilities))
    assert ideal <= actual <= ideal * 1.0005 + 64
    assert np.array_equal(arithmetic.decode(arithmetic.encode(symbols[:2000], probabilities[:2000]),
                                            probabilities[:2000]), symbols[:2000])


def test_word_bytes_round_trip_and_reject_partial_words() -> None:
    words = np.array([0, 1, 0xFFFFFFFF, 0x12345678], dtype=np.uint32)
    assert np.array_equal(arithmetic.bytes_to_words(arithmetic.words_to_bytes(words)), words)
    assert arithmetic.words_to_bytes(words)[4:8] == b"\x01\x00\x00\x00"  # little-endian
    with pytest.raises(CorruptPayloadError):
        arithmetic.bytes_to_words(b"\x00" * 5)
