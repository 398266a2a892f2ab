"""Samplers: seeded, exact where they claim to be, and better than the paper's for LZ codecs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from gencomp import available_compressors, get_compressor
from gencomp.codecs.predictive import (
    MixedModel,
    Mixture,
    PredictiveCompressor,
    context_mixing,
)
from gencomp.compressor import Compressor
from gencomp.errors import UsageError
from predictors.base import Predictor
from predictors.cm_kernels import R_POS
from predictors.transformer import TransformerConfig, TransformerModel, TransformerPredictor
from samplers import sample_continuation
from samplers.choice import choose
from samplers.code_length import sample_code_length
from samplers.exact import LETTERS, copying_bytes, kept_prompt, sample_exact
from samplers.lookahead import copy_proposals, lz_copy
from samplers.quality import copied_spans, measure, sample_words

PROMPT = b"the cat sat on the mat. the dog sat on the log. the cat and the dog "


class MarkovPredictor(Predictor):
    """Order-1 model with a fixed random transition table and a small context window; it
    refuses, as the Transformer does, to be stepped past its window."""

    name = "markov-test"

    def __init__(self, window: int | None = None, seed: int = 0):
        generator = np.random.default_rng(seed)
        self.table = generator.dirichlet(np.full(256, 0.3), size=257)  # row 256: start
        self.window = window

    @property
    def context_length(self) -> int | None:
        return self.window

    @property
    def config(self) -> dict[str, Any]:
        return {"window": self.window}

    @property
    def fingerprint(self) -> str:
        return "markov-test"

    def start(self, batch_size: int) -> tuple[dict[str, int], np.ndarray]:
        return {"fed": 0}, np.repeat(self.table[256][None], batch_size, axis=0)

    def step(self, state: dict[str, int], symbols: np.ndarray) -> np.ndarray:
        state["fed"] += 1
        if self.context_length is not None and state["fed"] >= self.context_length:
            raise ValueError("stepped past the window")
        return self.table[symbols.astype(np.int64)]


class IdealCodeLengthCompressor(Compressor):
    """A model compressor reduced to what samplers use: the predictor's ideal code length."""

    name = "ideal-markov-test"

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def compress(self, data: bytes) -> bytes:
        return data

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        return payload

    @property
    def context_window(self) -> int | None:
        return self.predictor.context_length

    length_units = ("bits",)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        if not data:
            return 0.0
        return float(-self.predictor.symbol_log2_probs([data])[0].sum())


# --- choice ---------------------------------------------------------------------------


def test_choose_follows_two_to_the_minus_cost() -> None:
    rng = np.random.default_rng(0)
    draws = [choose(np.array([0.0, 1.0, 3.0]), 1.0, None, rng) for _ in range(20000)]
    frequencies = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(frequencies, np.array([8, 4, 1]) / 13, atol=0.015)


def test_choose_temperature_flattens_and_zero_is_greedy_among_ties() -> None:
    rng = np.random.default_rng(1)
    cost = np.array([8.0, 0.0, 0.0, 16.0])
    greedy = {choose(cost, 0.0, None, rng) for _ in range(200)}
    assert greedy == {1, 2}
    hot = np.bincount([choose(cost, 8.0, None, rng) for _ in range(20000)], minlength=4)
    np.testing.assert_allclose(hot / hot.sum(), np.array([1, 2, 2, 0.5]) / 5.5, atol=0.015)


def test_choose_top_k_keeps_ties_and_nothing_else() -> None:
    rng = np.random.default_rng(2)
    cost = np.array([5.0, 1.0, 1.0, 0.0, 9.0])
    picked = {choose(cost, 100.0, 2, rng) for _ in range(500)}
    assert picked == {1, 2, 3}
    assert {choose(cost, 1.0, 1, rng) for _ in range(50)} == {3}


# --- determinism, every compressor ------------------------------------------------------


@pytest.mark.parametrize("name", available_compressors())
def test_same_seed_same_bytes_every_compressor(name: str) -> None:
    compressor = get_compressor(name)
    # Lookahead scores ~300 continuations per byte: one byte is enough for a model.
    lookahead_bytes = 1 if compressor.predictor is not None else 3
    for sampler, length, settings in [("code-length", 3, {}),
                                      ("lookahead", lookahead_bytes, {"horizon": 4})]:
        first = sample_continuation(compressor, PROMPT, length, sampler, seed=7, **settings)
        again = sample_continuation(compressor, PROMPT, length, sampler, seed=7, **settings)
        assert len(first) == length and first == again


@pytest.mark.parametrize("sampler", ["code-length", "lookahead"])
def test_different_seeds_differ(sampler: str) -> None:
    gzip = get_compressor("gzip")
    samples = {sample_continuation(gzip, PROMPT, 12, sampler, horizon=4, seed=seed,
                                   temperature=2.0, length_unit="bytes") for seed in range(4)}
    assert len(samples) > 1


def test_zero_length_and_empty_prompt() -> None:
    gzip = get_compressor("gzip")
    assert sample_continuation(gzip, PROMPT, 0) == b""
    assert len(sample_continuation(gzip, b"", 3, "lookahead", horizon=4)) == 3


@pytest.mark.parametrize("arguments, message", [
    ({"sampler": "nosuch"}, "unknown sampler"),
    ({"length": -1}, "length"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top-k"),
    ({"horizon": 0}, "horizon"),
    ({"beam_width": 0}, "beam width"),
    ({"seed": -3}, "seed"),
    ({"sampler": "exact"}, "model compressor"),
])
def test_bad_settings_are_usage_errors(arguments: dict[str, Any], message: str) -> None:
    settings = {"length": 2, **arguments}
    with pytest.raises(UsageError, match=message):
        sample_continuation(get_compressor("gzip"), PROMPT, **settings)


# --- exact sampling from a predictor ----------------------------------------------------


def test_exact_sampler_draws_what_code_lengths_define() -> None:
    """On a model compressor, code-length sampling (256 recompressions per byte) and exact
    sampling (one step per byte) draw the same distribution: with one generator seed they
    give the same bytes."""
    compressor = IdealCodeLengthCompressor(MarkovPredictor())
    prompt = PROMPT[:12]
    for seed in range(3):
        settings = {"temperature": 1.0, "top_k": None, "advance": lambda count: None}
        by_code_length = sample_code_length(compressor, prompt, 6, unit="bits",
                                            rng=np.random.default_rng(seed), **settings)
        exact = sample_exact(compressor.predictor, prompt, 6, window=None,
                             rng=np.random.default_rng(seed), **settings)
        assert by_code_length == exact
        assert sample_continuation(compressor, prompt, 6, seed=seed) == exact


def test_exact_sampler_is_the_context_mixing_compressors_distribution() -> None:
    """The real model compressor: its code-length distribution (one priming per byte) and
    the exact sampler (one step per byte) give the same bytes for the same seed."""
    cm = context_mixing()
    for seed in range(2):
        settings = {"temperature": 1.0, "top_k": None, "advance": lambda count: None}
        by_code_length = sample_code_length(cm, PROMPT, 8, rng=np.random.default_rng(seed),
                                            unit="bits", **settings)
        assert sample_continuation(cm, PROMPT, 8, seed=seed) == by_code_length
    assert cm.context_window == cm.chunk_size


def test_exact_sampler_on_a_transformer_with_a_small_window() -> None:
    """A real (untrained) Transformer that holds 24 bytes: within the window exact and
    code-length sampling agree; past it the sampler slides instead of overflowing."""
    torch.manual_seed(0)
    config = TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2, context_length=24)
    model = PredictiveCompressor(TransformerPredictor(TransformerModel(config)), chunk_size=24)
    assert model.context_window == 24
    settings = {"temperature": 1.0, "top_k": None, "advance": lambda count: None}
    by_code_length = sample_code_length(model, PROMPT[:10], 8, unit="bits",
                                        rng=np.random.default_rng(4), **settings)
    assert sample_continuation(model, PROMPT[:10], 8, seed=4) == by_code_length
    long_sample = sample_continuation(model, PROMPT, 50, "exact", seed=4)
    assert len(long_sample) == 50
    assert sample_continuation(model, PROMPT, 50, "exact", seed=4) == long_sample


def test_exact_sampler_greedy_follows_the_table() -> None:
    predictor = MarkovPredictor()
    sample = sample_continuation(IdealCodeLengthCompressor(predictor), b"a", 20, "exact",
                                 temperature=0.0)
    previous = ord("a")
    for byte in sample:
        assert byte == int(np.argmax(predictor.table[previous]))
        previous = byte


def test_exact_sampler_stays_inside_the_context_window() -> None:
    predictor = MarkovPredictor(window=16)
    compressor = IdealCodeLengthCompressor(predictor)
    for prompt_length, length in [(0, 40), (5, 11), (10, 6), (100, 4), (100, 30)]:
        prompt = PROMPT[:prompt_length]
        assert len(sample_continuation(compressor, prompt, length, "exact", seed=1)) == length
    assert kept_prompt(b"x" * 100, 6, 16) == b"x" * 10
    assert kept_prompt(b"x" * 100, 12, 16) == b"x" * 8
    assert kept_prompt(b"x" * 10, 6, 16) == b"x" * 10


def test_frozen_sampling_draws_from_the_model_the_prompt_left() -> None:
    """Frozen, cm draws each byte from the model as primed on the prompt: the same seed
    gives the same bytes, and they are what stepping a frozen copy by hand gives; the
    learning sampler (the code-length distribution) draws otherwise. A classical codec has
    nothing to freeze."""
    cm = context_mixing()
    prompt = PROMPT * 3
    frozen = sample_continuation(cm, prompt, 40, "exact", seed=3, frozen=True)
    assert frozen == sample_continuation(cm, prompt, 40, "exact", seed=3, frozen=True)
    assert frozen != sample_continuation(cm, prompt, 40, "exact", seed=3)
    model = cm.next_byte_model
    state, probabilities = model.start(1)
    probabilities = model.prime(state, np.frombuffer(prompt, dtype=np.uint8)[None, :])
    model.freeze(state)
    rng, by_hand = np.random.default_rng(3), bytearray()
    for _ in range(40):
        by_hand.append(choose(-np.log2(probabilities[0]), 1.0, None, rng))
        probabilities = model.step(state, np.array(by_hand[-1:], dtype=np.uint8))
    assert bytes(by_hand) == frozen
    with pytest.raises(UsageError, match="frozen applies"):
        sample_continuation(get_compressor("gzip"), prompt, 4, frozen=True)


def documented_left_out(text: bytes, copy_limit: int) -> set[int]:
    """The copy limit's rule as samplers.exact states it, by brute force."""
    if len(text) <= copy_limit or chr(text[-1]).isascii() and chr(text[-1]).isalpha():
        return set()
    tail = text[-copy_limit:]
    punctuation_run = not any(chr(byte).isascii() and chr(byte).isalpha() for byte in tail)
    return {byte for byte in range(256) if tail + bytes([byte]) in text
            and (chr(byte).isascii() and chr(byte).isalpha() or punctuation_run)}


@pytest.mark.parametrize("copy_limit", [1, 3, 5, 9])
def test_copy_limit_leaves_out_what_its_rule_says(alice: bytes, copy_limit: int) -> None:
    """At every cut of real prose, of random text and of punctuation runs, the bytes left
    out are exactly those of the documented rule."""
    generator = np.random.default_rng(copy_limit)
    texts = [alice[:3000], bytes(generator.choice(list(b"ab ,["), 600)),
             b"[[x]] [[[[[[[[ y [[[[[[[[[[ " * 4]
    for text in texts:
        for end in range(1, len(text) + 1):
            assert set(copying_bytes(text[:end], copy_limit)) == documented_left_out(
                text[:end], copy_limit)
    assert LETTERS == {byte for byte in range(256) if chr(byte).isascii() and chr(byte).isalpha()}


def test_exact_sampling_with_a_copy_limit_draws_no_left_out_byte(alice: bytes) -> None:
    """cm, sharpened and learning on prose: with the limit every byte drawn is allowed
    (and the sample copies less of the prompt), the same seed gives the same bytes, and
    greedy picks the likeliest allowed byte."""
    cm = context_mixing()
    prompt = alice[:6000]
    settings = {"temperature": 0.5, "top_k": 2, "seed": 7}
    limited = sample_continuation(cm, prompt, 120, "exact", copy_limit=4, **settings)
    assert limited == sample_continuation(cm, prompt, 120, "exact", copy_limit=4, **settings)
    for index, byte in enumerate(limited):
        assert byte not in documented_left_out(prompt + limited[:index], 4)
    free = sample_continuation(cm, prompt, 120, "exact", **settings)
    assert free != limited
    assert copied_spans(limited, prompt)[1] < copied_spans(free, prompt)[1]
    predictor = MarkovPredictor()
    text = b"ab ab ab ab "
    greedy = sample_continuation(IdealCodeLengthCompressor(predictor), text, 1, "exact",
                                 temperature=0.0, copy_limit=2)
    allowed = [byte for byte in range(256) if byte not in documented_left_out(text, 2)]
    assert greedy[0] == max(allowed, key=lambda byte: predictor.table[ord(" ")][byte])
    with pytest.raises(UsageError, match="copy limit applies"):
        sample_continuation(get_compressor("gzip"), text, 4, "lookahead", copy_limit=3)


def test_a_mixture_slides_its_windowed_predictor_and_keeps_the_rest() -> None:
    """A Transformer of 24 bytes mixed with cm: past the window the Transformer restarts on
    the last 12 bytes, as stepping a fresh one on them gives, while cm reads on from the
    first byte; the mixture, and so the sampler, holds any length."""
    torch.manual_seed(0)
    config = TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2, context_length=24)
    transformer = TransformerPredictor(TransformerModel(config))
    model = MixedModel(transformer, context_mixing().predictor, lambda: Mixture(1 / 512, 2))
    text = np.frombuffer(PROMPT, dtype=np.uint8)[None, :]
    state, _ = model.start(1)
    model.prime(state, text)
    assert state.second_state[0].registers[R_POS] == len(PROMPT)
    fresh, first = transformer.start(1)
    first = transformer.prime(fresh, text[:, len(PROMPT) - state.first_state.fed:])
    np.testing.assert_array_equal(state.first, first)
    compressor = PredictiveCompressor(transformer, None, mix="cm-signals",
                                      companion=context_mixing().predictor)
    assert compressor.context_window is None
    sample = sample_continuation(compressor, PROMPT, 60, "exact", seed=2)
    assert len(sample) == 60 and sample == sample_continuation(compressor, PROMPT, 60,
                                                               "exact", seed=2)


def test_a_frozen_mixture_keeps_its_weights() -> None:
    """transformer-cm's sampling model: frozen, neither the mixture's weight nor cm's
    arrays move as bytes are fed."""
    model = get_compressor("transformer-cm").next_byte_model
    state, _ = model.start(1)
    model.prime(state, np.frombuffer(PROMPT, dtype=np.uint8)[None, :])
    model.freeze(state)
    weight, maps = state.mixtures[0].weight, state.second_state[0].maps.copy()
    model.prime(state, np.frombuffer(b"the cat", dtype=np.uint8)[None, :])
    assert state.mixtures[0].weight == weight
    assert np.array_equal(state.second_state[0].maps, maps)


# --- lookahead --------------------------------------------------------------------------


def test_lz_copy_overlaps_its_own_output() -> None:
    assert lz_copy(b"xxabc", 2, 7) == b"abcabca"
    assert lz_copy(b"hello", 0, 3) == b"hel"


def test_copy_proposals_follow_the_longest_suffixes_first() -> None:
    text = b"the cat sat. a cat ran. the cat "
    proposals = copy_proposals(text, 4)
    assert proposals[:2] == [b"sat.", b"ran."]  # after "the cat ", then after "cat "
    assert all(len(proposal) == 4 for proposal in proposals)
    assert copy_proposals(b"abcdefgh", 4) == []  # nothing recurs
    assert [copy_proposals(text, 3) for text in (b"", b"a", b"aa")] == [[], [], [b"aaa"]]


# --- quality ----------------------------------------------------------------------------


def test_quality_words_are_completed_from_the_prompt_and_cut_at_the_end() -> None:
    assert sample_words(b"chism is a theo", b"Anar") == ["anarchism", "is"]
    assert sample_words(b" so it goes", b"Anar") == ["so", "it"]


def test_quality_copied_spans() -> None:
    prompt = b"0123456789abcdefghijklmnopqrstuvwxyz"
    sample = b"!!" + prompt[5:25] + b"??" + prompt[:10]
    copied, longest = copied_spans(sample, prompt)
    assert longest == 20 and copied == 20  # the 10-byte copy is under MIN_COPY_BYTES
    quality = measure(sample, prompt, vocabulary=frozenset())
    assert quality.copied_share == pytest.approx(20 / len(sample))


def test_lookahead_gzip_reads_as_words_and_horizon_one_does_not(enwik8_megabyte: bytes) -> None:
    """The paper's setup (1948 bytes of enwik8, 100 generated): gzip's horizon-1 samples
    are gibberish; lookahead samples are mostly known words, and not a verbatim copy."""
    prompt = enwik8_megabyte[4096:4096 + 1948]
    gzip = get_compressor("gzip")
    horizon_one = measure(sample_continuation(gzip, prompt, 100, "code-length", seed=0),
                          prompt)
    lookahead = measure(sample_continuation(gzip, prompt, 100, "lookahead", horizon=8,
                                            seed=0), prompt)
    assert horizon_one.known_word_share < 0.35
    assert lookahead.known_word_share > 0.6
    assert lookahead.known_word_share - horizon_one.known_word_share > 0.4
    assert lookahead.longest_copy < 100
