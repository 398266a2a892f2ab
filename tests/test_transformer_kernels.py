"""The Transformer's CPU kernels: the same network as the PyTorch model, and one exact
computation whether a sequence is scored whole (the encoder) or stepped (the decoder)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gencomp.compressor import get_compressor
from gencomp.container import pack, unpack
from gencomp.errors import ModelMismatchError, UsageError
from predictors import transformer_kernels
from predictors.float32x16 import LANES, holds_half_floats, load, store
from predictors.transformer import (
    KERNEL_ENGINES,
    ModelTensors,
    TransformerConfig,
    TransformerModel,
    TransformerPredictor,
)
from predictors.transformer_model import state_arrays
from tests.test_transformer import ENWIK8, TINY, random_model

#: Small, and with every remainder the kernels handle: 12-wide heads (an 8-row pass plus
#: single rows), a context that is not a multiple of the 64-key block, widening 3.
ODD = TransformerConfig(embedding_dim=24, num_layers=2, num_heads=2, widening_factor=3,
                        context_length=100)


def torch_distributions(model: TransformerModel, sequence: bytes) -> np.ndarray:
    inputs = torch.tensor([0, *sequence[:-1]]).long()[None]
    with torch.no_grad():
        return torch.softmax(model(inputs).double(), dim=-1)[0].numpy()


def stepped_distributions(predictor: TransformerPredictor, sequences: list[bytes],
                          row: int) -> np.ndarray:
    """Row `row`'s distributions when `sequences` are stepped together as one batch."""
    longest = max(map(len, sequences))
    padded = np.zeros((len(sequences), longest), dtype=np.uint8)
    for index, sequence in enumerate(sequences):
        padded[index, :len(sequence)] = np.frombuffer(sequence, np.uint8)
    state, probabilities = predictor.start(len(sequences))
    rows = [probabilities[row]]
    for position in range(len(sequences[row]) - 1):
        rows.append(predictor.step(state, padded[:, position])[row])
    return np.stack(rows)


@pytest.mark.parametrize("engine", KERNEL_ENGINES)
@pytest.mark.parametrize("config", [TINY, ODD], ids=["tiny", "odd"])
def test_kernels_compute_the_pytorch_models_distributions(config: TransformerConfig,
                                                           engine: str) -> None:
    model = random_model(config)
    predictor = TransformerPredictor(model, engine=engine)
    sequence = np.random.default_rng(3).integers(0, 256, config.context_length,
                                                 dtype=np.uint8).tobytes()
    kernels = predictor.sequence_distributions(sequence)
    reference = torch_distributions(model, sequence)
    assert kernels.shape == reference.shape == (config.context_length, 256)
    # half-float values carry 11 significant bits: 2^-12 relative, in every value summed
    tolerance = {"kernels": 1e-3, "kernels-f16": 4e-3}[engine]
    assert np.abs(np.log2(kernels) - np.log2(reference)).max() < tolerance
    assert np.allclose(kernels.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("engine", KERNEL_ENGINES)
def test_shipped_model_kernels_agree_with_pytorch_on_text(engine: str) -> None:
    from predictors.transformer import load_pretrained

    predictor = load_pretrained("200k", engine=engine)
    text = (b"<page>\n    <title>Anarchism</title>\n    <id>12</id>\n    <revision>\n"
            b"      <text xml:space=\"preserve\">'''Anarchism''' is a political philosophy")
    kernels = predictor.sequence_distributions(text)
    reference = torch_distributions(predictor.model, text)
    symbols = np.frombuffer(text, np.uint8)
    kernel_bits = -np.log2(kernels[np.arange(len(text)), symbols]).sum()
    reference_bits = -np.log2(reference[np.arange(len(text)), symbols]).sum()
    assert abs(kernel_bits - reference_bits) < 1e-4 * reference_bits
    assert kernel_bits / len(text) < 3.5


PREDICTORS = {(config, engine): TransformerPredictor(random_model(config, seed=1),
                                                     engine=engine)
              for config in (TINY, ODD) for engine in KERNEL_ENGINES}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scoring_a_whole_sequence_equals_stepping_it_in_any_batch(data: st.DataObject) -> None:
    """The encoder's one-call scoring and the decoder's steps, in a batch of any size with
    other sequences of any length: identical bits."""
    config, engine = data.draw(st.sampled_from(sorted(PREDICTORS, key=str)))
    predictor = PREDICTORS[config, engine]
    lengths = data.draw(st.lists(st.integers(1, config.context_length), min_size=1,
                                 max_size=4))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, 256, length, dtype=np.uint8).tobytes() for length in lengths]
    row = data.draw(st.integers(0, len(sequences) - 1))
    whole = predictor.sequence_distributions(sequences[row])
    assert np.array_equal(whole, stepped_distributions(predictor, sequences, row))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_priming_in_pieces_equals_stepping(data: st.DataObject) -> None:
    """`prime` feeds each sequence's context in one kernel call from wherever its cache
    stands (pieces that start and end anywhere in a 64-key block): the distributions after
    it, and after a step that follows, are the steps' bits."""
    config, engine = data.draw(st.sampled_from(sorted(PREDICTORS, key=str)))
    predictor = PREDICTORS[config, engine]
    cuts = sorted(data.draw(st.lists(st.integers(1, config.context_length - 2),
                                     min_size=1, max_size=3, unique=True)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    context = rng.integers(0, 256, (2, cuts[-1]), dtype=np.uint8)
    primed, _ = predictor.start(2)
    for low, high in zip([0, *cuts[:-1]], cuts, strict=True):
        after_prime = predictor.prime(primed, context[:, low:high])
    stepped, _ = predictor.start(2)
    for column in range(context.shape[1]):
        after_steps = predictor.step(stepped, context[:, column])
    assert np.array_equal(after_prime, after_steps)
    following = np.array([7, 200], dtype=np.uint8)
    assert np.array_equal(predictor.step(primed, following), predictor.step(stepped, following))


def test_products_round_every_operation_no_fused_multiply_add() -> None:
    """Each output is ((x0·m0 + x1·m1) + …) with every product and sum rounded to float32:
    what numpy computes one operation at a time. A compiler that fused a multiply and an add
    would round once less and differ on most of these random values. 6 × 70 outputs: a
    4-row tile, single rows, and columns past the last 64-column tile."""
    rng = np.random.default_rng(0)
    rows, depth, columns = 6, 13, 70
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    matrix = rng.standard_normal((depth, columns)).astype(np.float32)
    out = np.zeros((rows, columns), np.float32)
    transformer_kernels._matmul(x, matrix, out)
    expected = x[:, :1] * matrix[:1]
    for k in range(1, depth):
        expected = expected + x[:, k:k + 1] * matrix[k:k + 1]
    assert expected.dtype == np.float32
    assert np.array_equal(out, expected)


def rounded_to_float32(value: Fraction) -> np.float32:
    """The float32 nearest `value` (ties to even), from the exact rational."""
    guess = np.float32(float(value))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess,
                  np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - value),
                                          int(c.view(np.uint32)) & 1))


@numba.njit
def fused_matmul(x, matrix, out, half_floats):
    transformer_kernels._matmul(x, matrix, out, holds_half_floats(half_floats))


def test_products_of_the_second_kernels_round_once_per_step() -> None:
    """kernels-f16: each output is fma(x_k, m_k, … fma(x1, m1, x0·m0)): one rounding per
    step, checked against exact rational arithmetic (and unlike rounding twice), on a
    4-row tile, single rows and columns past the last tile."""
    rng = np.random.default_rng(0)
    rows, depth, columns = 6, 13, 70
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    matrix = rng.standard_normal((depth, columns)).astype(np.float32)
    out = np.zeros((rows, columns), np.float32)
    fused_matmul(x, matrix, out, np.zeros(1, np.uint16))
    expected = np.empty_like(out)
    for r in range(rows):
        for j in range(columns):
            total = x[r, 0] * matrix[0, j]
            for k in range(1, depth):
                total = rounded_to_float32(Fraction(float(x[r, k])) * Fraction(float(matrix[k, j]))
                                           + Fraction(float(total)))
            expected[r, j] = total
    assert np.array_equal(out, expected)
    twice = np.zeros_like(out)
    transformer_kernels._matmul(x, matrix, twice)
    assert (twice != out).mean() > 0.3


@numba.njit
def products_in_every_tile(x, matrix, outs, cache_values):
    """x @ matrix by each tile of `_matmul`: 4 × 64, 2 × 32 and single rows."""
    fused = holds_half_floats(cache_values)
    for column in range(0, matrix.shape[1], transformer_kernels.TILE):
        for row in range(0, x.shape[0], 4):
            transformer_kernels._tile(x, matrix, outs[0], row, column, fused)
        for row in range(0, x.shape[0], 2):
            for half in range(0, transformer_kernels.TILE, 2 * LANES):
                transformer_kernels._pair_tile(x, matrix, outs[1], row, column + half, fused)
        for row in range(x.shape[0]):
            transformer_kernels._row_tile(x, matrix, outs[2], row, column, fused)


@numba.njit
def scores_in_every_shape(qkv, keys, outs, cache_values):
    """Four rows' attention scores by each way `_attend` computes them."""
    fused = holds_half_floats(cache_values)
    for block in range(0, keys.shape[1] - LANES, 4 * LANES):
        transformer_kernels._four_rows_scores(qkv, 0, 8, keys, block, outs[0], fused)
        for pair in range(0, 4, 2):
            for half in range(0, 4 * LANES, 2 * LANES):
                transformer_kernels._pair_scores(qkv, pair, 8, keys, block + half,
                                                 outs[1][pair:], fused)
        for r in range(4):
            transformer_kernels._row_scores(qkv, r, 8, keys, block, outs[2], r, fused)


@pytest.mark.parametrize("cache_values", [np.float32, np.uint16], ids=["kernels", "f16"])
def test_every_tile_shape_gives_the_same_bits(cache_values: type) -> None:
    """CPUs with 32 vector registers take the 4-row tiles, those with 16 the pairs, and
    the decoder single rows: a payload coded on one decodes on another only if all give
    the same bits, in both arithmetics."""
    rng = np.random.default_rng(4)
    marker = np.zeros(1, cache_values)
    x = rng.standard_normal((8, 48)).astype(np.float32)
    matrix = rng.standard_normal((48, 128)).astype(np.float32)
    outs = np.zeros((3, 8, 128), np.float32)
    products_in_every_tile(x, matrix, outs, marker)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    qkv = rng.standard_normal((4, 24)).astype(np.float32)
    keys = rng.standard_normal((8, 4 * 64 + LANES)).astype(np.float32)
    scores = np.zeros((3, 4, keys.shape[1]), np.float32)
    scores_in_every_shape(qkv, keys, scores, marker)
    assert np.array_equal(scores[0], scores[1]) and np.array_equal(scores[0], scores[2])
    assert np.abs(scores[0][:, :256]).min() > 0  # every score was written


@numba.njit
def scaled_weight_products(weights, values, out):
    for i in range(0, weights.shape[0], LANES):
        store(out, i, transformer_kernels._grid_product(load(weights, i), load(values, i)))


def test_attention_products_round_as_at_true_scale_where_they_are_subnormal() -> None:
    """Attention weights are carried 2^WEIGHT_SCALE larger; a weight · value that is
    subnormal at true scale must still round to the subnormal grid, as numpy's float32
    product does: the scaled products are exactly 2^WEIGHT_SCALE times numpy's."""
    rng = np.random.default_rng(1)
    size = 16 * 4096
    weights = np.float32(2.0) ** rng.uniform(-125, 0, size).astype(np.float32)
    weights[: size // 4] = np.float32(2.0**-125)  # the clamp, frequent in sharp heads
    values = (rng.standard_normal(size) * 10.0 ** rng.uniform(-8, 1, size)).astype(np.float32)
    values[:64] = [0.0, -0.0] * 32
    true_products = weights * values
    subnormal = (true_products != 0) & (np.abs(true_products) < np.finfo(np.float32).tiny)
    assert subnormal.mean() > 0.2  # the case this is about
    scale = np.float32(2.0**transformer_kernels.WEIGHT_SCALE)
    out = np.empty(size, np.float32)
    scaled_weight_products(weights * scale, values, out)
    assert np.array_equal(out, true_products.astype(np.float64) * scale)
    assert np.array_equal(np.signbit(out), np.signbit(true_products))  # zeros' signs too


def test_exp_kernel_is_accurate_and_total() -> None:
    x = np.concatenate([-np.geomspace(1e-8, 87.0, 20000), [0.0, -100.0, -1e30]]).astype(
        np.float32)
    x = np.concatenate([x, np.zeros(-len(x) % LANES, np.float32)])  # whole vectors
    out = np.zeros_like(x)
    transformer_kernels._exp_nonpositive(x, np.float32(0.0), out, len(x))
    normal = x > -86.0  # exp(-86) ≈ 2^-124: the smallest power the kernel builds
    relative = np.abs(out[normal] / np.exp(x[normal].astype(np.float64)) - 1)
    # The polynomial's error, plus float32 rounding of log2(e) and of x·log2(e).
    assert np.all(relative < 2e-7 + 8e-8 * np.abs(x[normal]))
    assert out[0] <= 1.0 and out[20000] == 1.0  # exp(0)
    assert np.all((out[~normal] > 0) & (out[~normal] < 1e-37))


def test_the_engine_is_part_of_the_fingerprint_and_recorded() -> None:
    model = random_model(TINY)
    fingerprints = {engine: TransformerPredictor(model, engine=engine).fingerprint
                    for engine in (*KERNEL_ENGINES, "torch")}
    assert len(set(fingerprints.values())) == 3
    assert TransformerPredictor(model).engine == "kernels-f16"  # auto, on the CPU
    assert get_compressor("transformer").params["engine"] == "kernels-f16"
    with pytest.raises(UsageError, match="engine"):
        TransformerPredictor(model, engine="fast")


def test_payloads_decode_with_the_engine_that_coded_them() -> None:
    data = np.random.default_rng(5).bytes(300) + b"the quick brown fox " * 20
    for engine in ("torch", *KERNEL_ENGINES):
        compressor = get_compressor("transformer", engine=engine, chunk_size=256,
                                    batch_size=2)
        container = pack(compressor, data)
        assert unpack(container) == data

    # Given the fingerprint a payload records, "auto" finds the engine that made it: torch
    # (before the kernels), the first kernels, or today's.
    for engine in ("torch", *KERNEL_ENGINES):
        old = get_compressor("transformer", engine=engine, chunk_size=256)
        payload = old.compress(data)
        restored = get_compressor("transformer", chunk_size=256,
                                  fingerprint=old.predictor.fingerprint)
        assert restored.predictor.engine == engine and restored.decompress(payload) == data
        for other in {"torch", *KERNEL_ENGINES} - {engine}:
            with pytest.raises(ModelMismatchError):
                get_compressor("transformer", engine=other, chunk_size=256).decompress(payload)


#: What payloads of the shipped 200K model record: any change here would leave every
#: payload of that engine undecodable.
SHIPPED_200K_FINGERPRINTS = {
    "kernels-f16": "2b8a518e3133fb2cdb90d3e0ece11ebb5a6f8c9afdb2e18ef0d67970180e8aaa",
    "kernels": "78564c50eba9461b2e8b1d4cb315a7043bb63f115d26227b7d89b23323ad1c9c",
    "torch": "192332cf2f0818e47b5772d12737bb77f91bbcda2799482428875bbf48859863",
}
DATA = Path(__file__).resolve().parent / "data"


def test_fingerprints_do_not_depend_on_how_the_weights_were_loaded() -> None:
    from predictors.transformer import load_pretrained

    for engine, fingerprint in SHIPPED_200K_FINGERPRINTS.items():
        assert load_pretrained("200k", engine=engine).fingerprint == fingerprint
    model = random_model(ODD)
    for engine in KERNEL_ENGINES:
        from_module = TransformerPredictor(model, engine=engine)
        from_arrays = TransformerPredictor(ModelTensors(ODD, state_arrays(model)),
                                           engine=engine)
        assert from_module.fingerprint == from_arrays.fingerprint


@pytest.mark.parametrize("engine, name", [("kernels", "transformer_kernels_v1.payload"),
                                          ("kernels-f16", "transformer_kernels_f16.payload")])
def test_payloads_of_each_kernels_as_first_written_still_decode(engine: str, name: str) -> None:
    """tests/data/transformer_kernels_*.payload: the last 2,348 bytes of our enwik8 sample
    (a whole chunk and a short one), coded by each kernels engine as first written (the
    first kernels as scalar loops, before 16-lane vectors): decoding needs today's kernels
    to give the same bits (tests/data/README.md)."""
    payload = (DATA / name).read_bytes()
    compressor = get_compressor("transformer", engine=engine)
    assert compressor.decompress(payload) == ENWIK8.read_bytes()[-2348:]


STARTUP_SCRIPT = """
import sys, numpy as np
from predictors.transformer import load_pretrained
predictor = load_pretrained("200k")
predictor.sequence_distributions(b"a warm start")
state, _ = predictor.start(1)
predictor.step(state, np.array([97], np.uint8))
print(predictor.kernels.form, "numba" in sys.modules, "torch" in sys.modules)
"""


def test_the_cpu_engine_starts_without_numba_torch_or_compiling() -> None:
    """After the first run (which builds the kernels ahead of time if nothing had yet),
    the CPU engine imports neither numba nor torch: it runs the built kernels and reads
    its checkpoint with safetensors."""
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT], capture_output=True,
                                text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.split() == ["aot", "False", "False"]
