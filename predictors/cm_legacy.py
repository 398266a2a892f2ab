"""The first context-mixing model (algorithm 1), kept so that `cm` files made with it decode.

`predictors/cm.py` replaced it: a compiled model, faster by three orders of magnitude on
one stream, that learns across a whole file. This one stays exactly as it was, because a
payload decodes only with the model that coded it (the fingerprint says which): the `cm`
factory builds it for containers that record its parameters (`order`, `table_bits`), and
it stays selectable that way. It is also the one predictor here that is not
batch-independent, which is what the batched coder path is for.

Like PPM or lpaq it starts every sequence knowing nothing and learns from the bytes it has
seen: no training, no weights to ship. It is a bit-level context-mixing model in the style
of paq/lpaq, evaluated over the whole byte tree so that it yields the 256-way distributions
the `Predictor` protocol asks for:

- A byte is 8 binary decisions down a tree of 255 nodes. Each *context* (the previous
  0..order bytes, the current word, the high nibbles of the previous two bytes) owns one
  bit-history state per node: a pair of small, recency-weighted counts (n0, n1) in a byte.
- An adaptive state map turns a state into a probability (learned online, shared by all
  contexts of a sequence, so "seen once, was 1" is learned fast from every context).
- A logistic mixer combines the contexts' stretched probabilities with weights learned
  online; its weight set is chosen by the node's depth and by how many orders have
  statistics there (so it learns how much to trust a fresh high-order context).
- The probability of a byte is the product of the 8 node probabilities on its path.

For each step all 255 nodes are evaluated at once, vectorised over the batch of sequences;
after the byte is known only the 8 nodes on its path are updated.

Memory: a context's 255 nodes are stored as 17 rows of 16 bytes, as paq does: one row for
the first 4 bits and one per value of the high nibble for the last 4. A row is hashed into
a per-sequence table and owned by its context through an 8-bit check in its first byte;
rows never seen read as empty, so only the rows a sequence visits matter (about 2 per byte
and context; the default table holds 8192 per context and sequence, 128 KiB). The tables
of a batch are checked against the model memory budget (`gencomp.limits`) before they are
allocated: a payload declares its batch, and the largest settings need 40 GiB.

Exactness: everything is integer arithmetic (fixed-point stretch/squash from paq's
interpolation table, integer state maps and mixer weights); only the final node
probabilities become float64, by exact division and products. So the encoder and the
decoder compute bit-identical distributions on any machine, whatever SIMD kernels its
numpy uses for exp or log. Each sequence's state is its own: a chunk's probabilities do
not depend on which other chunks share its batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from gencomp.limits import check_model_memory
from predictors.base import Predictor

#: Bumped whenever the arithmetic changes: payloads record it through the fingerprint.
ALGORITHM_VERSION = 1

# --- Fixed-point logistic functions (paq): stretch(p) = ln(p / (1 - p)) ---------------
# Probabilities are 12-bit (p / 4096), stretched values are 8-bit fixed point in
# [-2047, 2047]. squash interpolates a 33-point table; stretch inverts it.

_SQUASH_POINTS = np.array([
    1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994,
    3348, 3607, 3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
], dtype=np.int64)
STRETCH_LIMIT = 2047


def _squash_table() -> np.ndarray:
    """squash(x) for x = -2047 .. 2047, indexed by x + 2047."""
    x = np.arange(-STRETCH_LIMIT, STRETCH_LIMIT + 1, dtype=np.int64)
    fraction, index = x & 127, (x >> 7) + 16
    return (_SQUASH_POINTS[index] * (128 - fraction)
            + _SQUASH_POINTS[np.minimum(index + 1, 32)] * fraction + 64) >> 7


SQUASH = _squash_table()
#: stretch(p) for p = 0 .. 4095: the smallest x with squash(x) >= p.
STRETCH = np.searchsorted(SQUASH, np.arange(4096), side="left").clip(0, 2 * STRETCH_LIMIT) \
    - STRETCH_LIMIT

# --- Bit-history states: (n0, n1), each 0..15, packed as n0 * 16 + n1 -------------------
# On a bit, its count grows and a large opposite count is halved: recent bits weigh more.

COUNT_MAX = 15
NUM_STATES = (COUNT_MAX + 1) ** 2
#: Probability resolution of the state map (16-bit).
PROB_ONE = 1 << 16
#: A state map entry adapts at rate 1 / (n + 1.5) after n visits, n capped here.
STATE_MAP_LIMIT = 255
#: Mixer weights are 16-bit fixed point, kept within ±64.
WEIGHT_LIMIT = 64 << 16
#: The mixer's constant input (1.0 in stretch units).
BIAS_INPUT = 256
#: Every context's weight starts at 0.2; the bias's at 0.
INITIAL_WEIGHT = round(0.2 * PROB_ONE)
#: Mixer step: Δw = x · err · LEARNING_RATE / 2**16 (x, err fixed point), i.e. a rate of
#: about 0.012 on stretch(p) in natural-log units.
LEARNING_RATE = 48


def _state_tables() -> tuple[np.ndarray, np.ndarray]:
    next_state = np.zeros((NUM_STATES, 2), dtype=np.uint8)
    prior = np.zeros(NUM_STATES, dtype=np.int64)
    for n0 in range(COUNT_MAX + 1):
        for n1 in range(COUNT_MAX + 1):
            state = n0 * (COUNT_MAX + 1) + n1
            # (n1 + 0.4) / (n0 + n1 + 0.8), in integers
            prior[state] = ((5 * n1 + 2) * PROB_ONE) // (5 * (n0 + n1) + 4)
            for bit in (0, 1):
                same, other = (n0, n1) if bit == 0 else (n1, n0)
                same = min(same + 1, COUNT_MAX)
                if other > 2:
                    other = (other + 2) // 2
                new0, new1 = (same, other) if bit == 0 else (other, same)
                next_state[state, bit] = new0 * (COUNT_MAX + 1) + new1
    return next_state, prior


NEXT_STATE, STATE_PRIOR = _state_tables()

# --- The byte tree as 17 rows of 16 nibble-tree nodes ----------------------------------
# Row 0 holds the nodes of the high nibble; row 1 + h the nodes of the low nibble after
# high nibble h. Within a row, node m (1..15) has children 2m and 2m + 1; m = 0 is unused.
# A "position" is row * 16 + m.

ROWS = 17
POSITIONS = ROWS * 16
_NIBBLE_DEPTH = np.array([0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], dtype=np.int64)
#: Depth of each position in the byte tree (0..7); unused positions get 0.
POSITION_DEPTH = np.concatenate([_NIBBLE_DEPTH] + [_NIBBLE_DEPTH + 4] * 16)


def path_positions(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 positions on each byte's path and the bits taken there, shapes (batch, 8)."""
    symbols = symbols.astype(np.int64)
    high, low = symbols >> 4, symbols & 15
    level = np.arange(4)
    high_nodes = (high[:, None] | 16) >> (4 - level)
    low_nodes = (1 + high[:, None]) * 16 + ((low[:, None] | 16) >> (4 - level))
    bits = (symbols[:, None] >> (7 - np.arange(8))) & 1
    return np.concatenate([high_nodes, low_nodes], axis=1), bits


def _leaf_probabilities(node_p1: np.ndarray) -> np.ndarray:
    """(..., 16) node probabilities of a 1 → (..., 16) probabilities of the 16 leaves."""
    leaves = np.ones(node_p1.shape[:-1] + (1,))
    for depth in range(4):
        p1 = node_p1[..., 1 << depth: 2 << depth]
        leaves = np.stack([leaves * (1.0 - p1), leaves * p1], axis=-1).reshape(
            node_p1.shape[:-1] + (2 << depth,))
    return leaves


# --- Hashing -------------------------------------------------------------------------

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_ROW_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)
_WORD_MULTIPLIER = np.uint64(0x100000001B3)


def _mix(value: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser: every input bit affects the high bits used as slot and check."""
    value = value * _MULTIPLIER
    value ^= value >> np.uint64(29)
    value = value * _ROW_MULTIPLIER
    return value ^ (value >> np.uint64(32))


@dataclass
class CMState:
    """Everything one batch of sequences has learned; `step` updates it in place.

    Arrays over contexts and sequences are context-major, (K, B, ...): the mixer then sums
    K contiguous slices."""

    rows: np.ndarray          # (K * B * table_rows * 16,) uint8: per row, the owner's
    #                           8-bit check, then node states 1..15
    state_p: np.ndarray       # (B * NUM_STATES,) int64 state map probabilities (16-bit)
    state_n: np.ndarray       # (B * NUM_STATES,) int64 state map counts
    state_stretch: np.ndarray  # (B * NUM_STATES,) stretch(state_p), integers in float64
    weights: np.ndarray       # (K, B * sets) mixer weights, integers in float64 with a
    #                           16-bit fraction
    bias_weights: np.ndarray  # (B * sets,) the bias input's weights, same units
    history: np.ndarray       # (B,) uint64 last 8 bytes, newest lowest
    word: np.ndarray          # (B,) uint64 hash of the current word's letters
    # Computed by the last prediction, used by the next update:
    row_index: np.ndarray | None = None     # (K, B, 17) rows (flat, × 16 bytes)
    row_check: np.ndarray | None = None     # (K, B, 17) expected checks
    row_owned: np.ndarray | None = None     # (K, B, 17) check matched
    states: np.ndarray | None = None        # (K, B, 272) node states
    inputs: np.ndarray | None = None        # (K, B, 272) stretched predictions
    weight_index: np.ndarray | None = None  # (B, 272) weight set (column of `weights`)
    p1: np.ndarray | None = None            # (B, 272) mixed 12-bit probabilities


class LegacyContextMixingPredictor(Predictor):
    """Bit-level context mixing of orders 0..`order`, a word and a nibble context, learned
    online. `table_bits` sets the rows per context and sequence (2**table_bits × 16 bytes)."""

    name = "cm"

    def __init__(self, order: int = 4, table_bits: int = 13) -> None:
        if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= 7:
            raise ValueError(f"order must be an integer from 0 to 7, got {order!r}")
        if not isinstance(table_bits, int) or not 6 <= table_bits <= 20:
            raise ValueError(f"table_bits must be an integer from 6 to 20, got {table_bits!r}")
        self.order = order
        self.table_bits = table_bits
        self.num_contexts = order + 3                   # orders 0..order, word, nibbles
        self.num_sets = (order + 2) * 8                 # active orders 0..order+1 × depth

    @property
    def config(self) -> dict[str, Any]:
        return {"order": self.order, "table_bits": self.table_bits}

    @property
    def fingerprint(self) -> str:
        described = {"predictor": self.name, "algorithm": ALGORITHM_VERSION, **self.config}
        text = json.dumps(described, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def start(self, batch_size: int) -> tuple[CMState, np.ndarray]:
        table_bytes = self.num_contexts * batch_size * 16 << self.table_bits
        check_model_memory(table_bytes, f"cm (order {self.order}, table_bits {self.table_bits}) "
                                        f"for a batch of {batch_size}")
        state_p = np.tile(STATE_PRIOR, batch_size)
        state = CMState(
            rows=np.zeros(table_bytes, dtype=np.uint8),
            state_p=state_p,
            state_n=np.zeros(batch_size * NUM_STATES, dtype=np.int64),
            state_stretch=STRETCH[state_p >> 4].astype(np.float64),
            weights=np.full((self.num_contexts, batch_size * self.num_sets), INITIAL_WEIGHT,
                            dtype=np.float64),
            bias_weights=np.zeros(batch_size * self.num_sets),
            history=np.zeros(batch_size, dtype=np.uint64),
            word=np.zeros(batch_size, dtype=np.uint64),
        )
        return state, self._predict(state)

    def step(self, state: CMState, symbols: np.ndarray) -> np.ndarray:
        symbols = np.asarray(symbols, dtype=np.uint8)
        self._update(state, symbols)
        letter = (symbols | 32).astype(np.uint64)
        is_letter = (letter >= ord("a")) & (letter <= ord("z"))
        state.word = np.where(is_letter, (state.word + letter) * _WORD_MULTIPLIER, np.uint64(0))
        state.history = (state.history << np.uint64(8)) | symbols.astype(np.uint64)
        return self._predict(state)

    # --- prediction ---------------------------------------------------------------

    def _context_hashes(self, state: CMState) -> np.ndarray:
        """(K, B) 64-bit hashes of the contexts, each tagged in its top byte: the last
        0..order bytes; the current word; and the high nibbles of the last two bytes, a
        coarse context that generalises over noisy data (pixels, audio samples) and over
        letter case and character classes in text."""
        history = state.history
        hashes = []
        for order in range(self.order + 1):
            mask = np.uint64((1 << (8 * order)) - 1)
            hashes.append(_mix((history & mask) | np.uint64(order << 56)))
        hashes.append(_mix(state.word ^ np.uint64(0xFF << 56)))
        high_nibbles = ((history >> np.uint64(4)) & np.uint64(0x0F)) \
            | ((history >> np.uint64(8)) & np.uint64(0xF0))
        hashes.append(_mix(high_nibbles | np.uint64(0xFE << 56)))
        return np.stack(hashes)

    def _locate_rows(self, state: CMState) -> np.ndarray:
        """Find each context's 17 rows: rows of the high nibble in the first half of the
        context's table, rows of the low nibble in the second half, so that the two rows
        one update writes never share a slot. Returns the rows' bytes, (K, B, 17, 16)."""
        batch = state.history.shape[0]
        nibble = np.arange(ROWS, dtype=np.uint64)
        row_hash = _mix(self._context_hashes(state)[:, :, None] + nibble * _ROW_MULTIPLIER)
        half_bits = np.uint64(self.table_bits - 1)
        slot = (row_hash >> (np.uint64(64) - half_bits)).astype(np.intp)
        slot[:, :, 1:] += 1 << (self.table_bits - 1)
        table = np.arange(self.num_contexts * batch).reshape(-1, batch) << self.table_bits
        state.row_index = table[:, :, None] + slot
        state.row_check = (row_hash & np.uint64(0xFF)).astype(np.uint8)
        # numpy's take is fastest on wide items: fetch each 16-byte row as two uint64
        rows = np.take(state.rows.view(np.uint64).reshape(-1, 2), state.row_index, axis=0)
        rows = rows.view(np.uint8).reshape(self.num_contexts, batch, ROWS, 16)
        state.row_owned = rows[..., 0] == state.row_check
        return rows

    def _predict(self, state: CMState) -> np.ndarray:
        batch = state.history.shape[0]
        rows = self._locate_rows(state)
        # A row owned by another context reads as empty. Position 0 of each row holds the
        # check, not a node; nothing reads the values computed there.
        states = (rows * state.row_owned[..., None]).reshape(self.num_contexts, batch,
                                                             POSITIONS)
        state.states = states

        # Integers in float64 from here to the mixer's output: products and sums of
        # integers below 2**53 are exact, so any summation order gives the same bits.
        offsets = (np.arange(batch) * NUM_STATES)[:, None]
        inputs = np.take(state.state_stretch, states + offsets)              # (K, B, 272)
        state.inputs = inputs

        active_orders = (states[: self.order + 1] != 0).sum(axis=0, dtype=np.intp)
        state.weight_index = (np.arange(batch)[:, None] * self.num_sets
                              + active_orders * 8 + POSITION_DEPTH)        # (B, 272)
        weights = np.take(state.weights, state.weight_index, axis=1)        # (K, B, 272)
        dot = ((inputs * weights).sum(axis=0)
               + BIAS_INPUT * np.take(state.bias_weights, state.weight_index))
        dot = np.floor(dot / PROB_ONE).astype(np.intp)
        p1 = SQUASH[np.clip(dot, -STRETCH_LIMIT, STRETCH_LIMIT) + STRETCH_LIMIT]
        p1 = np.clip(p1, 1, 4095)
        state.p1 = p1

        leaves = _leaf_probabilities(p1.reshape(batch, ROWS, 16) / 4096.0)
        return (leaves[:, 0, :, None] * leaves[:, 1:, :]).reshape(batch, 256)

    # --- learning -----------------------------------------------------------------

    def _update(self, state: CMState, symbols: np.ndarray) -> None:
        """Learn from the bytes just seen: the 8 nodes on each byte's path, in every
        context; the state map; the mixer weights used there."""
        batch = symbols.shape[0]
        positions, bits = path_positions(symbols)                          # (B, 8)
        # flat indices of the path positions in (K, B, 272) arrays
        path = ((np.arange(self.num_contexts * batch) * POSITIONS)
                .reshape(self.num_contexts, batch, 1) + positions)

        # Node states: claim the two rows on the path (clearing a row another context
        # owned), then step the 8 states along the bits.
        old = np.take(state.states, path).astype(np.intp)                   # (K, B, 8)
        new = NEXT_STATE[old, bits]
        path_rows = np.stack([np.zeros(batch, dtype=np.intp), 1 + (symbols >> 4)], axis=1)
        path_rows = np.broadcast_to(path_rows, (self.num_contexts, batch, 2))
        row = np.take_along_axis(state.row_index, path_rows, axis=2)       # (K, B, 2)
        owned = np.take_along_axis(state.row_owned, path_rows, axis=2)
        claimed = row[~owned]
        state.rows.view(np.uint64)[np.concatenate([2 * claimed, 2 * claimed + 1])] = 0
        state.rows[16 * row] = np.take_along_axis(state.row_check, path_rows, axis=2)
        nodes = positions & 15
        state.rows[16 * row[:, :, :1] + nodes[:, :4]] = new[:, :, :4]
        state.rows[16 * row[:, :, 1:] + nodes[:, 4:]] = new[:, :, 4:]

        # State map: each visited state moves toward the bits seen in it, with rate
        # 1 / (n + 1.5); several visits in one step are applied as one average.
        index = (old + (np.arange(batch) * NUM_STATES)[:, None]).ravel()
        total = batch * NUM_STATES
        visits = np.bincount(index, minlength=total)
        ones = np.bincount(index[np.broadcast_to(bits, old.shape).ravel() == 1],
                           minlength=total)
        touched = np.flatnonzero(visits)
        visits, ones = visits[touched], ones[touched]
        weight = 2 * state.state_n[touched] + 3
        state_p = (state.state_p[touched] * weight + ones * (2 * PROB_ONE)) \
            // (weight + 2 * visits)
        state.state_p[touched] = state_p
        state.state_n[touched] = np.minimum(state.state_n[touched] + visits, STATE_MAP_LIMIT)
        state.state_stretch[touched] = STRETCH[state_p >> 4]

        # Mixer: one gradient step on the coding loss per path node. The 8 nodes of a
        # path have 8 different depths, hence 8 different weight sets.
        batch_rows = np.arange(batch)[:, None]
        error = (bits << 12) - state.p1[batch_rows, positions]             # (B, 8)
        scaled_error = error * LEARNING_RATE
        weight_index = state.weight_index[batch_rows, positions]            # (B, 8)
        step = np.floor((np.take(state.inputs, path) * scaled_error + 2**15) / PROB_ONE)
        state.weights[:, weight_index] = np.clip(state.weights[:, weight_index] + step,
                                                 -WEIGHT_LIMIT, WEIGHT_LIMIT)
        bias_step = np.floor((BIAS_INPUT * scaled_error + 2**15) / PROB_ONE)
        state.bias_weights[weight_index] = np.clip(state.bias_weights[weight_index] + bias_step,
                                                   -WEIGHT_LIMIT, WEIGHT_LIMIT)
