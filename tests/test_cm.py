"""The context-mixing predictor: valid distributions, exact and independent sequences,
online learning, and better than gzip on chunked text."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import gencomp.codecs.predictive  # noqa: F401  (registers "cm")
from gencomp import get_compressor
from gencomp.errors import UsageError
from predictors.cm import SQUASH, STRETCH, ContextMixingPredictor


def code_lengths(predictor: ContextMixingPredictor, sequences: list[bytes]) -> list[float]:
    return [float(-log2_probs.sum()) for log2_probs in predictor.symbol_log2_probs(sequences)]


def test_distributions_are_valid() -> None:
    predictor = ContextMixingPredictor()
    state, probabilities = predictor.start(3)
    for symbols in ([0, 65, 255], [10, 10, 10], [200, 0, 1]):
        assert probabilities.shape == (3, 256) and probabilities.dtype == np.float64
        assert np.all(probabilities > 0)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        probabilities = predictor.step(state, np.array(symbols, dtype=np.uint8))


def test_sequences_in_a_batch_do_not_interact(enwik8_megabyte: bytes) -> None:
    """A sequence gets bit-identical probabilities alone or batched with others (and in any
    row): chunks are independent, and the decoder may group them as the encoder did."""
    texts = [enwik8_megabyte[start:start + 300] for start in (0, 5000, 90000)]
    predictor = ContextMixingPredictor()
    batched = predictor.symbol_log2_probs(texts)
    reversed_batch = predictor.symbol_log2_probs(texts[::-1])[::-1]
    for text, together, reordered in zip(texts, batched, reversed_batch, strict=True):
        alone = predictor.symbol_log2_probs([text])[0]
        assert np.array_equal(alone, together) and np.array_equal(alone, reordered)


def test_learns_online() -> None:
    text = b"context mixing learns from the bytes it has already seen. "
    predictor = ContextMixingPredictor()
    log2_probs = predictor.symbol_log2_probs([text * 4])[0]
    first, last = -log2_probs[: len(text)].sum(), -log2_probs[-len(text):].sum()
    assert last < 0.15 * first


def test_beats_gzip_on_chunked_text(enwik8_megabyte: bytes) -> None:
    """The paper's setting: independent 2048-byte chunks, gzip's header counted once."""
    chunks = [enwik8_megabyte[start:start + 2048] for start in range(0, 4 * 2048, 2048)]
    gzip_bytes = (sum(len(gzip.compress(chunk, 9, mtime=0)) for chunk in chunks)
                  - (len(chunks) - 1) * len(gzip.compress(b"\0", 9, mtime=0)))
    cm_bits = sum(code_lengths(ContextMixingPredictor(), chunks))
    assert cm_bits / 8 < 0.92 * gzip_bytes


def test_random_bytes_cost_about_eight_bits() -> None:
    data = np.random.default_rng(3).bytes(1500)
    bits_per_byte = code_lengths(ContextMixingPredictor(), [data])[0] / len(data)
    assert 7.9 < bits_per_byte < 8.12


def test_fixed_point_logistic_tables() -> None:
    assert np.all(np.diff(SQUASH) >= 0) and SQUASH[0] >= 0 and SQUASH[-1] <= 4095
    probabilities = np.arange(1, 4095)
    roundtrip = SQUASH[STRETCH[probabilities] + 2047]
    # stretch is squash's inverse up to squash's step (at most 4 where it is steepest)
    assert np.all(np.abs(roundtrip - probabilities) <= 4)


def test_config_and_fingerprint() -> None:
    predictor = ContextMixingPredictor(order=3)
    assert predictor.config == {"order": 3, "table_bits": 13}
    assert predictor.num_parameters == 0
    assert predictor.fingerprint == ContextMixingPredictor(order=3).fingerprint
    assert predictor.fingerprint != ContextMixingPredictor(order=4).fingerprint


@pytest.mark.parametrize("bad", [{"order": -1}, {"order": 8}, {"order": "4"},
                                 {"table_bits": 3}])
def test_bad_settings_are_usage_errors(bad: dict) -> None:
    with pytest.raises(UsageError):
        get_compressor("cm", **bad)
