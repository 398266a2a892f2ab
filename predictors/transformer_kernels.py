"""The Transformer's forward pass on the CPU, in a fixed order of float32 operations per
output, so that a whole sequence scored at once and the same sequence stepped byte by
byte give identical bits.

Why this exists. An arithmetic decoder needs, bit for bit, the probabilities the encoder
coded with. The encoder knows every byte and could score a chunk in one pass; the decoder
must feed one byte at a time. With PyTorch the two computations round differently (BLAS
and the attention kernel pick other blockings for one row than for 2048), so the torch
engine steps on both sides, the slow way (`TransformerModel.forward_step`). Here every output
element is a fixed sequence of IEEE float32 operations written out below: no BLAS, no
fast-math flags (so the compiler may not reassociate sums, and fuses a multiply and an add
only where `fma` says so), and our own `exp`. Vectors (`predictors.float32x16`) run across
independent outputs, never within one output's sum. So `extend_sequence` (the encoder: a
whole chunk in one call) and `step_batch` (the decoder: one byte per sequence per call)
agree exactly, for any batch, and on any CPU that numba compiles for, since sqrt,
division, fused multiply-adds and conversions to and from half floats are correctly
rounded everywhere.

Two versions of the arithmetic, one code. The first kernels (engine "kernels") keep float32
keys and values and round every product and every sum; the second ("kernels-f16", the
default) keep the values as IEEE half floats, a quarter less memory for the decoder to
read per step (half-float keys would cost the held-out rate 0.01 points; values cost
nothing measurable), and fuse each multiply and add into one rounding. The cache's value
type chooses: `holds_half_floats(cache.values)` is a constant numba compiles each kernel
for (`fused` below), so neither version pays for the other's branches.

The orders of operations (each output's; what payloads depend on):
- a product x @ W sums over x's entries in order, ((x0·w0 + x1·w1) + x2·w2) + …, each
  product and sum rounded (first version) or each step a fused multiply-add from the
  first product (second), in tiles that change no output's order (`_matmul`: 4 rows × 64
  columns on CPUs with 32 vector registers, 2 × 32 on those with 16);
- an attention score sums over the head's dimensions in the same way (`_row_scores`);
- attention over `count` keys pads them with zeros to a multiple of `BLOCK`; a sum over
  the padded keys adds the four quarters of the row key by key (second version: weight ·
  value of the quarters as a chain of fused multiply-adds), then folds the upper part
  onto the lower until one vector of 16 remains, then sums that as a tree of halves
  (`_attend`);
- exp(x) is 2^⌊t⌋ · p(t − ⌊t⌋) for t = x·log2(e) held at ≥ −125, p a fixed polynomial
  (Horner's rule, fused in the second version's attention weights).

Subnormal products. In sharp heads most attention weights are held at 2^-125, and a weight
times a value is then subnormal: exact, but a CPU takes a microcode assist of ~150 cycles
for each instruction that makes one. So the weighted sums run 2^WEIGHT_SCALE times larger,
where nothing is subnormal: a sum of scaled numbers is the scaled sum, bit for bit (a
subnormal sum is exact, a normal one rounds at the same relative place), and the quotient
by the scaled total is unchanged. Only a product that is subnormal at true scale rounds
differently (to the subnormal grid); rows where one can occur round those products to
that grid with a fused multiply-add (`_grid_product`), the one rounding the true product
had. The key/value cache keeps, per head, the smallest |value| so far, which tells the
blocks of keys that cannot have one (their weights times it are normal). (The second
version is defined at the scale, so it needs none of this.)

The parameters come from a checkpoint's tensors, and the cache and work arrays are
allocated beside them (`transformer_arrays`, without numba); the model itself stays the
PyTorch module that trains and runs on the GPU. A process runs these kernels as their
ahead-of-time build where it can (`transformer_native`). `tests/test_transformer_kernels.py`
checks these kernels against it (to float tolerance) and against themselves (exactly).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from predictors.float32x16 import (
    absolute,
    any_less,
    copysign,
    floor,
    fma,
    folded_sum,
    holds_half_floats,
    host_has_wide_registers,
    largest_lane,
    load,
    power_of_two,
    select_less,
    splat,
    store,
    stored_value,
)
from predictors.transformer_arrays import BLOCK, LANES, QUERY_BLOCK

#: Columns of one `_matmul` tile.
TILE = 4 * LANES
#: Whether the CPU has 32 vector registers of 512 bits (AVX-512), which hold a 4 × 64 tile
#: of sums; with 16 (AVX2) the kernels work in smaller tiles. Only the speed depends on it.
WIDE_REGISTERS = host_has_wide_registers()
#: 0, 1, …, 15: which key of a 16-key vector a lane holds.
LANE_INDICES = np.arange(LANES, dtype=np.float32)
LOG2_E = np.float32(1.4426950408889634)
#: 2^f on [0, 1) to a relative 8e-8, fitted at Chebyshev nodes; literals, so that every
#: machine uses the same constants.
EXP2_COEFFICIENTS = (np.float32(1.0), np.float32(0.6931469440460205),
                     np.float32(0.2402305006980896), np.float32(0.05548042804002762),
                     np.float32(0.009684580378234386), np.float32(0.0012387821916490793),
                     np.float32(0.00021877505059819669))
C0, C1, C2, C3, C4, C5, C6 = EXP2_COEFFICIENTS
SMALLEST_EXPONENT = np.float32(-125.0)
EXPONENT_BIAS = 127
#: Attention weights are computed 2^WEIGHT_SCALE times larger (module docstring).
WEIGHT_SCALE = 64
#: The smallest normal float32, 2^-126, at the weights' scale.
SCALED_SMALLEST_NORMAL = np.float32(2.0 ** (WEIGHT_SCALE - 126))
LAYER_NORM_EPSILON = np.float32(1e-5)
GELU_SCALE = np.float32(math.sqrt(2.0 / math.pi))
GELU_CUBIC = np.float32(0.044715)
HALF = np.float32(0.5)
ONE = np.float32(1.0)
NEGATIVE_ZERO = np.float32(-0.0)

_kernel = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")


# --- elementwise pieces ------------------------------------------------------------------


@_kernel
def _exp(x, shift, bias, fused=False):
    """2^(bias − 127) · exp(x − shift) for x ≤ shift, sixteen lanes: 2^t as 2^⌊t⌋ ·
    2^(t−⌊t⌋), the power of two from its exponent bits, the fraction from a polynomial
    (Horner's rule, its steps fused multiply-adds where `fused`). Relative error 2e-7 +
    8e-8·|x − shift| (the last term: float32 rounding of t); below −86 the result is held
    at 2^-125 (times the scale) instead of going subnormal."""
    t = max((x - shift) * LOG2_E, SMALLEST_EXPONENT)
    whole = floor(t)
    f = t - whole
    if fused:
        fraction = fma(f, splat(C6), splat(C5))
        for coefficient in (C4, C3, C2, C1, C0):
            fraction = fma(f, fraction, splat(coefficient))
    else:
        fraction = C0 + f * (C1 + f * (C2 + f * (C3 + f * (C4 + f * (C5 + f * C6)))))
    return fraction * power_of_two(whole, bias)


@_kernel
def _exp_nonpositive(x, shift, out, count):
    """out[:count] = exp(x[:count] − shift), for count a multiple of LANES."""
    for j in range(0, count, LANES):
        store(out, j, _exp(load(x, j), shift, EXPONENT_BIAS))


@_kernel
def _add_layer_norm(h, update, scale, shift):
    """h[r] ← LayerNorm(h[r] + update[r]) for every row: the post-norm residual."""
    rows, size = h.shape
    for r in range(rows):
        total = np.float32(0.0)
        for c in range(size):
            h[r, c] = h[r, c] + update[r, c]
            total = total + h[r, c]
        mean = total / np.float32(size)
        squares = np.float32(0.0)
        for c in range(size):
            h[r, c] = h[r, c] - mean
            squares = squares + h[r, c] * h[r, c]
        inverse_std = ONE / np.sqrt(squares / np.float32(size) + LAYER_NORM_EPSILON)
        for c in range(size):
            h[r, c] = h[r, c] * inverse_std * scale[c] + shift[c]


@_kernel
def _gelu_lanes(x):
    """GELU(x), tanh form; tanh(u) = sign(u) · (1 − e) / (1 + e) with e = exp(−2|u|)."""
    argument = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
    exps = _exp(np.float32(-2.0) * absolute(argument), np.float32(0.0), EXPONENT_BIAS)
    tanh = (ONE - exps) / (ONE + exps)
    tanh = select_less(argument, splat(np.float32(0.0)), NEGATIVE_ZERO - tanh, tanh)
    return HALF * x * (ONE + tanh)


@_kernel
def _add_bias_gelu(x, bias):
    """x[r] ← GELU(x[r] + bias) for every row."""
    rows, size = x.shape
    whole = size - size % LANES
    for r in range(rows):
        base = r * size
        for c in range(0, whole, LANES):
            store(x, base + c, _gelu_lanes(load(x, base + c) + load(bias, c)))
        if whole < size:  # the last columns, as one vector of a padded copy
            tail = np.zeros(LANES, np.float32)
            for c in range(whole, size):
                tail[c - whole] = x[r, c] + bias[c]
            tail_out = np.empty(LANES, np.float32)
            store(tail_out, 0, _gelu_lanes(load(tail, 0)))
            for c in range(whole, size):
                x[r, c] = tail_out[c - whole]


@_kernel
def _add_bias(x, bias):
    rows, size = x.shape
    for r in range(rows):
        for c in range(size):
            x[r, c] = x[r, c] + bias[c]


# --- products --------------------------------------------------------------------------


@_kernel
def _store_row(out, offset, v0, v1, v2, v3):
    store(out, offset, v0)
    store(out, offset + LANES, v1)
    store(out, offset + 2 * LANES, v2)
    store(out, offset + 3 * LANES, v3)


@_kernel
def _tile(x, matrix, out, row, column, fused):
    """out[row:row+4, column:column+64] = x[row:row+4] @ matrix[:, column:column+64]."""
    depth, columns = matrix.shape
    a = x[row, 0]
    b = x[row + 1, 0]
    c = x[row + 2, 0]
    d = x[row + 3, 0]
    w0 = load(matrix, column)
    w1 = load(matrix, column + LANES)
    w2 = load(matrix, column + 2 * LANES)
    w3 = load(matrix, column + 3 * LANES)
    a0, a1, a2, a3 = a * w0, a * w1, a * w2, a * w3
    b0, b1, b2, b3 = b * w0, b * w1, b * w2, b * w3
    c0, c1, c2, c3 = c * w0, c * w1, c * w2, c * w3
    d0, d1, d2, d3 = d * w0, d * w1, d * w2, d * w3
    for k in range(1, depth):
        offset = k * columns + column
        w0 = load(matrix, offset)
        w1 = load(matrix, offset + LANES)
        w2 = load(matrix, offset + 2 * LANES)
        w3 = load(matrix, offset + 3 * LANES)
        a = x[row, k]
        a0, a1 = _add_product(a0, a, w0, fused), _add_product(a1, a, w1, fused)
        a2, a3 = _add_product(a2, a, w2, fused), _add_product(a3, a, w3, fused)
        b = x[row + 1, k]
        b0, b1 = _add_product(b0, b, w0, fused), _add_product(b1, b, w1, fused)
        b2, b3 = _add_product(b2, b, w2, fused), _add_product(b3, b, w3, fused)
        c = x[row + 2, k]
        c0, c1 = _add_product(c0, c, w0, fused), _add_product(c1, c, w1, fused)
        c2, c3 = _add_product(c2, c, w2, fused), _add_product(c3, c, w3, fused)
        d = x[row + 3, k]
        d0, d1 = _add_product(d0, d, w0, fused), _add_product(d1, d, w1, fused)
        d2, d3 = _add_product(d2, d, w2, fused), _add_product(d3, d, w3, fused)
    offset = row * columns + column
    _store_row(out, offset, a0, a1, a2, a3)
    _store_row(out, offset + columns, b0, b1, b2, b3)
    _store_row(out, offset + 2 * columns, c0, c1, c2, c3)
    _store_row(out, offset + 3 * columns, d0, d1, d2, d3)


@_kernel
def _row_tile(x, matrix, out, row, column, fused):
    """out[row, column:column+64] = x[row] @ matrix[:, column:column+64]."""
    depth, columns = matrix.shape
    a = x[row, 0]
    a0 = a * load(matrix, column)
    a1 = a * load(matrix, column + LANES)
    a2 = a * load(matrix, column + 2 * LANES)
    a3 = a * load(matrix, column + 3 * LANES)
    for k in range(1, depth):
        offset = k * columns + column
        a = x[row, k]
        a0 = _add_product(a0, a, load(matrix, offset), fused)
        a1 = _add_product(a1, a, load(matrix, offset + LANES), fused)
        a2 = _add_product(a2, a, load(matrix, offset + 2 * LANES), fused)
        a3 = _add_product(a3, a, load(matrix, offset + 3 * LANES), fused)
    _store_row(out, row * columns + column, a0, a1, a2, a3)


@_kernel
def _pair_tile(x, matrix, out, row, column, fused):
    """out[row:row+2, column:column+32] = x[row:row+2] @ matrix[:, column:column+32]: the
    tile for CPUs with 16 vector registers (a 4 × 64 tile's sixteen sums would not fit)."""
    depth, columns = matrix.shape
    a, b = x[row, 0], x[row + 1, 0]
    w0, w1 = load(matrix, column), load(matrix, column + LANES)
    a0, a1, b0, b1 = a * w0, a * w1, b * w0, b * w1
    for k in range(1, depth):
        offset = k * columns + column
        w0, w1 = load(matrix, offset), load(matrix, offset + LANES)
        a, b = x[row, k], x[row + 1, k]
        a0, a1 = _add_product(a0, a, w0, fused), _add_product(a1, a, w1, fused)
        b0, b1 = _add_product(b0, b, w0, fused), _add_product(b1, b, w1, fused)
    offset = row * columns + column
    store(out, offset, a0)
    store(out, offset + LANES, a1)
    store(out, offset + columns, b0)
    store(out, offset + columns + LANES, b1)


@_kernel
def _matmul(x, matrix, out, fused=False):
    """out = x @ matrix, every output summed over k in order from its first product,
    ((x[r,0]·m[0,j] + x[r,1]·m[1,j]) + x[r,2]·m[2,j]) + …, each step rounded once where
    `fused`, else twice; in tiles of 4 rows × 64 columns (2 × 32 where the CPU has 16
    vector registers), the columns past the last whole tile one at a time, in the same
    order."""
    rows, depth = x.shape
    columns = matrix.shape[1]
    tiled_rows, tiled_columns = rows - rows % 4, columns - columns % TILE
    for column in range(0, tiled_columns, TILE):
        if WIDE_REGISTERS:
            for row in range(0, tiled_rows, 4):
                _tile(x, matrix, out, row, column, fused)
        else:
            for row in range(0, tiled_rows, 2):
                _pair_tile(x, matrix, out, row, column, fused)
                _pair_tile(x, matrix, out, row, column + 2 * LANES, fused)
        for row in range(tiled_rows, rows):
            _row_tile(x, matrix, out, row, column, fused)
    for row in range(rows):
        for j in range(tiled_columns, columns):
            total = x[row, 0] * matrix[0, j]
            for k in range(1, depth):
                if fused:
                    total = fma(x[row, k], matrix[k, j], total)
                else:
                    total = total + x[row, k] * matrix[k, j]
            out[row, j] = total


# --- attention --------------------------------------------------------------------------


@_kernel
def _grid_product(weight, value):
    """weight · value for a weight 2^WEIGHT_SCALE times too large, rounded as the true
    product rounds: where that is subnormal, to the multiples of 2^-149 (scaled). Adding
    ±2^-126 (scaled) in a fused multiply-add puts the product's last kept bit at 2^-149, so
    its one rounding is the true product's; subtracting it back is exact. copysign keeps
    the sign of a product that rounds to zero."""
    product = weight * value
    anchor = copysign(splat(SCALED_SMALLEST_NORMAL), value)
    on_grid = copysign(fma(weight, value, anchor) - anchor, product)
    return select_less(absolute(product), splat(SCALED_SMALLEST_NORMAL), on_grid, product)


@_kernel
def _weighted(weight, value, exact, masked):
    """weight · value as at true scale (`exact`: known not to be subnormal there), and,
    where `masked`, +0 for a key past the row (weight 0), as a fresh cache's zeros give."""
    product = weight * value if exact else _grid_product(weight, value)
    if masked:
        zero = splat(np.float32(0.0))
        product = select_less(zero, weight, product, zero)
    return product


@_kernel
def _fold_rows(folds, rows, units, sums):
    """sums.flat[r] = the fold of row r of folds (rows × stride, flat) over its first
    units·LANES: the upper units onto the lower until one remains (`units` → ⌈units/2⌉ →
    …), then its lanes as `folded_sum`. Every row at once, level by level."""
    stride = folds.shape[-1]
    length = units
    while length > 1:
        half = (length + 1) // 2
        for u in range(length - half):
            for r in range(rows):
                lower = r * stride + u * LANES
                store(folds, lower, load(folds, lower) + load(folds, lower + half * LANES))
        length = half
    for r in range(rows):
        sums.flat[r] = folded_sum(load(folds, r * stride))


@_kernel
def _block_weights(scores, r, j, count, largest, quarter, fused):
    """The (scaled) weights of keys j, j + quarter, j + 2·quarter, j + 3·quarter … + 16 of
    row r, zero from key `count` on (the keys past the row, read as a fresh cache's zeros)."""
    row = r * scores.shape[1] + j
    bias = EXPONENT_BIAS + WEIGHT_SCALE
    e0 = _exp(load(scores, row), largest, bias, fused)
    e1 = _exp(load(scores, row + quarter), largest, bias, fused)
    e2 = _exp(load(scores, row + 2 * quarter), largest, bias, fused)
    e3 = _exp(load(scores, row + 3 * quarter), largest, bias, fused)
    if j + 3 * quarter + LANES > count:
        zero, lanes = splat(np.float32(0.0)), load(LANE_INDICES, 0)
        limit = splat(np.float32(count - j))
        e0 = select_less(lanes, limit, e0, zero)
        e1 = select_less(lanes + np.float32(quarter), limit, e1, zero)
        e2 = select_less(lanes + np.float32(2 * quarter), limit, e2, zero)
        e3 = select_less(lanes + np.float32(3 * quarter), limit, e3, zero)
    return e0, e1, e2, e3


@_kernel
def _add_product(total, a, b, fused):
    """total + a·b, a float32 and b a vector: rounded once (a fused multiply-add) where
    `fused`, else twice (the product, then the sum)."""
    if fused:
        return fma(splat(a), b, total)
    return total + a * b


@_kernel
def _row_scores(qkv, row, low, keys, block, scores, r, fused):
    """scores[r, block:block+64] = q · keys[:, block:block+64], q = qkv[row, low:low+hd],
    each summed over d in order."""
    head_dim, capacity = keys.shape
    q = qkv[row, low]
    s0, s1 = q * load(keys, block), q * load(keys, block + LANES)
    s2, s3 = q * load(keys, block + 2 * LANES), q * load(keys, block + 3 * LANES)
    for d in range(1, head_dim):
        q = qkv[row, low + d]
        k = d * capacity + block
        s0 = _add_product(s0, q, load(keys, k), fused)
        s1 = _add_product(s1, q, load(keys, k + LANES), fused)
        s2 = _add_product(s2, q, load(keys, k + 2 * LANES), fused)
        s3 = _add_product(s3, q, load(keys, k + 3 * LANES), fused)
    _store_row(scores, r * scores.shape[1] + block, s0, s1, s2, s3)


@_kernel
def _four_rows_scores(qkv, first, low, keys, block, scores, fused):
    """`_row_scores` of rows first … first + 3, each vector of keys loaded once for all
    four (the same operations per score)."""
    head_dim, capacity = keys.shape
    k0, k1 = load(keys, block), load(keys, block + LANES)
    k2, k3 = load(keys, block + 2 * LANES), load(keys, block + 3 * LANES)
    q = qkv[first, low]
    a0, a1, a2, a3 = q * k0, q * k1, q * k2, q * k3
    q = qkv[first + 1, low]
    b0, b1, b2, b3 = q * k0, q * k1, q * k2, q * k3
    q = qkv[first + 2, low]
    c0, c1, c2, c3 = q * k0, q * k1, q * k2, q * k3
    q = qkv[first + 3, low]
    d0, d1, d2, d3 = q * k0, q * k1, q * k2, q * k3
    for d in range(1, head_dim):
        k = d * capacity + block
        k0, k1 = load(keys, k), load(keys, k + LANES)
        k2, k3 = load(keys, k + 2 * LANES), load(keys, k + 3 * LANES)
        q = qkv[first, low + d]
        a0, a1 = _add_product(a0, q, k0, fused), _add_product(a1, q, k1, fused)
        a2, a3 = _add_product(a2, q, k2, fused), _add_product(a3, q, k3, fused)
        q = qkv[first + 1, low + d]
        b0, b1 = _add_product(b0, q, k0, fused), _add_product(b1, q, k1, fused)
        b2, b3 = _add_product(b2, q, k2, fused), _add_product(b3, q, k3, fused)
        q = qkv[first + 2, low + d]
        c0, c1 = _add_product(c0, q, k0, fused), _add_product(c1, q, k1, fused)
        c2, c3 = _add_product(c2, q, k2, fused), _add_product(c3, q, k3, fused)
        q = qkv[first + 3, low + d]
        d0, d1 = _add_product(d0, q, k0, fused), _add_product(d1, q, k1, fused)
        d2, d3 = _add_product(d2, q, k2, fused), _add_product(d3, q, k3, fused)
    stride = scores.shape[1]
    _store_row(scores, block, a0, a1, a2, a3)
    _store_row(scores, stride + block, b0, b1, b2, b3)
    _store_row(scores, 2 * stride + block, c0, c1, c2, c3)
    _store_row(scores, 3 * stride + block, d0, d1, d2, d3)


@_kernel
def _pair_scores(qkv, first, low, keys, block, scores, fused):
    """`_row_scores` of rows first and first + 1 over keys block … block + 31, each vector
    of keys loaded once for both: `_four_rows_scores` for CPUs with 16 vector registers."""
    head_dim, capacity = keys.shape
    k0, k1 = load(keys, block), load(keys, block + LANES)
    q, p = qkv[first, low], qkv[first + 1, low]
    a0, a1, b0, b1 = q * k0, q * k1, p * k0, p * k1
    for d in range(1, head_dim):
        k = d * capacity + block
        k0, k1 = load(keys, k), load(keys, k + LANES)
        q, p = qkv[first, low + d], qkv[first + 1, low + d]
        a0, a1 = _add_product(a0, q, k0, fused), _add_product(a1, q, k1, fused)
        b0, b1 = _add_product(b0, p, k0, fused), _add_product(b1, p, k1, fused)
    stride = scores.shape[1]
    store(scores, block, a0)
    store(scores, block + LANES, a1)
    store(scores, stride + block, b0)
    store(scores, stride + block + LANES, b1)


@_kernel
def _attend(qkv, first, queries, low, keys, values, first_count, value_floor, scratch,
            attended, fused):
    """attended[first + r, low:low+hd] = softmax(q · keys[:, :count]) @ values[:, :count]ᵀ
    for one head, q = qkv[first + r, low:low+hd] and count = first_count + r, for each of
    `queries` rows whose counts round up to the same multiple of BLOCK. keys and values are
    (head_dim, capacity), written up to the last count; every row is processed up to its
    count rounded up to BLOCK, as zeros that add nothing (so the keys past a row's count
    are read as zeros, whatever the cache holds there). The rows share each pass over the
    keys and values, which then come from the CPU's nearest cache for all but the first."""
    head_dim, capacity = keys.shape  # capacity: the row stride
    padded = (first_count + BLOCK - 1) // BLOCK * BLOCK
    scores, folds, sums, largest = scratch.scores, scratch.folds, scratch.sums, scratch.largest
    scores_stride = scores.shape[1]
    lanes = load(LANE_INDICES, 0)
    # The scores, a block of keys at a time for every row, and each row's largest over its
    # keys before its count (lane by lane, in `largest`).
    for r in range(queries):
        store(largest, r * LANES, splat(np.float32(-np.inf)))
    for block in range(0, padded, BLOCK):
        if queries == 4 and WIDE_REGISTERS:  # four rows' scores from one load of the keys
            _four_rows_scores(qkv, first, low, keys, block, scores, fused)
        elif queries == 4:  # two rows at a time from one load
            for pair in range(0, 4, 2):
                for half_block in range(0, BLOCK, 2 * LANES):
                    _pair_scores(qkv, first + pair, low, keys, block + half_block,
                                 scores[pair:], fused)
        else:
            for r in range(queries):
                _row_scores(qkv, first + r, low, keys, block, scores, r, fused)
        for r in range(queries):
            row = r * scores_stride + block
            s0, s1 = load(scores, row), load(scores, row + LANES)
            s2, s3 = load(scores, row + 2 * LANES), load(scores, row + 3 * LANES)
            top = load(largest, r * LANES)
            count = first_count + r
            if block + BLOCK > count:  # keys past the count do not count
                limit = splat(np.float32(count - block))
                s0 = select_less(lanes, limit, s0, top)
                s1 = select_less(lanes + np.float32(LANES), limit, s1, top)
                s2 = select_less(lanes + np.float32(2 * LANES), limit, s2, top)
                s3 = select_less(lanes + np.float32(3 * LANES), limit, s3, top)
            store(largest, r * LANES, max(top, max(max(s0, s1), max(s2, s3))))
    for r in range(queries):
        largest[r] = largest_lane(load(largest, r * LANES))  # (lane r: row r's largest)
    # The weights, and the quarters added key by key: the total weight in row 0 of a
    # query's folds, the weighted sum of value component d in row d + 1.
    quarter = padded // 4
    units = quarter // LANES
    fold_stride = folds.shape[2]
    # No weight · value is subnormal at true scale where weight · (smallest |value|) is
    # at least 2^-126 (scaled), with room for that product's rounding.
    safe = splat(np.float32(2.0 ** (WEIGHT_SCALE - 125)))
    floor_value = splat(value_floor)
    weights, exact_rows = scratch.unit_weights, scratch.exact_rows
    # The first fold, unit u + half onto unit u, as the upper units come: the folds then
    # take half the room (and stay in the CPU's nearest cache).
    half = (units + 1) // 2
    for u in range(units):
        i = u * LANES
        masked = i + 3 * quarter + LANES > first_count
        lower = (u - half) * LANES if u >= half else -1
        # Every row's weights first: independent exps that the CPU overlaps.
        for r in range(queries):
            e0, e1, e2, e3 = _block_weights(scores, r, i, first_count + r, largest[r],
                                            quarter, fused)
            if not fused:
                least = min(min(e0, e1), min(e2, e3))
                exact_rows[r] = not any_less(least * floor_value, safe)
            total = (e0 + e1) + (e2 + e3)
            out = r * (head_dim + 1) * fold_stride
            if lower < 0:
                store(folds, out + i, total)
            else:
                store(folds, out + lower, load(folds, out + lower) + total)
            w = 4 * LANES * r
            store(weights, w, e0)
            store(weights, w + LANES, e1)
            store(weights, w + 2 * LANES, e2)
            store(weights, w + 3 * LANES, e3)
        # Then value component by component, each vector of values loaded once for all
        # the rows (the same operations per output).
        for d in range(head_dim):
            v = d * capacity + i
            v0, v1 = load(values, v), load(values, v + quarter)
            v2, v3 = load(values, v + 2 * quarter), load(values, v + 3 * quarter)
            for r in range(queries):
                w = 4 * LANES * r
                e0, e1 = load(weights, w), load(weights, w + LANES)
                e2, e3 = load(weights, w + 2 * LANES), load(weights, w + 3 * LANES)
                if fused:
                    if masked:  # the keys past the row: +0 for any value the cache holds
                        zero = splat(np.float32(0.0))
                        u0, u1 = select_less(zero, e0, v0, zero), select_less(zero, e1, v1, zero)
                        u2, u3 = select_less(zero, e2, v2, zero), select_less(zero, e3, v3, zero)
                        folded = fma(e3, u3, fma(e2, u2, fma(e1, u1, e0 * u0)))
                    else:
                        folded = fma(e3, v3, fma(e2, v2, fma(e1, v1, e0 * v0)))
                elif exact_rows[r] and not masked:
                    folded = (e0 * v0 + e1 * v1) + (e2 * v2 + e3 * v3)
                else:
                    exact = exact_rows[r]
                    folded = ((_weighted(e0, v0, exact, masked)
                               + _weighted(e1, v1, exact, masked))
                              + (_weighted(e2, v2, exact, masked)
                                 + _weighted(e3, v3, exact, masked)))
                at = r * (head_dim + 1) * fold_stride + (d + 1) * fold_stride + (
                    i if lower < 0 else lower)
                store(folds, at, folded if lower < 0 else load(folds, at) + folded)
    _fold_rows(folds, queries * (head_dim + 1), half, sums)
    for r in range(queries):
        for d in range(head_dim):
            attended[first + r, low + d] = sums[r, d + 1] / sums[r, 0]


@_kernel
def _store_key_value(qkv, cache, sequence, layer, head, position):
    """Write one position's key and value for one head into the cache (and the head's
    smallest |value|)."""
    head_dim = cache.keys.shape[3]
    dim = qkv.shape[0] // 3
    low = head * head_dim
    floor_value = cache.value_floors[sequence, layer, head] if position > 0 else np.inf
    for d in range(head_dim):
        cache.keys[sequence, layer, head, d, position] = qkv[dim + low + d]  # float32
        value = qkv[2 * dim + low + d]
        cache.values[sequence, layer, head, d, position] = stored_value(cache.values, value)
        floor_value = min(floor_value, abs(value))
    cache.value_floors[sequence, layer, head] = floor_value


# --- the model -----------------------------------------------------------------------------


@_kernel
def _embed(weights, tokens, positions, h):
    for r in range(h.shape[0]):
        for c in range(h.shape[1]):
            h[r, c] = weights.embedding[tokens[r], c] + weights.positions[positions[r], c]


@_kernel
def _project_qkv(weights, layer, h, qkv, fused):
    """qkv = h @ W_qkv, the queries scaled by 1/√head_dim."""
    _matmul(h, weights.qkv[layer], qkv, fused)
    dim = h.shape[1]
    for r in range(h.shape[0]):
        for c in range(dim):
            qkv[r, c] = qkv[r, c] * weights.attention_scale


@_kernel
def _finish_layer(weights, layer, h, scratch, fused):
    """h ← LN(h + attended @ W_out), then h ← LN(h + FFN(h)): the rest of a layer."""
    projected, hidden = scratch.projected, scratch.hidden
    _matmul(scratch.attended, weights.attention_out[layer], projected, fused)
    _add_layer_norm(h, projected, weights.norm1_scale[layer], weights.norm1_shift[layer])
    _matmul(h, weights.ff_in[layer], hidden, fused)
    _add_bias_gelu(hidden, weights.ff_in_bias[layer])
    _matmul(hidden, weights.ff_out[layer], projected, fused)
    _add_bias(projected, weights.ff_out_bias[layer])
    _add_layer_norm(h, projected, weights.norm2_scale[layer], weights.norm2_shift[layer])


@_kernel
def _predict(head, head_bias, h, logits, exps, out, fused=False):
    """out[r] (float64, 256) = softmax(h[r] @ head + head_bias), the sum taken in float64."""
    _matmul(h, head, logits, fused)
    _add_bias(logits, head_bias)
    for r in range(h.shape[0]):
        row = logits[r]
        largest = load(row, 0)
        for c in range(LANES, 256, LANES):
            largest = max(largest, load(row, c))
        _exp_nonpositive(row, largest_lane(largest), exps, 256)
        total = 0.0
        for c in range(256):
            total = total + np.float64(exps[c])
        for c in range(256):
            out[r, c] = np.float64(exps[c]) / total


@_kernel
def step_batch(weights, cache, tokens, position, out):
    """Feed tokens[b] at `position` of every sequence b of the batch (its part of
    `cache`); out[b] (float64, 256) receives the next-byte distribution."""
    batch, dim = tokens.shape[0], weights.qkv.shape[1]
    scratch = cache.scratch
    head_dim = dim // weights.num_heads
    fused = holds_half_floats(cache.values)
    h = scratch.states
    _embed(weights, tokens, np.full(batch, position), h)
    for layer in range(weights.qkv.shape[0]):
        _project_qkv(weights, layer, h, scratch.qkv, fused)
        for b in range(batch):
            for head in range(weights.num_heads):
                _store_key_value(scratch.qkv[b], cache, b, layer, head, position)
                _attend(scratch.qkv, b, 1, head * head_dim, cache.keys[b, layer, head],
                        cache.values[b, layer, head], position + 1,
                        cache.value_floors[b, layer, head], scratch, scratch.attended, fused)
        _finish_layer(weights, layer, h, scratch, fused)
    _predict(weights.head, weights.head_bias, h, scratch.logits, scratch.exps, out, fused)


@_kernel
def extend_sequence_hidden(weights, cache, sequence, inputs, start, scratch):
    """Feed inputs[0 … n−1] at positions start … start+n−1 of sequence `sequence` of
    `cache`: scratch.states (n, dim) receives the last layer's output after each, what
    `step_batch` gives stepping them one by one, in one call (`scratch`: from
    `allocate_scratch(weights, n)`).

    The same per-position computations in another loop order: layer by layer, every
    position's products at once, and within a layer head by head over the positions, up
    to QUERY_BLOCK at a time (rows whose counts share a BLOCK), so one head's keys and
    values stay in the CPU's cache."""
    length, dim = inputs.shape[0], weights.qkv.shape[1]
    layers, num_heads = weights.qkv.shape[0], weights.num_heads
    head_dim = dim // num_heads
    fused = holds_half_floats(cache.values)
    # Half-float values are widened once per head for all the rows (exactly, so the rows'
    # bits are those of reading the cache itself), where the rows are enough to repay it.
    widen = bool(fused) and scratch.widened.shape[1] > 0
    widened_end = min((start + length + BLOCK - 1) // BLOCK * BLOCK, scratch.widened.shape[1])
    h = scratch.states
    _embed(weights, inputs, np.arange(start, start + length), h)
    for layer in range(layers):
        _project_qkv(weights, layer, h, scratch.qkv, fused)
        for head in range(num_heads):
            for row in range(length):
                _store_key_value(scratch.qkv[row], cache, sequence, layer, head, start + row)
            keys = cache.keys[sequence, layer, head]
            values = cache.values[sequence, layer, head]
            floor_value = cache.value_floors[sequence, layer, head]
            if widen:
                _widen(values, scratch.widened, widened_end)
                _attend_rows(scratch, length, start, head * head_dim, keys, scratch.widened,
                             floor_value, fused)
            else:
                _attend_rows(scratch, length, start, head * head_dim, keys, values,
                             floor_value, fused)
        _finish_layer(weights, layer, h, scratch, fused)


@_kernel
def _widen(half_floats, out, end):
    """out[:, :end] = half_floats[:, :end] as float32 (end: a multiple of LANES)."""
    rows, stride = half_floats.shape
    for d in range(rows):
        for j in range(0, end, LANES):
            store(out, d * stride + j, load(half_floats, d * stride + j))


@_kernel
def _attend_rows(scratch, length, start, low, keys, values, value_floor, fused):
    """`_attend` of rows 0 … length − 1 at positions start … for one head, up to
    QUERY_BLOCK rows at a time (rows whose counts share a BLOCK)."""
    first = 0
    while first < length:
        count = start + first + 1
        block_end = (count + BLOCK - 1) // BLOCK * BLOCK
        queries = min(QUERY_BLOCK, length - first, block_end - count + 1)
        _attend(scratch.qkv, first, queries, low, keys, values, count, value_floor, scratch,
                scratch.attended, fused)
        first += queries


@_kernel
def extend_sequence(weights, cache, sequence, inputs, start, scratch, out):
    """`extend_sequence_hidden`; out[t] (float64, 256): the distribution after inputs[t],
    what `step_batch` gives stepping them one by one."""
    extend_sequence_hidden(weights, cache, sequence, inputs, start, scratch)
    _predict(weights.head, weights.head_bias, scratch.states, scratch.logits, scratch.exps,
             out, holds_half_floats(cache.values))


# --- an output layer that learns online ----------------------------------------------------


@_kernel
def _learn_head(head, head_bias, h, probabilities, symbol, rate):
    """One SGD step of the output layer on −ln p(symbol), p = `probabilities`, the
    softmax of h @ head + head_bias: the gradient of the logits is p − onehot(symbol)."""
    steps = np.empty(256, np.float32)
    for c in range(256):
        target = ONE if c == symbol else np.float32(0.0)
        steps[c] = rate * (np.float32(probabilities[c]) - target)
        head_bias[c] = head_bias[c] - steps[c]
    for d in range(h.shape[0]):
        for c in range(256):
            head[d, c] = head[d, c] - steps[c] * h[d]


@_kernel
def online_head(head, head_bias, hidden, symbols, rate, out):
    """out[r] (float64, 256) = softmax(hidden[r] @ head + head_bias), row by row; after
    each row whose symbols[r] ≥ 0, the head learns that symbol (`learn_head`), so that
    the next row sees it: what predicting one row and then learning its byte gives."""
    logits = np.zeros((1, 256), np.float32)
    exps = np.zeros(256, np.float32)
    for r in range(hidden.shape[0]):
        _predict(head, head_bias, hidden[r:r + 1], logits, exps, out[r:r + 1])
        if symbols[r] >= 0:
            _learn_head(head, head_bias, hidden[r], out[r], symbols[r], rate)


@_kernel
def learn_head(head, head_bias, h, probabilities, symbol, rate):
    """`_learn_head` (head and head_bias updated in place)."""
    _learn_head(head, head_bias, h, probabilities, symbol, rate)
