"""The arrays the Transformer's CPU kernels (`transformer_kernels`) work on: the packed
weights, the key/value cache and the work arrays, allocated here with numpy alone, so that
a process running an ahead-of-time build of the kernels (`transformer_native`) never
imports numba.

Every array the kernels read or write as vectors starts on a 64-byte cache line: a vector
load that spans two lines (numpy aligns to 16 bytes) is about twice as slow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from predictors.transformer_config import sinusoidal_positions

#: float32 lanes of one kernel vector (`predictors.float32x16` takes its width from here).
LANES = 16
#: Attention rows are processed in whole blocks of this many keys (four quarters of LANES).
BLOCK = 4 * LANES
#: Attention rows that share a pass over the keys (a divisor of BLOCK).
QUERY_BLOCK = 4
#: Bytes of one cache line.
CACHE_LINE = 64


def aligned_zeros(size: int, dtype: type = np.float32) -> np.ndarray:
    """A zeroed array of `size` elements of `dtype` that starts on a cache line."""
    per_line = CACHE_LINE // np.dtype(dtype).itemsize
    buffer = np.zeros(size + per_line, dtype)
    start = (-(buffer.ctypes.data // buffer.itemsize)) % per_line
    return buffer[start:start + size]


def _aligned(values: np.ndarray) -> np.ndarray:
    out = aligned_zeros(values.size).reshape(values.shape)
    out[...] = values
    return out


def _zeros(rows: int, columns: int) -> np.ndarray:
    return aligned_zeros(rows * columns).reshape((rows, columns))


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


def pack_weights(tensors: Mapping[str, np.ndarray], num_heads: int, context_length: int,
                 ) -> KernelWeights:
    """The kernels' layout of a `TransformerModel`'s state dict (float32 numpy arrays by
    parameter name, as a checkpoint stores them)."""

    def array(values: np.ndarray) -> np.ndarray:
        return _aligned(np.asarray(values, dtype=np.float32))

    layers = len({name.split(".")[1] for name in tensors if name.startswith("blocks.")})

    def stacked(parameter: str, transpose: bool = False) -> np.ndarray:
        arrays = [tensors[f"blocks.{layer}.{parameter}"] for layer in range(layers)]
        return array(np.stack([values.T if transpose else values for values in arrays]))

    embedding = array(tensors["embedding.weight"])
    dim = embedding.shape[1]
    return KernelWeights(
        # float32 times the float32 scale, as PyTorch multiplies a float tensor by a number
        embedding=array(embedding * np.float32(math.sqrt(dim))),
        positions=array(sinusoidal_positions(context_length, dim)),
        qkv=stacked("qkv.weight", transpose=True),
        attention_out=stacked("attention_out.weight", transpose=True),
        norm1_scale=stacked("attention_norm.weight"),
        norm1_shift=stacked("attention_norm.bias"),
        ff_in=stacked("ff_in.weight", transpose=True),
        ff_in_bias=stacked("ff_in.bias"),
        ff_out=stacked("ff_out.weight", transpose=True),
        ff_out_bias=stacked("ff_out.bias"),
        norm2_scale=stacked("ff_norm.weight"),
        norm2_shift=stacked("ff_norm.bias"),
        head=array(tensors["head.weight"].T),
        head_bias=array(tensors["head.bias"]),
        attention_scale=np.float32((dim // num_heads) ** -0.5),
        num_heads=num_heads,
    )


def _capacity(weights: KernelWeights) -> int:
    """Positions a cache holds: the context rounded up to whole BLOCKs."""
    return -(-weights.positions.shape[0] // BLOCK) * BLOCK


class KernelScratch(NamedTuple):
    """The work arrays of one kernel call over `rows` positions, `queries` of which attend
    at once. Rows are padded by a few cache lines, so that no two are 4 KiB apart (see
    KernelCache)."""

    scores: np.ndarray       # (queries, capacity + 2·LANES)
    largest: np.ndarray      # (queries · LANES,): each row's largest score, by lane
    unit_weights: np.ndarray  # (queries · 4 · LANES,): the rows' weights of 4 key vectors
    exact_rows: np.ndarray   # (queries,) bool
    folds: np.ndarray        # (queries, head_dim + 1, capacity / 4 + LANES): folded sums
    sums: np.ndarray         # (queries, head_dim + 1)
    exps: np.ndarray         # (256,): a row's exps in the softmax
    states: np.ndarray       # (rows, dim): the layers' output h, row by row
    qkv: np.ndarray          # (rows, 3·dim)
    attended: np.ndarray     # (rows, dim)
    projected: np.ndarray    # (rows, dim)
    hidden: np.ndarray       # (rows, hidden)
    logits: np.ndarray       # (rows, 256)
    #: (head_dim, capacity + LANES): one head's values widened to float32, for calls of at
    #: least QUERY_BLOCK rows attended QUERY_BLOCK at a time (else of no positions)
    widened: np.ndarray


def allocate_scratch(weights: KernelWeights, rows: int, queries: int = QUERY_BLOCK,
                     ) -> KernelScratch:
    """Work arrays for a call over `rows` positions (`extend_sequence`: QUERY_BLOCK
    queries; `step_batch`: one per sequence, so 1)."""
    dim, hidden = weights.ff_in.shape[1], weights.ff_in.shape[2]
    head_dim, capacity = dim // weights.num_heads, _capacity(weights)
    fold_stride = capacity // 4 + LANES
    widens = queries == QUERY_BLOCK and rows >= QUERY_BLOCK
    folds = aligned_zeros(queries * (head_dim + 1) * fold_stride)
    return KernelScratch(
        _zeros(queries, capacity + 2 * LANES), aligned_zeros(queries * LANES),
        aligned_zeros(queries * 4 * LANES), np.zeros(queries, np.bool_),
        folds.reshape((queries, head_dim + 1, fold_stride)),
        np.zeros((queries, head_dim + 1), np.float32), aligned_zeros(256),
        _zeros(rows, dim), _zeros(rows, 3 * dim), _zeros(rows, dim), _zeros(rows, dim),
        _zeros(rows, hidden), _zeros(rows, 256),
        aligned_zeros(head_dim * (capacity + LANES) if widens else 0).reshape((head_dim, -1)))


class KernelCache(NamedTuple):
    """What a batch of sequences keeps between steps. Keys and values, stored transposed
    (batch, layers, heads, head_dim, capacity + LANES) so that one head's attention reads
    contiguous rows, and zero past what was written: float32, the values IEEE half floats
    (as their uint16 bits) for the half-float kernels, which read a quarter less per step
    (half-float keys would cost the held-out rate 0.01 points, values nothing);
    `value_floors` (batch, layers, heads) is the smallest |value| each head has stored.
    (Rows 4 KiB apart would make the CPU take loads from one row for stores to another: it
    compares addresses by their low 12 bits first.) `scratch`: the steps' work arrays,
    allocated once."""

    keys: np.ndarray
    values: np.ndarray
    value_floors: np.ndarray
    scratch: KernelScratch


def allocate_cache(weights: KernelWeights, batch_size: int, half: bool = False
                   ) -> KernelCache:
    """An empty cache for `batch_size` sequences (`half`: of half-float values)."""
    layers, dim = weights.qkv.shape[0], weights.qkv.shape[1]
    head_dim = dim // weights.num_heads
    shape = (batch_size, layers, weights.num_heads, head_dim, _capacity(weights) + LANES)
    size = math.prod(shape)
    return KernelCache(aligned_zeros(size).reshape(shape),
                       aligned_zeros(size, np.uint16 if half else np.float32).reshape(shape),
                       np.zeros(shape[:3], np.float32),
                       allocate_scratch(weights, batch_size, queries=1))
