"""Context mixing: a paq/lpaq-style model that learns online, compiled (numba), integers only.

Like PPM, lpaq or paq it starts knowing nothing and learns from the bytes it has seen: no
training, no weights to ship. It predicts one bit at a time (`predictors/cm_kernels.py`):

- Contexts: orders 0, 1, 2, 3, 4 and 6, the current word, a sparse context (the byte two
  back), a coarse one (the high nibbles of the last two bytes) and two record contexts
  (the byte one detected period back, e.g. the pixel above in an image or the field above
  in a table). Each owns a bit-history state per node of the byte tree, in hashed tables
  with 8-bit checks (orders ≥ 2).
- State maps turn each state into a probability, learned online; a match model predicts
  the byte that followed the longest earlier occurrence of the recent bytes.
- Numeric models (`signals`, on in the cm compressor): the bytes read as pixels of an
  image `width` wide (LOCO-I's median edge detector, a smooth average, the pixel above;
  the record contexts then read the row above at that width) and as audio
  samples (a normalised LMS filter, the last sample), each predicting a two-sided
  geometric distribution around its value, its spread learnt per context of local
  activity. They need no training, so a fresh model of a 2 KB patch or stretch of speech
  gains from its first bytes; on text the mixer learns to leave them out.
- A logistic mixer combines their stretched probabilities with the sum of two weight
  sets, one per node and one per (bit position, how many contexts have been seen there);
  two APM/SSE stages (by node, and by node and previous byte) refine the result.

A file compressor codes these bits with a binary arithmetic coder
(`gencomp/codecs/cm_coder.py`). As a `Predictor` (what the samplers and the generic code
lengths use) it yields whole-byte distributions: the products of its node probabilities
along each byte's path, which by the kernels' design (see there) are exactly the ones
coding uses, computed from the model as it stands before the byte.

Sizes: `table_bits` sets the hashed tables (2^table_bits slots of 16 bytes for each of
the NUM_HASHED contexts), the match table and one APM. A compressor picks it from the
length of what one model learns (a chunk, or a whole file), so that a 2 KB chunk gets a
small model it can clear quickly and a file gets room; it is part of the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from gencomp.limits import check_model_memory, format_size
from predictors import cm_kernels
from predictors.base import Predictor

#: Bumped whenever the arithmetic changes: payloads record it through the fingerprint.
#: (Algorithm 1 is `predictors.cm_legacy`.)
ALGORITHM_VERSION = 2
#: Versions of the numeric models (`signals`). 2 also reads its two record contexts at the
#: row width it is given, the pixel above in an image: in a 2 KB patch the record model
#: rarely detects a period, so version 1 had no context of the row above (patch samples
#: plausible in 80 % of tune crops against 73 %; rates within 0.3 point). 3 adds a
#: numeric model of the pixel above, against the horizontal streaks of models that lean
#: on the pixel to the left (`cm_kernels`). Payloads record the version through the
#: fingerprint, so those of earlier versions still decode.
SIGNALS_VERSIONS = (3, 2, 1)  # the current one first
SIGNALS_VERSION = SIGNALS_VERSIONS[0]
#: The size a model of a whole stream gets: 2^20 slots of 16 bytes per hashed context,
#: about 155 MiB in all.
STREAM_TABLE_BITS = 20
#: −log2(p / 4096) for p = 0 … 4096 (index 0 is never used).
LOG2_COST = np.concatenate([[0.0], -np.log2(np.arange(1, 4097) / 4096.0)])
#: History a predictor state starts with room for (it grows by doubling).
INITIAL_CAPACITY = 1 << 16


def table_bits_for(length: int | None) -> int:
    """The model size for learning `length` bytes (None: a stream of any length): twice
    as many slots per context as bytes, within the kernels' limits."""
    if length is None:
        return STREAM_TABLE_BITS
    return min(STREAM_TABLE_BITS, max(cm_kernels.MIN_TABLE_BITS, (2 * length - 1).bit_length()))


class ContextMixingPredictor(Predictor):
    """The context-mixing model as a `Predictor`; `table_bits` sizes it (module doc)."""

    name = "cm"
    batch_independent = True

    def __init__(self, table_bits: int = STREAM_TABLE_BITS, signals: int = 0,
                 width: int = 0) -> None:
        """`signals`: the numeric models' version (SIGNALS_VERSIONS), 0 without them."""
        lowest, highest = cm_kernels.MIN_TABLE_BITS, cm_kernels.MAX_TABLE_BITS
        if (not isinstance(table_bits, int) or isinstance(table_bits, bool)
                or not lowest <= table_bits <= highest):
            raise ValueError(f"table_bits must be an integer from {lowest} to {highest}, "
                             f"got {table_bits!r}")
        if not isinstance(width, int) or isinstance(width, bool) or not 0 <= width <= 1 << 20:
            raise ValueError(f"width must be an integer from 0 to {1 << 20}, got {width!r}")
        if isinstance(signals, bool) or signals not in (0, *SIGNALS_VERSIONS):
            raise ValueError(f"signals must be 0 or a version in {SIGNALS_VERSIONS}, got "
                             f"{signals!r}")
        self.table_bits = table_bits
        self.signals = signals
        self.width = width if self.signals else 0

    @property
    def config(self) -> dict[str, Any]:
        """What decides the probabilities: the text-only model's and version 1's settings
        are written as they were before later versions came (their fingerprints did not
        change)."""
        if not self.signals:
            return {"table_bits": self.table_bits}
        return {"table_bits": self.table_bits,
                "signals": True if self.signals == 1 else self.signals, "width": self.width}

    @property
    def fingerprint(self) -> str:
        described = {"predictor": self.name, "algorithm": ALGORITHM_VERSION, **self.config}
        text = json.dumps(described, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def memory_bytes(self) -> int:
        """What one model takes, its history not counted."""
        return cm_kernels.model_bytes(self.table_bits)

    def new_model(self, capacity: int) -> cm_kernels.CMModel:
        """A fresh model with room for `capacity` bytes of history (the bytes it learns:
        its match and record models look back anywhere in them), tables and history checked
        against the model memory budget (`gencomp.limits`) first."""
        check_model_memory(self.memory_bytes + capacity,
                           f"cm (table_bits {self.table_bits}) with {format_size(capacity)} "
                           "of history")
        return cm_kernels.new_model(self.table_bits, capacity, self.signals, self.width)

    def code_lengths(self, data: bytes) -> np.ndarray:
        """−log2 p of every byte of `data` in bits, learnt from its start: what coding it
        costs, up to the coder's last byte."""
        costs = np.zeros(len(data))
        cm_kernels.learn_bytes(self.new_model(len(data)), np.frombuffer(data, dtype=np.uint8),
                               LOG2_COST, costs)
        return costs

    # --- the Predictor protocol (one model per sequence) --------------------------------

    def start(self, batch_size: int) -> tuple[list[cm_kernels.CMModel], np.ndarray]:
        models = [self.new_model(INITIAL_CAPACITY) for _ in range(batch_size)]
        return models, np.stack([_distribution(model) for model in models])

    def step(self, state: list[cm_kernels.CMModel], symbols: np.ndarray) -> np.ndarray:
        return self.prime(state, np.asarray(symbols, dtype=np.uint8)[:, None])

    def prime(self, state: list[cm_kernels.CMModel], context: np.ndarray) -> np.ndarray:
        if context.shape[1] == 0:
            raise ValueError("prime needs at least one context byte")
        rows = []
        for row, model in enumerate(state):
            model = state[row] = _with_room(model, context.shape[1])
            data = np.ascontiguousarray(context[row], dtype=np.uint8)
            data.flags.writeable = False  # the type every kernel call is compiled for
            cm_kernels.learn_bytes(model, data, LOG2_COST, np.zeros(len(data)))
            rows.append(_distribution(model))
        return np.stack(rows)

    def freeze(self, state: list[cm_kernels.CMModel]) -> None:
        """Bytes fed from now on extend the contexts (history, hashes, the match being
        followed) but nothing learns: no bit history, adaptive probability, mixer weight,
        APM, numeric model or match index changes, and no table slot is claimed."""
        for model in state:
            model.registers[cm_kernels.R_FROZEN] = 1

    def sequence_distributions(self, sequence: bytes) -> np.ndarray:
        model = self.new_model(len(sequence))
        rows = np.zeros((len(sequence), 256))
        data = np.frombuffer(sequence, dtype=np.uint8)
        for position in range(len(sequence)):
            rows[position] = _distribution(model)
            cm_kernels.learn_bytes(model, data[position:position + 1], LOG2_COST, np.zeros(1))
        return rows

    def symbol_log2_probs(self, sequences: list[bytes]) -> list[np.ndarray]:
        """log2 p of every byte, straight from the bit costs (the same probabilities as
        `sequence_distributions`, without the 255-node evaluations)."""
        return [-self.code_lengths(sequence) for sequence in sequences]


def _with_room(model: cm_kernels.CMModel, extra: int) -> cm_kernels.CMModel:
    """`model`, its history grown (doubling) to hold `extra` more bytes."""
    needed = int(model.registers[cm_kernels.R_POS]) + extra
    capacity = len(model.history)
    if needed <= capacity:
        return model
    while capacity < needed:
        capacity *= 2
    return cm_kernels.with_capacity(model, capacity)


def _distribution(model: cm_kernels.CMModel) -> np.ndarray:
    out = np.empty(256)
    cm_kernels.byte_distribution(model, out, np.empty(256),
                                 np.empty(cm_kernels.NUM_HASHED, dtype=np.int64))
    return out
