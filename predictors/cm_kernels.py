"""The context-mixing model's per-bit computation, compiled with numba: integers only.

One bit at a time, in the order a byte's bits are coded (most significant first), the
model predicts the next bit as a 12-bit probability and then learns it:

    p = predict(model)        # P(next bit = 1) · 4096, in 1 … 4095
    learn(model, bit)

Everything is integer arithmetic (fixed-point stretch/squash tables, integer state maps,
mixer weights and APMs), so every machine computes the same probabilities.

The byte tree. Before a byte, `c0` is 1; after each bit it becomes 2·c0 + bit, so the node
of the tree a prediction is made at *is* c0 (1 … 255), and `bit` counts the bits seen.

Why a whole byte's distribution can be read off the model (`byte_distribution`). Every
adaptive entry a prediction reads is indexed by its node: by c0 (bit-history states,
mixer weight sets, APM rows) or by the bit position (state maps, the match model's map).
A byte's path visits each c0 and each bit position once, so what its earlier bits wrote
is never read again within that byte; and the hashed tables are split in two halves, one
for each nibble, so the slot a low nibble looks up never moved while the high nibble was
learnt. Hence the probability at every node of the next byte follows from the model as it
stands at the byte's start, and the 256 byte probabilities (the products along the paths)
are exactly the ones coding would use.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

# No reference counting (NRT): the kernels allocate nothing, and counting the references
# of the model's arrays at every bit would cost a quarter of the time.
_kernel = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy",
                     _nrt=False)
#: The per-bit pieces are inlined into each loop.
_inline = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy",
                     _nrt=False, inline="always")

M32 = 0xFFFFFFFF

# --- fixed-point logistic functions: stretch(p) = ln(p / (1 − p)) ----------------------
# Probabilities are 12-bit (p / 4096); stretched values are in units of 1/256, clamped to
# ±2047. squash interpolates paq's 33-point table; stretch is its inverse.

_SQUASH_POINTS = np.array([
    1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994,
    3348, 3607, 3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
], dtype=np.int64)
STRETCH_LIMIT = 2047


def _squash_table() -> np.ndarray:
    x = np.arange(-STRETCH_LIMIT, STRETCH_LIMIT + 1, dtype=np.int64)
    fraction, index = x & 127, (x >> 7) + 16
    return ((_SQUASH_POINTS[index] * (128 - fraction)
             + _SQUASH_POINTS[np.minimum(index + 1, 32)] * fraction + 64) >> 7)


#: squash(x) for x = −2047 … 2047, at index x + 2047.
SQUASH = _squash_table().astype(np.int32)
#: stretch(p) for p = 0 … 4095: the smallest x with squash(x) ≥ p.
STRETCH = (np.searchsorted(SQUASH, np.arange(4096), side="left").clip(0, 2 * STRETCH_LIMIT)
           - STRETCH_LIMIT).astype(np.int32)

# --- bit-history states: (n0, n1), each 0 … 15, as the byte n0 · 16 + n1 ---------------
# On a bit its count grows (to 15) and a large opposite count is halved, so recent bits
# weigh more. State 0 is "never seen".

COUNT_MAX = 15


def _state_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    next_state = np.zeros(512, dtype=np.uint8)      # at state · 2 + bit
    prior = np.zeros(256, dtype=np.int32)          # 16-bit P(1) of a state, (n1+.4)/(n+.8)
    priority = np.zeros(256, dtype=np.int32)        # how much a slot has learnt: n0 + n1
    for n0 in range(COUNT_MAX + 1):
        for n1 in range(COUNT_MAX + 1):
            state = n0 * 16 + n1
            prior[state] = ((5 * n1 + 2) << 16) // (5 * (n0 + n1) + 4)
            priority[state] = n0 + n1
            for bit in (0, 1):
                same, other = (n0, n1) if bit == 0 else (n1, n0)
                same = min(same + 1, COUNT_MAX)
                if other > 2:
                    other = (other + 2) // 2
                new0, new1 = (same, other) if bit == 0 else (other, same)
                next_state[state * 2 + bit] = new0 * 16 + new1
    return next_state, prior, priority


NEXT_STATE, STATE_PRIOR, SLOT_PRIORITY = _state_tables()

# --- the inputs of the mixer -------------------------------------------------------------

ORDER0, ORDER1 = 0, 1
#: Hashed contexts, in this order: orders 2, 3, 4 and 6; the current word; the byte two
#: back (a sparse context, for binary data); the high nibbles of the last two bytes (a
#: coarse one, that generalises over noisy data and character classes); and two record
#: contexts (the byte one record back, with the byte two records back or with the
#: previous byte), for tables and images whose rows repeat at a period: the period the
#: record model detects, or from version 2 of the numeric models the row width they read
#: images at (a 2 KB patch is too short for a period to be detected in).
HASHED_ORDERS = (2, 3, 4, 6)
NUM_HASHED = len(HASHED_ORDERS) + 5
FIRST_HASHED = 2
MATCH_INPUT = FIRST_HASHED + NUM_HASHED
NUM_STATE_INPUTS = MATCH_INPUT           # inputs read from a bit-history state
#: The numeric models (images and audio, below), after the match model; then the bias.
FIRST_SIGNAL = MATCH_INPUT + 1
IMAGE_MEDIAN, IMAGE_SMOOTH, AUDIO_LMS, AUDIO_PREVIOUS, IMAGE_ABOVE = range(5)
NUM_SIGNALS = 5
NUM_INPUTS = FIRST_SIGNAL + NUM_SIGNALS + 1
BIAS = 256

#: A state map entry adapts at rate 1 / (n + 1.5) after n updates, n capped here.
STATE_MAP_LIMIT = 127
RECIPROCAL = np.array([65536 * 2 // (2 * n + 3) for n in range(STATE_MAP_LIMIT + 1)],
                      dtype=np.int32)

#: Mixer weights are 16.16 fixed point, clamped to ±WEIGHT_LIMIT.
WEIGHT_LIMIT = 16 << 16
INITIAL_WEIGHT = 8000
#: Δw = x · err · rate / 2^16 (x, err: stretch and 12-bit units), the rate falling from
#: FIRST_LEARNING_RATE to LEARNING_RATE over the first bytes (about RATE_HALF_LIFE).
LEARNING_RATE = 14
FIRST_LEARNING_RATE = 24
RATE_HALF_LIFE = 2048
APM_RATE = 6

# --- the match model ------------------------------------------------------------------
#: Bytes hashed to find an earlier occurrence of the current context.
MATCH_MIN = 6
MATCH_MAX = 65535
MATCH_BUCKETS = 16

# --- record detection ------------------------------------------------------------------
#: A period is adopted once this many bytes have recurred at it, four times in a row.
RECORD_VOTES = 16

# --- numeric models: bytes as pixels or samples ------------------------------------------
# With `signals` on, more inputs read the bytes as numbers. Each predicts the next
# byte's value mu (images: the median edge detector of LOCO-I / JPEG-LS and a smooth
# average, from the pixels left, above, above-left and above-right at the row width, and
# from version 3 the pixel above; audio: a normalised LMS filter of the last LMS_ORDER
# samples, and the last sample) and
# gives the byte a two-sided geometric distribution around it, P(v) ∝ θ^|v − mu|, with θ
# set by the mean absolute error it has made in the same context of local activity. At a
# node of the byte tree the input is stretch(P(bit = 1)): the mass of the values under the
# 1-branch over the mass under the node. They need no training, which is what a fresh
# model coding a 2 KB image patch or stretch of speech needs; the mixer learns from the
# data which to trust (for text: none). With `signals` off the inputs are 0, and every
# other number is what it was without them; so is every number of an earlier version
# without the inputs it lacks (an input of 0 moves no weight).
# Why the pixel above (version 3): every other model leans on the pixel to the left (the
# median predictor picks it at a horizontal edge, the smooth average gives it half its
# weight, the last sample and LMS read the row as a signal), so a model sampling an
# image drifts along rows into horizontal streaks; the pixel above anchors each row to
# the one before (patch samples of images 0-299, two seeds, cm frozen at T 0.8:
# plausible in 85 % against 80 %; image rates 0.1-0.2 lower).
#: θ levels: level q (1 … THETA_LEVELS) is the θ whose mean |error| is q² / 64.
THETA_LEVELS = 96
#: Mean absolute errors are kept in 1/16 units, each step moving 1/2^SCALE_RATE of the way.
SCALE_ONE, SCALE_RATE, INITIAL_SCALE = 16, 4, 64
ACTIVITY_CONTEXTS = 8
LMS_ORDER, LMS_ONE, LMS_RATE_SHIFT = 16, 1 << 16, 2
#: Added to the window's energy (silence must not make the steps huge); weights' bound.
LMS_ENERGY_FLOOR, LMS_LIMIT = 256, 4 << 16


def _theta_powers() -> np.ndarray:
    """θ_q^k · 2^40 for every level q and k = 0 … 256, from θ_q in 16-bit fixed point.
    Only correctly rounded operations (+, −, ×, ÷, √) of exact rationals and integer
    products: every machine builds the same table."""
    import math
    powers = np.zeros((THETA_LEVELS + 1, 257), dtype=np.int64)
    for level in range(1, THETA_LEVELS + 1):
        mean = level * level / 64  # E|r| = 2θ / (1 − θ²), solved for θ
        theta = round((math.sqrt(1 + mean * mean) - 1) / mean * 65536)
        power = 1 << 40
        for k in range(257):
            powers[level, k] = power
            power = (power * theta) >> 16
    return powers


def _levels_for_scale() -> np.ndarray:
    """The θ level for a mean |error| of e/16, e = 0 … (the largest level's mean) · 16:
    round(8 √(e / 16)) = round(√(4e)), at least 1."""
    import math
    top = THETA_LEVELS * THETA_LEVELS // 64 * SCALE_ONE
    levels = np.zeros(top + 1, dtype=np.int64)
    for e in range(top + 1):
        q = math.isqrt(4 * e)
        if (2 * q + 1) ** 2 <= 16 * e:
            q += 1
        levels[e] = max(1, min(THETA_LEVELS, q))
    return levels


THETA_POWERS = _theta_powers()
LEVEL_FOR_SCALE = _levels_for_scale()
MAX_SCALE = len(LEVEL_FOR_SCALE) - 1
#: Local activity (a sum of absolute differences) → one of ACTIVITY_CONTEXTS.
ACTIVITY_BOUNDS = np.array([1, 3, 6, 12, 24, 48, 96], dtype=np.int64)
#: A third APM refines the mixer's output by what the image's (else the audio's) main
#: numeric model says at this node: rows by (bit position, its stretched P(1) in 32
#: steps), after the order-1 APM's rows.
SIGNAL_APM_ROWS = 8 * 32

# --- sizes -------------------------------------------------------------------------------
#: `table_bits` sizes the model: 2^table_bits slots of 16 bytes per hashed context, a
#: match table of 2^(table_bits − 2) positions, an order-1 APM over 2^min(8, tb − 8) groups
#: of previous bytes.
MIN_TABLE_BITS = 10
MAX_TABLE_BITS = 24


def _apm1_bits(table_bits: int) -> int:
    return min(8, max(0, table_bits - 8))


# --- the model's memory: four arrays ----------------------------------------------------
# Few arrays, each bound once per call: the kernels run without reference counting.

# `tables` (uint8): bit-history states.
T_ORDER0 = 0                      # at node c0
T_ORDER1 = T_ORDER0 + 256         # at (previous byte, c0)
T_HASHED = T_ORDER1 + (1 << 16)   # NUM_HASHED regions × 2 halves × 2^(table_bits−1) slots
#                                   of 16 bytes: an 8-bit check, then 15 nodes' states

# `maps` (int32): what turns states and contexts into probabilities, the mixer, and the
# match and record models' positions.
STATE_MAP_SIZE = NUM_STATE_INPUTS * 8 * 256   # per (input, bit position, state)
MATCH_MAP_SIZE = 8 * MATCH_BUCKETS * 2        # per (bit position, length, expected bit)
M_STATE_P = 0                                 # 16-bit P(1)
M_STATE_N = M_STATE_P + STATE_MAP_SIZE        # updates seen
M_MATCH_P = M_STATE_N + STATE_MAP_SIZE
M_MATCH_N = M_MATCH_P + MATCH_MAP_SIZE
M_WEIGHTS = M_MATCH_N + MATCH_MAP_SIZE        # a weight set per node c0
#: A second weight set per (bit position, how many hashed contexts have been seen), added
#: to the first: it learns fast how far to trust contexts that are new.
NUM_SEEN_SETS = 8 * (NUM_HASHED + 1)
M_SEEN_WEIGHTS = M_WEIGHTS + 256 * NUM_INPUTS
#: With the numeric models, a third weight set per (bit position, local activity of the
#: image), added to the other two: how far to trust each input in smooth and in busy parts.
NUM_SIGNAL_SETS = 8 * (ACTIVITY_CONTEXTS + 1)
M_SIGNAL_WEIGHTS = M_SEEN_WEIGHTS + NUM_SEEN_SETS * NUM_INPUTS
M_LAST_SEEN = M_SIGNAL_WEIGHTS + NUM_SIGNAL_SETS * NUM_INPUTS   # 4 × 256: the last 4
#                                                             positions of each byte
M_SCALE = M_LAST_SEEN + 4 * 256               # mean |error| per (signal, activity)
M_LMS = M_SCALE + NUM_SIGNALS * ACTIVITY_CONTEXTS   # the LMS filter's weights
M_APM = M_LMS + LMS_ORDER                     # rows of 33: 256 by c0, then the order-1
#                                               rows; then the match table

# `registers` (int64): scalars, this byte's context hashes and slots, and what a
# prediction leaves for the update that follows it.
R_C0, R_BIT, R_C4, R_C8, R_WORD, R_POS = 0, 1, 2, 3, 4, 5
R_MATCH_PTR, R_MATCH_LEN, R_MATCH_BYTE = 6, 7, 8
R_TABLE_BITS, R_APM1_BITS, R_MATCH_TABLE, R_MATCH_MASK = 9, 10, 11, 12
R_RECORD, R_CANDIDATE1, R_VOTES1, R_CANDIDATE2, R_VOTES2 = 13, 14, 15, 16, 17
R_P_MIX, R_APM0, R_APM1, R_MATCH_CTX, R_SEEN_SET, R_RATE = 18, 19, 20, 21, 22, 23
R_SIGNALS, R_WIDTH = 24, 25                     # numeric models' version; row width
R_MU = 26                                       # per signal: its predicted value
R_LEVEL = R_MU + NUM_SIGNALS                    # … its θ level (0: no prediction)
R_ACTIVITY = R_LEVEL + NUM_SIGNALS              # … the activity context it was made in
R_SIGNAL_SET = R_ACTIVITY + NUM_SIGNALS         # the third weight set (−1: none)
R_APM2 = R_SIGNAL_SET + 1                       # the numeric APM's bucket (−1: none)
R_HASHES = R_APM2 + 1
R_SLOTS = R_HASHES + NUM_HASHED
R_INPUTS = R_SLOTS + NUM_HASHED
R_STATES = R_INPUTS + NUM_INPUTS
R_FROZEN = R_STATES + NUM_STATE_INPUTS          # 1: bytes extend the contexts, nothing learns
NUM_REGISTERS = R_FROZEN + 1


class CMModel(NamedTuple):
    """Everything the model has learnt, and where it is in the current byte."""

    tables: np.ndarray     # uint8, see T_*
    maps: np.ndarray       # int32, see M_*
    registers: np.ndarray  # int64, see R_*
    history: np.ndarray    # uint8 (capacity,): the bytes seen


def model_bytes(table_bits: int) -> int:
    """Memory of a model of this size, history not counted."""
    apm_rows = 256 + (256 << _apm1_bits(table_bits)) + SIGNAL_APM_ROWS
    return (T_HASHED + (NUM_HASHED << (table_bits + 4))
            + 4 * (M_APM + 33 * apm_rows + (1 << (table_bits - 2))) + 8 * NUM_REGISTERS)


def new_model(table_bits: int, capacity: int, signals: int = 0, width: int = 0
              ) -> CMModel:
    """A model that has seen nothing, of size `table_bits` (see MIN_TABLE_BITS), with room
    for `capacity` bytes of history; `signals` (a version, 0: none) adds the numeric
    models, which read images at row `width` (0: the period the record model detects)."""
    apm1_bits = _apm1_bits(table_bits)
    match_table = M_APM + 33 * (256 + (256 << apm1_bits) + SIGNAL_APM_ROWS)
    maps = np.zeros(match_table + (1 << (table_bits - 2)), dtype=np.int32)
    maps[M_STATE_P:M_STATE_N] = np.tile(STATE_PRIOR, NUM_STATE_INPUTS * 8)
    maps[M_MATCH_P:M_MATCH_N] = 1 << 15
    weights = maps[M_WEIGHTS:M_SEEN_WEIGHTS].reshape(256, NUM_INPUTS)
    weights[:, :NUM_INPUTS - 1] = INITIAL_WEIGHT
    buckets = np.clip((np.arange(33) - 16) * 128, -STRETCH_LIMIT, STRETCH_LIMIT)
    apm_row = (SQUASH[buckets + STRETCH_LIMIT].astype(np.int64) * 16).clip(16, 65535 - 16)
    maps[M_APM:match_table] = np.tile(apm_row, (match_table - M_APM) // 33)
    maps[M_SCALE:M_LMS] = INITIAL_SCALE
    maps[M_LMS] = LMS_ONE  # the filter starts as "the last sample"
    registers = np.zeros(NUM_REGISTERS, dtype=np.int64)
    registers[R_SIGNALS], registers[R_WIDTH] = signals, width
    registers[R_TABLE_BITS], registers[R_APM1_BITS] = table_bits, apm1_bits
    registers[R_MATCH_TABLE], registers[R_MATCH_MASK] = match_table, (1 << (table_bits - 2)) - 1
    model = CMModel(np.zeros(T_HASHED + (NUM_HASHED << (table_bits + 4)), dtype=np.uint8),
                    maps, registers, np.zeros(max(capacity, 1), dtype=np.uint8))
    begin_byte(model.tables, model.maps, model.registers, model.history)
    return model


def with_capacity(model: CMModel, capacity: int) -> CMModel:
    """The same model with room for `capacity` bytes of history (at least what it holds)."""
    history = np.zeros(capacity, dtype=np.uint8)
    history[:len(model.history)] = model.history
    return model._replace(history=history)


# --- hashing -------------------------------------------------------------------------
# 32-bit hashes computed in int64: multipliers below 2^31 keep every product below 2^63.


@_inline
def _hash32(x):
    x = x & M32
    x ^= x >> 16
    x = (x * 0x45D9F3B) & M32
    x ^= x >> 16
    x = (x * 0x2C1B3C6D) & M32
    x ^= x >> 15
    return x


@_inline
def _combine(h, value):
    return _hash32(h * 0x2F0B3A49 + value + 0x165667B1)


@_inline
def _find_slot(tables, start, half_bits, h, claim):
    """The offset of the slot owned by hash `h` among the 4 slots of its cache line in
    the half-table at `start`; −1 if none and not `claim`. Claiming takes the slot that
    has learnt least, cleared."""
    check = h & 0xFF
    line = start + ((((h >> 8) & ((1 << half_bits) - 1)) & ~3) << 4)
    for i in range(4):
        if tables[line + 16 * i] == check:
            return line + 16 * i
    if not claim:
        return -1
    chosen, lowest = line, 1 << 30
    for i in range(4):
        priority = SLOT_PRIORITY[tables[line + 16 * i + 1]]
        if priority < lowest:
            chosen, lowest = line + 16 * i, priority
    for i in range(16):
        tables[chosen + i] = 0
    tables[chosen] = check
    return chosen


@_inline
def _look_up_slots(tables, registers, c0, half, claim, slots, first):
    """slots[first + k] = context k's slot for the high nibble (half 0, c0 = 1) or for
    the low nibble after high nibble c0 (half 1, c0 = 16 … 31)."""
    table_bits = registers[R_TABLE_BITS]
    for k in range(NUM_HASHED):
        h = registers[R_HASHES + k]
        if half:
            h = _combine(h, c0)
        start = T_HASHED + (k << (table_bits + 4)) + (half << (table_bits + 3))
        slots[first + k] = _find_slot(tables, start, table_bits - 1, h, claim)


# --- one prediction ----------------------------------------------------------------------


@_inline
def _apm(maps, row, probability, registers, slot):
    """Refine a 12-bit probability by interpolating row `row` of an APM (33 buckets over
    the stretched probability); remember the nearer bucket for the update."""
    s = STRETCH[probability] + STRETCH_LIMIT + 1
    low, weight = s >> 7, s & 127
    base = M_APM + row * 33 + low
    registers[slot] = base + (weight >> 6)
    return (maps[base] * (128 - weight) + maps[base + 1] * weight) >> 11


@_inline
def _geometric_mass(level, low, high):
    """Σ θ^|r| · 2^40 for r = low … high (low ≤ high, |r| ≤ 255) at θ level `level`,
    without the normalising factor 1 / (1 − θ)."""
    if low >= 0:
        return THETA_POWERS[level, low] - THETA_POWERS[level, high + 1]
    if high < 0:
        return THETA_POWERS[level, -high] - THETA_POWERS[level, 1 - low]
    return (THETA_POWERS[level, 0] - THETA_POWERS[level, high + 1]
            + THETA_POWERS[level, 1] - THETA_POWERS[level, 1 - low])


@_inline
def _signal_input(mu, level, c0, bit):
    """stretch(P(next bit = 1)) at node c0 for a byte distributed around `mu`."""
    size = 1 << (8 - bit)
    low = (c0 - (1 << bit)) * size - mu
    half = size >> 1
    zero = _geometric_mass(level, low, low + half - 1)
    one = _geometric_mass(level, low + half, low + size - 1)
    if zero + one <= 0:
        return 0
    return STRETCH[max(1, min(4095, (one << 12) // (zero + one)))]


@_inline
def node_probability(tables, maps, registers, c0, bit, slots, first):
    """P(1) · 4096 at node c0 (after `bit` bits of the byte), with the hashed contexts'
    slots `slots[first:]` (−1: absent). Reads the model only; leaves its inputs in
    `registers`."""
    node = c0 if bit < 4 else (c0 & ((1 << (bit - 4)) - 1)) | (1 << (bit - 4))
    c1 = registers[R_C4] & 0xFF
    registers[R_STATES + ORDER0] = tables[T_ORDER0 + c0]
    registers[R_STATES + ORDER1] = tables[T_ORDER1 + ((c1 << 8) | c0)]
    seen = 0
    for k in range(NUM_HASHED):
        slot = slots[first + k]
        state = tables[slot + node] if slot >= 0 else 0
        registers[R_STATES + FIRST_HASHED + k] = state
        seen += state != 0
    w0 = M_WEIGHTS + c0 * NUM_INPUTS
    w1 = M_SEEN_WEIGHTS + (bit * (NUM_HASHED + 1) + seen) * NUM_INPUTS
    registers[R_SEEN_SET] = w1
    dot = BIAS * (maps[w0 + NUM_INPUTS - 1] + maps[w1 + NUM_INPUTS - 1])
    w2 = -1
    if registers[R_SIGNALS]:
        activity = (registers[R_ACTIVITY + IMAGE_MEDIAN] if registers[R_LEVEL + IMAGE_MEDIAN]
                    else ACTIVITY_CONTEXTS)
        w2 = M_SIGNAL_WEIGHTS + (bit * (ACTIVITY_CONTEXTS + 1) + activity) * NUM_INPUTS
    registers[R_SIGNAL_SET] = w2
    for i in range(NUM_STATE_INPUTS):
        x = STRETCH[maps[M_STATE_P + (i * 8 + bit) * 256 + registers[R_STATES + i]] >> 4]
        registers[R_INPUTS + i] = x
        dot += x * (maps[w0 + i] + maps[w1 + i])
    # The match model: the byte after the longest earlier match of the context, as long
    # as this byte's bits so far agree with it.
    x = 0
    registers[R_MATCH_CTX] = -1
    length = registers[R_MATCH_LEN]
    if length > 0:
        expected = registers[R_MATCH_BYTE] | 256
        if (expected >> (8 - bit)) == c0:
            bucket = min(length, MATCH_BUCKETS - 1)
            context = (bit * MATCH_BUCKETS + bucket) * 2 + ((expected >> (7 - bit)) & 1)
            registers[R_MATCH_CTX] = context
            x = STRETCH[maps[M_MATCH_P + context] >> 4]
    registers[R_INPUTS + MATCH_INPUT] = x
    registers[R_INPUTS + NUM_INPUTS - 1] = BIAS
    dot += x * (maps[w0 + MATCH_INPUT] + maps[w1 + MATCH_INPUT])
    for j in range(NUM_SIGNALS):
        level = registers[R_LEVEL + j]
        x = _signal_input(registers[R_MU + j], level, c0, bit) if level else 0
        registers[R_INPUTS + FIRST_SIGNAL + j] = x
        dot += x * (maps[w0 + FIRST_SIGNAL + j] + maps[w1 + FIRST_SIGNAL + j])
    if w2 >= 0:
        for i in range(NUM_INPUTS):
            dot += registers[R_INPUTS + i] * maps[w2 + i]
    dot = max(-STRETCH_LIMIT, min(STRETCH_LIMIT, dot >> 16))
    p_mix = SQUASH[dot + STRETCH_LIMIT]
    registers[R_P_MIX] = p_mix
    p0 = _apm(maps, c0, p_mix, registers, R_APM0)
    c1_group = c1 & ((1 << registers[R_APM1_BITS]) - 1)
    p1 = _apm(maps, 256 + ((c1_group << 8) | c0), p_mix, registers, R_APM1)
    registers[R_APM2] = -1
    if registers[R_SIGNALS]:
        main = (IMAGE_MEDIAN if registers[R_LEVEL + IMAGE_MEDIAN]
                else AUDIO_LMS if registers[R_LEVEL + AUDIO_LMS] else -1)
        if main >= 0:
            x = registers[R_INPUTS + FIRST_SIGNAL + main]
            row = (256 + (256 << registers[R_APM1_BITS]) + bit * 32
                   + ((x + STRETCH_LIMIT + 1) >> 7))
            p2 = _apm(maps, row, p_mix, registers, R_APM2)
            return max(1, min(4095, (p_mix + p0 + 3 * p1 + 3 * p2 + 4) >> 3))
    p = (2 * p_mix + p0 + 5 * p1 + 4) >> 3
    return max(1, min(4095, p))


@_inline
def predict(tables, maps, registers):
    """P(next bit = 1) · 4096, at the model's current node."""
    return node_probability(tables, maps, registers, registers[R_C0], registers[R_BIT],
                            registers, R_SLOTS)


# --- learning --------------------------------------------------------------------------


@_inline
def _adapt(maps, probability, count, bit):
    n = maps[count]
    maps[probability] += (((bit << 16) - maps[probability]) * RECIPROCAL[n]) >> 16
    if n < STATE_MAP_LIMIT:
        maps[count] = n + 1


@_inline
def _adapt_apm(maps, index, bit):
    maps[index] += ((bit << 16) + (bit << APM_RATE) - bit - bit - maps[index]) >> APM_RATE


@_inline
def learn(tables, maps, registers, history, bit):
    """Learn `bit` at the node `predict` was last called for, and move to the next (a
    frozen model only moves, and claims no table slot for a context it has not seen)."""
    c0, position = registers[R_C0], registers[R_BIT]
    if not registers[R_FROZEN]:
        _update(tables, maps, registers, c0, position, bit)
    c0 = 2 * c0 + bit
    position += 1
    if position == 8:
        _end_byte(maps, registers, history, c0 & 0xFF)
        begin_byte(tables, maps, registers, history)
    else:
        registers[R_C0], registers[R_BIT] = c0, position
        if position == 4:
            _look_up_slots(tables, registers, c0, 1, not registers[R_FROZEN], registers,
                           R_SLOTS)


@_inline
def _update(tables, maps, registers, c0, position, bit):
    """Every adaptive part learns `bit` at node c0 (after `position` bits of the byte)."""
    node = c0 if position < 4 else (c0 & ((1 << (position - 4)) - 1)) | (1 << (position - 4))
    c1 = registers[R_C4] & 0xFF
    for i in range(NUM_STATE_INPUTS):
        index = (i * 8 + position) * 256 + registers[R_STATES + i]
        _adapt(maps, M_STATE_P + index, M_STATE_N + index, bit)
    tables[T_ORDER0 + c0] = NEXT_STATE[registers[R_STATES + ORDER0] * 2 + bit]
    tables[T_ORDER1 + ((c1 << 8) | c0)] = NEXT_STATE[registers[R_STATES + ORDER1] * 2 + bit]
    for k in range(NUM_HASHED):
        tables[registers[R_SLOTS + k] + node] = NEXT_STATE[
            registers[R_STATES + FIRST_HASHED + k] * 2 + bit]
    context = registers[R_MATCH_CTX]
    if context >= 0:
        _adapt(maps, M_MATCH_P + context, M_MATCH_N + context, bit)
    error = ((bit << 12) - registers[R_P_MIX]) * registers[R_RATE]
    w0, w1 = M_WEIGHTS + c0 * NUM_INPUTS, registers[R_SEEN_SET]
    for i in range(NUM_INPUTS):
        step = (registers[R_INPUTS + i] * error + (1 << 15)) >> 16
        maps[w0 + i] = max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, maps[w0 + i] + step))
        maps[w1 + i] = max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, maps[w1 + i] + step))
    w2 = registers[R_SIGNAL_SET]
    if w2 >= 0:
        for i in range(NUM_INPUTS):
            step = (registers[R_INPUTS + i] * error + (1 << 15)) >> 16
            maps[w2 + i] = max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, maps[w2 + i] + step))
    _adapt_apm(maps, registers[R_APM0], bit)
    _adapt_apm(maps, registers[R_APM1], bit)
    if registers[R_APM2] >= 0:
        _adapt_apm(maps, registers[R_APM2], bit)


@_inline
def _detect_record(maps, registers, history, byte, position):
    """Vote for the period at which `byte` recurs, if its last four occurrences were
    evenly spaced; adopt a period with RECORD_VOTES votes (after paq8's record model)."""
    last = M_LAST_SEEN + 4 * byte
    period = position - maps[last]
    if (period > 1 and period == maps[last] - maps[last + 1]
            and period == maps[last + 1] - maps[last + 2]
            and period == maps[last + 2] - maps[last + 3]
            and (period > 15 or (period * 6 < position and byte == history[position - 5 * period]
                                 and byte == history[position - 6 * period]))):
        if period == registers[R_CANDIDATE1]:
            registers[R_VOTES1] += 1
        elif period == registers[R_CANDIDATE2]:
            registers[R_VOTES2] += 1
        elif registers[R_VOTES1] > registers[R_VOTES2]:
            registers[R_CANDIDATE2], registers[R_VOTES2] = period, 1
        else:
            registers[R_CANDIDATE1], registers[R_VOTES1] = period, 1
        for candidate, votes in ((R_CANDIDATE1, R_VOTES1), (R_CANDIDATE2, R_VOTES2)):
            if registers[votes] > RECORD_VOTES and registers[R_RECORD] != registers[candidate]:
                registers[R_RECORD] = registers[candidate]
                registers[R_VOTES1], registers[R_VOTES2] = 0, 0
    maps[last + 3], maps[last + 2], maps[last + 1] = maps[last + 2], maps[last + 1], maps[last]
    maps[last] = position


@_inline
def _activity(difference):
    context = 0
    while context < ACTIVITY_CONTEXTS - 1 and difference >= ACTIVITY_BOUNDS[context]:
        context += 1
    return context


@_inline
def _learn_signals(maps, registers, history, byte, position):
    """Move each signal's mean |error| towards this byte's; step the LMS filter (NLMS:
    each weight by error × its sample / the window's energy)."""
    for j in range(NUM_SIGNALS):
        if registers[R_LEVEL + j]:
            index = M_SCALE + j * ACTIVITY_CONTEXTS + registers[R_ACTIVITY + j]
            error = SCALE_ONE * abs(byte - registers[R_MU + j])
            maps[index] = min(MAX_SCALE, maps[index] + ((error - maps[index]) >> SCALE_RATE))
    if position >= LMS_ORDER:
        error = byte - registers[R_MU + AUDIO_LMS]
        energy = LMS_ENERGY_FLOOR
        for i in range(LMS_ORDER):
            sample = np.int64(history[position - 1 - i]) - 128
            energy += sample * sample
        for i in range(LMS_ORDER):
            sample = np.int64(history[position - 1 - i]) - 128
            step = (error * sample * (LMS_ONE >> LMS_RATE_SHIFT)) // energy
            maps[M_LMS + i] = max(-LMS_LIMIT, min(LMS_LIMIT, maps[M_LMS + i] + step))


@_inline
def _predict_signals(maps, registers, history, position):
    """Each numeric model's predicted value, θ level and activity context for the byte
    at `position` (level 0 where it has too little history to predict)."""
    for j in range(NUM_SIGNALS):
        registers[R_LEVEL + j] = 0
    if position == 0:
        return
    w = np.int64(history[position - 1])
    width = registers[R_WIDTH] if registers[R_WIDTH] > 0 else registers[R_RECORD]
    if width > 1 and position > width:
        n = np.int64(history[position - width])
        nw = np.int64(history[position - width - 1])
        ne = np.int64(history[position - width + 1])
        if nw >= max(w, n):
            median = min(w, n)
        elif nw <= min(w, n):
            median = max(w, n)
        else:
            median = w + n - nw
        smooth = max(0, min(255, (w + n + 1) // 2 + (ne - nw) // 4))
        activity = _activity(abs(w - nw) + abs(n - nw) + abs(n - ne))
        _predict_signal(maps, registers, IMAGE_MEDIAN, median, activity)
        _predict_signal(maps, registers, IMAGE_SMOOTH, smooth, activity)
        if registers[R_SIGNALS] >= 3:
            _predict_signal(maps, registers, IMAGE_ABOVE, n, activity)
    two_back = np.int64(history[position - 2]) if position > 1 else w
    activity = _activity(2 * abs(w - two_back))
    _predict_signal(maps, registers, AUDIO_PREVIOUS, w, activity)
    registers[R_ACTIVITY + AUDIO_LMS] = activity
    if position >= LMS_ORDER:
        total = 0
        for i in range(LMS_ORDER):
            total += maps[M_LMS + i] * (np.int64(history[position - 1 - i]) - 128)
        _predict_signal(maps, registers, AUDIO_LMS, max(0, min(255, 128 + (total >> 16))),
                        activity)


@_inline
def _predict_signal(maps, registers, j, mu, activity):
    """Signal j predicts `mu`, with the spread it has learnt in this activity context."""
    registers[R_MU + j], registers[R_ACTIVITY + j] = mu, activity
    scale = maps[M_SCALE + j * ACTIVITY_CONTEXTS + activity]
    registers[R_LEVEL + j] = LEVEL_FOR_SCALE[max(0, min(MAX_SCALE, scale))]


@_inline
def _end_byte(maps, registers, history, byte):
    """The byte is known: extend the history and the contexts; follow or find a match (a
    frozen model learns no spread, LMS weight or record period, and indexes no position
    for later matches)."""
    position, frozen = registers[R_POS], registers[R_FROZEN]
    if registers[R_SIGNALS] and not frozen:
        _learn_signals(maps, registers, history, byte, position)
    history[position] = byte
    if not frozen:
        _detect_record(maps, registers, history, byte, position)
    position += 1
    registers[R_POS] = position
    registers[R_C8] = ((registers[R_C8] << 8) | (registers[R_C4] >> 24)) & M32
    registers[R_C4] = ((registers[R_C4] << 8) | byte) & M32
    letter = byte | 32
    if 97 <= letter <= 122:
        registers[R_WORD] = _combine(registers[R_WORD], letter)
    else:
        registers[R_WORD] = 0
    length = registers[R_MATCH_LEN]
    if length > 0:
        if registers[R_MATCH_BYTE] == byte:
            registers[R_MATCH_LEN] = min(length + 1, MATCH_MAX)
            registers[R_MATCH_PTR] += 1
        else:
            registers[R_MATCH_LEN] = 0
    if position >= MATCH_MIN:
        h = _combine(registers[R_C4], registers[R_C8] & 0xFFFF)
        entry = registers[R_MATCH_TABLE] + (h & registers[R_MATCH_MASK])
        if registers[R_MATCH_LEN] == 0:
            candidate = maps[entry]
            if candidate > 0:
                length = 0
                while (length < 255 and length < candidate
                       and history[candidate - 1 - length] == history[position - 1 - length]):
                    length += 1
                if length >= MATCH_MIN:
                    registers[R_MATCH_LEN], registers[R_MATCH_PTR] = length, candidate
        if not frozen:
            maps[entry] = position
    if registers[R_MATCH_LEN] > 0:
        registers[R_MATCH_BYTE] = history[registers[R_MATCH_PTR]]


@_inline
def begin_byte(tables, maps, registers, history):
    """Set up the contexts of the next byte and find their high-nibble slots."""
    c4, c8 = registers[R_C4], registers[R_C8]
    for k in range(len(HASHED_ORDERS)):
        order = HASHED_ORDERS[k]
        if order <= 4:
            registers[R_HASHES + k] = _combine(order, c4 & ((1 << (8 * order)) - 1))
        else:
            registers[R_HASHES + k] = _combine(_combine(order, c4),
                                               c8 & ((1 << (8 * (order - 4))) - 1))
    k = len(HASHED_ORDERS)
    registers[R_HASHES + k] = _combine(_combine(9, registers[R_WORD]), c4 & 0xFF)
    registers[R_HASHES + k + 1] = _combine(10, c4 & 0xFF00)
    registers[R_HASHES + k + 2] = _combine(11, c4 & 0xF0F0)
    position, period = registers[R_POS], registers[R_RECORD]
    if registers[R_SIGNALS] >= 2 and registers[R_WIDTH] > 1:
        period = registers[R_WIDTH]
    above = history[position - period] if 0 < period <= position else 0
    above2 = history[position - 2 * period] if 0 < 2 * period <= position else 0
    registers[R_HASHES + k + 3] = _combine(_combine(12, period), above | (above2 << 8))
    registers[R_HASHES + k + 4] = _combine(_combine(13, period), above | ((c4 & 0xFF) << 8))
    if registers[R_SIGNALS]:
        _predict_signals(maps, registers, history, position)
    registers[R_RATE] = LEARNING_RATE + ((FIRST_LEARNING_RATE - LEARNING_RATE) * RATE_HALF_LIFE
                                         // (RATE_HALF_LIFE + position))
    registers[R_C0], registers[R_BIT] = 1, 0
    _look_up_slots(tables, registers, 1, 0, not registers[R_FROZEN], registers, R_SLOTS)


# --- whole bytes, without coding ---------------------------------------------------------


@_kernel
def learn_bytes(model, data, log2_table, costs):
    """Feed `data` to the model, as coding it would; costs[i] = −log2 P(data[i]) in bits,
    with log2_table[p] = −log2(p / 4096)."""
    tables, maps, registers, history = model
    for position in range(len(data)):
        byte = data[position]
        bits = 0.0
        for i in range(7, -1, -1):
            p = predict(tables, maps, registers)
            bit = (byte >> i) & 1
            bits += log2_table[p if bit else 4096 - p]
            learn(tables, maps, registers, history, bit)
        costs[position] = bits


@_kernel
def byte_distribution(model, out, node_p, low_slots):
    """out[b] = P(next byte = b), from the 255 node probabilities (see the module doc).
    node_p (256 floats) and low_slots (NUM_HASHED ints) are scratch."""
    tables, maps, registers, _ = model
    for c0 in range(1, 16):
        bit = 0
        while (c0 >> (bit + 1)) > 0:
            bit += 1
        node_p[c0] = node_probability(tables, maps, registers, c0, bit, registers,
                                      R_SLOTS) / 4096.0
    for high in range(16, 32):
        _look_up_slots(tables, registers, high, 1, False, low_slots, 0)
        for depth in range(4):
            for low in range(1 << depth):
                c0 = (high << depth) | low
                node_p[c0] = node_probability(tables, maps, registers, c0, 4 + depth,
                                              low_slots, 0) / 4096.0
    for byte in range(256):
        p = 1.0
        node = byte | 256
        for _ in range(8):
            parent = node >> 1
            p *= node_p[parent] if node & 1 else 1.0 - node_p[parent]
            node = parent
        out[byte] = p
