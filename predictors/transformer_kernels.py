"""The Transformer's forward pass on the CPU, one position at a time, in a fixed order of
float32 operations, so that a whole sequence scored at once and the same sequence stepped
byte by byte give identical bits.

Why this exists. An arithmetic decoder needs, bit for bit, the probabilities the encoder
coded with. The encoder knows every byte and could score a chunk in one pass; the decoder
must feed one byte at a time. With PyTorch the two computations round differently (BLAS
and the attention kernel pick other blockings for one row than for 2048), so the torch
engine steps on both sides, the slow way (`TransformerModel.forward_step`). Here every output
element is a fixed sequence of IEEE float32 operations written out below: no BLAS, no
fast-math flags (so the compiler may not reassociate sums or fuse a multiply and an add),
and our own `exp`. numba may vectorise across independent outputs, never within one
output's sum. So `score_sequence` (the encoder: a whole chunk in one call) and `step_batch`
(the decoder: one byte per sequence per call) agree exactly, for any batch, and on any CPU
that numba compiles for, since sqrt and division are correctly rounded everywhere.

Sums over the attended keys use a fixed folding order (`_fold_sum`) that vectorises; each
row is padded with zeros to a multiple of `BLOCK` keys, and both paths see the same zeros
because the key/value cache starts zeroed for every sequence and a position's key and
value are written just before it attends.

The parameters come from a `TransformerModel` (`pack_weights`); the model itself stays the
PyTorch module that trains and runs on the GPU. `tests/test_transformer_kernels.py` checks
these kernels against it (to float tolerance) and against themselves (exactly).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

LANES = 16
#: Attention rows are processed in whole blocks of this many keys (four folds of LANES).
BLOCK = 4 * LANES
LOG2_E = np.float32(1.4426950408889634)
#: 2^f on [0, 1) to a relative 8e-8, fitted at Chebyshev nodes; literals, so that every
#: machine uses the same constants.
EXP2_COEFFICIENTS = (np.float32(1.0), np.float32(0.6931469440460205),
                     np.float32(0.2402305006980896), np.float32(0.05548042804002762),
                     np.float32(0.009684580378234386), np.float32(0.0012387821916490793),
                     np.float32(0.00021877505059819669))
C0, C1, C2, C3, C4, C5, C6 = EXP2_COEFFICIENTS
SMALLEST_EXPONENT = np.float32(-125.0)
LAYER_NORM_EPSILON = np.float32(1e-5)
GELU_SCALE = np.float32(math.sqrt(2.0 / math.pi))
GELU_CUBIC = np.float32(0.044715)
HALF = np.float32(0.5)
ONE = np.float32(1.0)

_kernel = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")


class KernelWeights(NamedTuple):
    """A model's parameters as contiguous float32 arrays, laid out for `x @ W` products.
    Per-layer arrays are stacked on a leading layer axis."""

    embedding: np.ndarray      # (256, dim), already multiplied by √dim
    positions: np.ndarray      # (context, dim)
    qkv: np.ndarray            # (layers, dim, 3·dim): q, k, v; head h uses h·hd … (h+1)·hd
    attention_out: np.ndarray  # (layers, dim, dim)
    norm1_scale: np.ndarray    # (layers, dim)
    norm1_shift: np.ndarray
    ff_in: np.ndarray          # (layers, dim, hidden)
    ff_in_bias: np.ndarray     # (layers, hidden)
    ff_out: np.ndarray         # (layers, hidden, dim)
    ff_out_bias: np.ndarray    # (layers, dim)
    norm2_scale: np.ndarray
    norm2_shift: np.ndarray
    head: np.ndarray           # (dim, 256)
    head_bias: np.ndarray      # (256,)
    attention_scale: np.float32
    num_heads: int


def pack_weights(model) -> KernelWeights:  # model: predictors.transformer.TransformerModel
    """The parameters of a `TransformerModel`, in the layout these kernels read."""
    import torch

    def array(tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())

    def stacked(getter) -> np.ndarray:
        return np.ascontiguousarray(np.stack([array(getter(block)) for block in model.blocks]))

    config = model.config
    with torch.no_grad():
        embedding = model.embedding.weight.float() * model.embedding_scale
    return KernelWeights(
        embedding=array(embedding),
        positions=array(model.positions),
        qkv=stacked(lambda block: block.qkv.weight.T),
        attention_out=stacked(lambda block: block.attention_out.weight.T),
        norm1_scale=stacked(lambda block: block.attention_norm.weight),
        norm1_shift=stacked(lambda block: block.attention_norm.bias),
        ff_in=stacked(lambda block: block.ff_in.weight.T),
        ff_in_bias=stacked(lambda block: block.ff_in.bias),
        ff_out=stacked(lambda block: block.ff_out.weight.T),
        ff_out_bias=stacked(lambda block: block.ff_out.bias),
        norm2_scale=stacked(lambda block: block.ff_norm.weight),
        norm2_shift=stacked(lambda block: block.ff_norm.bias),
        head=array(model.head.weight.T),
        head_bias=array(model.head.bias),
        attention_scale=np.float32(config.head_dim**-0.5),
        num_heads=config.num_heads,
    )


def allocate_cache(weights: KernelWeights, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed key and value caches (batch, layers, heads, head_dim, context): keys and
    values are stored transposed, so one head's attention reads contiguous rows."""
    layers, dim = weights.qkv.shape[:2]
    capacity = -(-weights.positions.shape[0] // BLOCK) * BLOCK
    shape = (batch_size, layers, weights.num_heads, dim // weights.num_heads, capacity)
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


# --- elementwise pieces ------------------------------------------------------------------


@_kernel
def _exp_nonpositive(x, shift, out, exponent_bits, count):
    """out[:count] = exp(x[:count] − shift) for x ≤ shift: 2^t as 2^⌊t⌋ · 2^(t−⌊t⌋), the
    power of two from its exponent bits, the fraction from a polynomial. Relative error
    2e-7 + 8e-8·|x − shift| (the last term: float32 rounding of t); below −86 the result is
    held at about 2^-125 instead of going subnormal."""
    for j in range(count):
        t = max((x[j] - shift) * LOG2_E, SMALLEST_EXPONENT)
        whole = np.floor(t)
        f = t - whole
        out[j] = C0 + f * (C1 + f * (C2 + f * (C3 + f * (C4 + f * (C5 + f * C6)))))
        exponent_bits[j] = (np.int32(whole) + 127) << 23
    powers = exponent_bits.view(np.float32)
    for j in range(count):
        out[j] = out[j] * powers[j]


@_kernel
def _fold_sum(values, length):
    """Σ values[:length] (length a multiple of LANES) in a fixed order that vectorises:
    fold the upper part onto the lower until one value remains. Overwrites `values`."""
    while length > LANES:
        half = (length // LANES + 1) // 2 * LANES
        for i in range(length - half):
            values[i] = values[i] + values[i + half]
        length = half
    v = values  # the last LANES values, as a tree of the same shape as the folds above
    return ((((v[0] + v[8]) + (v[4] + v[12])) + ((v[2] + v[10]) + (v[6] + v[14])))
            + (((v[1] + v[9]) + (v[5] + v[13])) + ((v[3] + v[11]) + (v[7] + v[15]))))


@_kernel
def _fold_max(values, out, padded):
    """max(values[:padded]) (padded a multiple of BLOCK); exact, so the order of the folds
    cannot change the result. `out` is scratch."""
    quarter = padded // 4
    for i in range(quarter):
        a, b = values[i], values[i + quarter]
        c, d = values[i + 2 * quarter], values[i + 3 * quarter]
        a = a if a >= b else b
        c = c if c >= d else d
        out[i] = a if a >= c else c
    length = quarter
    while length > LANES:
        half = (length // LANES + 1) // 2 * LANES
        for i in range(length - half):
            a, b = out[i], out[i + half]
            out[i] = a if a >= b else b
        length = half
    largest = out[0]
    for i in range(1, LANES):
        largest = largest if largest >= out[i] else out[i]
    return largest


@_kernel
def _dot_folded(weights, values, out, padded):
    """Σ weights[j] · values[j] over j < padded (a multiple of BLOCK): the four quarters
    are multiplied and added in one pass, then folded; the same order every time."""
    quarter = padded // 4
    for i in range(quarter):
        out[i] = ((weights[i] * values[i] + weights[i + quarter] * values[i + quarter])
                  + (weights[i + 2 * quarter] * values[i + 2 * quarter]
                     + weights[i + 3 * quarter] * values[i + 3 * quarter]))
    return _fold_sum(out, quarter)


@_kernel
def _matvec(x, matrix, out, columns):
    """out[:columns] = x @ matrix[:, :columns], each output summed over x's entries in
    order, ((x0·m0 + x1·m1) + x2·m2) + …; eight rows per pass over `out` (the same order
    with an eighth of the loads and stores)."""
    rows = matrix.shape[0]
    if rows >= 8:
        x0, x1, x2, x3, x4, x5, x6, x7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
        for j in range(columns):
            out[j] = ((((((x0 * matrix[0, j] + x1 * matrix[1, j]) + x2 * matrix[2, j])
                         + x3 * matrix[3, j]) + x4 * matrix[4, j]) + x5 * matrix[5, j])
                      + x6 * matrix[6, j]) + x7 * matrix[7, j]
        k = 8
    else:
        for j in range(columns):
            out[j] = x[0] * matrix[0, j]
        k = 1
    while k + 8 <= rows:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        x4, x5, x6, x7 = x[k + 4], x[k + 5], x[k + 6], x[k + 7]
        for j in range(columns):
            out[j] = (((((((out[j] + x0 * matrix[k, j]) + x1 * matrix[k + 1, j])
                          + x2 * matrix[k + 2, j]) + x3 * matrix[k + 3, j])
                        + x4 * matrix[k + 4, j]) + x5 * matrix[k + 5, j])
                      + x6 * matrix[k + 6, j]) + x7 * matrix[k + 7, j]
        k += 8
    for row in range(k, rows):
        for j in range(columns):
            out[j] = out[j] + x[row] * matrix[row, j]


@_kernel
def _add_layer_norm(x, update, scale, shift, out):
    """out = LayerNorm(x + update), the post-norm residual of each sub-layer."""
    size = x.shape[0]
    total = np.float32(0.0)
    for c in range(size):
        out[c] = x[c] + update[c]
        total = total + out[c]
    mean = total / np.float32(size)
    squares = np.float32(0.0)
    for c in range(size):
        out[c] = out[c] - mean
        squares = squares + out[c] * out[c]
    inverse_std = ONE / np.sqrt(squares / np.float32(size) + LAYER_NORM_EPSILON)
    for c in range(size):
        out[c] = out[c] * inverse_std * scale[c] + shift[c]


@_kernel
def _gelu(x, arguments, negative_abs, exps, exponent_bits):
    """x ← GELU(x), tanh form; tanh(u) = sign(u) · (1 − e) / (1 + e) with e = exp(−2|u|)."""
    size = x.shape[0]
    for c in range(size):
        arguments[c] = GELU_SCALE * (x[c] + GELU_CUBIC * x[c] * x[c] * x[c])
        negative_abs[c] = np.float32(-2.0) * abs(arguments[c])
    _exp_nonpositive(negative_abs, np.float32(0.0), exps, exponent_bits, size)
    for c in range(size):
        tanh = (ONE - exps[c]) / (ONE + exps[c])
        if arguments[c] < np.float32(0.0):
            tanh = -tanh
        x[c] = HALF * x[c] * (ONE + tanh)


# --- attention and the model --------------------------------------------------------------


class _Scratch(NamedTuple):
    """Work arrays for one position, allocated once per call."""

    normed: np.ndarray         # (dim,)
    projected: np.ndarray      # (dim,)
    hidden: np.ndarray         # (hidden,)
    scores: np.ndarray         # (wide,) attention rows, and other elementwise work
    ones: np.ndarray
    exps: np.ndarray
    products: np.ndarray
    exponent_bits: np.ndarray  # int32
    logits: np.ndarray         # (256,)


@_kernel
def _allocate_scratch(dim, hidden, capacity):
    wide = max(capacity, hidden, 256)  # capacity: the cache's, a multiple of BLOCK
    return _Scratch(np.zeros(dim, np.float32), np.zeros(dim, np.float32),
                    np.zeros(hidden, np.float32), np.zeros(wide, np.float32),
                    np.ones(wide, np.float32), np.zeros(wide, np.float32),
                    np.zeros(wide, np.float32), np.zeros(wide, np.int32),
                    np.zeros(256, np.float32))


@_kernel
def _attend(query, keys, values, count, scratch, out):
    """out = softmax(query · keys[:, :count]) @ values[:, :count]ᵀ for one head. keys and
    values are (head_dim, capacity), zero past `count` (a fresh cache), and the rows are
    processed up to `count` rounded up to BLOCK, as zeros that add nothing."""
    padded = (count + BLOCK - 1) // BLOCK * BLOCK
    scores, exps, products = scratch.scores, scratch.exps, scratch.products
    _matvec(query, keys, scores, padded)
    for j in range(count, padded):
        scores[j] = scores[0]
    largest = _fold_max(scores, products, padded)
    _exp_nonpositive(scores, largest, exps, scratch.exponent_bits, count)
    for j in range(count, padded):
        exps[j] = np.float32(0.0)
    total = _dot_folded(exps, scratch.ones, products, padded)
    for d in range(keys.shape[0]):
        out[d] = _dot_folded(exps, values[d], products, padded) / total


@_kernel
def _embed(weights, token, position, h):
    for c in range(h.shape[0]):
        h[c] = weights.embedding[token, c] + weights.positions[position, c]


@_kernel
def _project_qkv(weights, layer, h, qkv):
    """qkv = h @ W_qkv, the queries scaled by 1/√head_dim."""
    dim = h.shape[0]
    _matvec(h, weights.qkv[layer], qkv, 3 * dim)
    for c in range(dim):
        qkv[c] = qkv[c] * weights.attention_scale


@_kernel
def _attend_head(qkv, keys, values, layer, head, position, scratch, attended):
    """Write this position's key and value for one head into the cache, then attend over
    positions 0 … position."""
    dim = attended.shape[0]
    head_dim = keys.shape[2]
    low = head * head_dim
    for d in range(head_dim):
        keys[layer, head, d, position] = qkv[dim + low + d]
        values[layer, head, d, position] = qkv[2 * dim + low + d]
    _attend(qkv[low:low + head_dim], keys[layer, head], values[layer, head], position + 1,
            scratch, attended[low:low + head_dim])


@_kernel
def _finish_layer(weights, layer, h, attended, scratch):
    """h ← LN(h + attended @ W_out), then h ← LN(h + FFN(h)): the rest of a layer."""
    dim = h.shape[0]
    projected, normed, hidden = scratch.projected, scratch.normed, scratch.hidden
    _matvec(attended, weights.attention_out[layer], projected, dim)
    _add_layer_norm(h, projected, weights.norm1_scale[layer], weights.norm1_shift[layer],
                    normed)
    h[:] = normed
    _matvec(h, weights.ff_in[layer], hidden, hidden.shape[0])
    for c in range(hidden.shape[0]):
        hidden[c] = hidden[c] + weights.ff_in_bias[layer, c]
    _gelu(hidden, scratch.products, scratch.scores, scratch.exps, scratch.exponent_bits)
    _matvec(hidden, weights.ff_out[layer], projected, dim)
    for c in range(dim):
        projected[c] = projected[c] + weights.ff_out_bias[layer, c]
    _add_layer_norm(h, projected, weights.norm2_scale[layer], weights.norm2_shift[layer],
                    normed)
    h[:] = normed


@_kernel
def _predict(weights, h, scratch, out):
    """out (float64, 256) = softmax(h @ W_head + b), the sum taken in float64."""
    logits, exps = scratch.logits, scratch.exps
    _matvec(h, weights.head, logits, 256)
    for c in range(256):
        logits[c] = logits[c] + weights.head_bias[c]
    largest = logits[0]
    for c in range(1, 256):
        largest = largest if largest >= logits[c] else logits[c]
    _exp_nonpositive(logits, largest, exps, scratch.exponent_bits, 256)
    total = 0.0
    for c in range(256):
        total = total + np.float64(exps[c])
    for c in range(256):
        out[c] = np.float64(exps[c]) / total


@_kernel
def step_batch(weights, keys, values, tokens, position, out):
    """Feed tokens[b] at `position` of every sequence b of the batch (its cache keys[b],
    values[b]); out[b] (float64, 256) receives the next-byte distribution."""
    dim = weights.qkv.shape[1]
    scratch = _allocate_scratch(dim, weights.ff_in.shape[2], keys.shape[-1])
    h, attended = np.empty(dim, np.float32), np.empty(dim, np.float32)
    qkv = np.empty(3 * dim, np.float32)
    for b in range(tokens.shape[0]):
        _embed(weights, tokens[b], position, h)
        for layer in range(weights.qkv.shape[0]):
            _project_qkv(weights, layer, h, qkv)
            for head in range(keys.shape[2]):
                _attend_head(qkv, keys[b], values[b], layer, head, position, scratch, attended)
            _finish_layer(weights, layer, h, attended, scratch)
        _predict(weights, h, scratch, out[b])


@_kernel
def score_sequence(weights, inputs, keys, values, out):
    """out[t] (float64, 256): the distribution after feeding inputs[0 … t] to a fresh
    sequence, what `step_batch` gives at positions 0 … len−1, in one call. `keys` and
    `values` are one sequence's cache (zeroed here).

    The same per-position functions in another loop order: layer by layer, and within a
    layer head by head over all positions, so one head's keys and values stay in the CPU's
    cache. A position's key and value are written just before it attends, so it sees the
    cache exactly as the stepping decoder does (zeros past itself)."""
    keys[:] = 0.0
    values[:] = 0.0
    length, dim = inputs.shape[0], weights.qkv.shape[1]
    scratch = _allocate_scratch(dim, weights.ff_in.shape[2], keys.shape[-1])
    h = np.empty((length, dim), np.float32)
    qkv = np.empty((length, 3 * dim), np.float32)
    attended = np.empty((length, dim), np.float32)
    for position in range(length):
        _embed(weights, inputs[position], position, h[position])
    for layer in range(weights.qkv.shape[0]):
        for position in range(length):
            _project_qkv(weights, layer, h[position], qkv[position])
        for head in range(keys.shape[1]):
            for position in range(length):
                _attend_head(qkv[position], keys, values, layer, head, position, scratch,
                             attended[position])
        for position in range(length):
            _finish_layer(weights, layer, h[position], attended[position], scratch)
    for position in range(length):
        _predict(weights, h[position], scratch, out[position])
