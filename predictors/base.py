"""The predictor protocol: next-byte distributions over 256 symbols.

One computation serves every caller. The coder's encoder and decoder, `code_length_bits`,
and the exact sampler all obtain probabilities through `start` + `step` on a batch of
sequences, so the decoder sees bit-for-bit the probabilities the encoder used. (The paper's
code scores the encode side in one parallel pass and the decode side incrementally; the
float results differ and decoding breaks — its issues #20/#21. We never mix the two for
coding.)

Batch composition is part of "the same computation": a batched matrix product may round
differently for a different batch size, so a coder must step the same groups of sequences
when decoding as it did when encoding (`gencomp.codecs.predictive` records the group size).
A predictor whose every sequence is computed alone, in a fixed order of operations, says
so with `batch_independent`; then `sequence_distributions` (all of one sequence's rows at
once, which an encoder can use because it knows every byte) equals stepping it, bit for
bit, and a coder may step any grouping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

State = Any


class Predictor(ABC):
    """A model of the next byte given the previous ones, stepped on batches of sequences.

    `start(batch_size)` returns a fresh state (no bytes seen) and the first distribution;
    `step(state, symbols)` feeds one byte per sequence and returns the next distribution.
    Distributions are float64 arrays of shape (batch, 256), each row positive and summing
    to 1 (within float rounding). Steps must be deterministic: the same inputs give the
    same bits.
    """

    name: str = ""
    #: True when a sequence's distributions do not depend on the other sequences of its
    #: batch, and `sequence_distributions` equals stepping bit for bit.
    batch_independent: bool = False

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this predictor (not the weights)."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A hex digest of everything that determines the predictions (config + weights).
        Containers record it; decoding with a different fingerprint is refused."""

    @property
    def num_parameters(self) -> int:
        """Learned parameters (0 for a model that learns only online from the data)."""
        return 0

    @property
    def context_length(self) -> int | None:
        """The most bytes one sequence can hold (a Transformer's context); None: no limit."""
        return None

    @abstractmethod
    def start(self, batch_size: int) -> tuple[State, np.ndarray]:
        """Fresh state for `batch_size` sequences and their first-byte distributions."""

    @abstractmethod
    def step(self, state: State, symbols: np.ndarray) -> np.ndarray:
        """Feed one byte per sequence (uint8 array of shape (batch,)), updating `state`
        in place; return the distributions of the next byte, shape (batch, 256)."""

    def prime(self, state: State, context: np.ndarray) -> np.ndarray:
        """Feed a (batch, length) uint8 array of context bytes; return the distribution
        after the last one. Default: `step` byte by byte, the exact computation."""
        probabilities = None
        for position in range(context.shape[1]):
            probabilities = self.step(state, context[:, position])
        if probabilities is None:
            raise ValueError("prime needs at least one context byte")
        return probabilities

    def freeze(self, state: State) -> None:
        """Stop learning: later steps extend the context of `state`'s sequences, and the
        model's parameters stay what the bytes so far made them. Default: nothing to do,
        for a model that does not learn as it reads (a trained network)."""
        return None

    def sequence_distributions(self, sequence: bytes) -> np.ndarray:
        """(len(sequence), 256): row t is the distribution of byte t given bytes < t, as
        `start` and `step` on a batch of this one sequence give it."""
        state, probabilities = self.start(1)
        rows = [probabilities[0]]
        for symbol in np.frombuffer(sequence[:-1], dtype=np.uint8):
            rows.append(self.step(state, np.array([symbol]))[0])
        return np.stack(rows)[: len(sequence)]

    def distribution_blocks(self, sequence: bytes) -> Iterator[np.ndarray]:
        """`sequence_distributions` in consecutive blocks of rows, for a predictor that
        scores long sequences a piece at a time (default: one block)."""
        yield self.sequence_distributions(sequence)

    def symbol_log2_probs(self, sequences: Sequence[bytes]) -> list[np.ndarray]:
        """log2 p(x_t | x_<t) of every byte of every sequence, stepped as one batch.

        Sequences shorter than the longest are padded with zeros past their end; the padded
        positions are dropped from the result. This is the computation the coder uses, so
        Σ −log2 p here is exactly the ideal code length of what the encoder codes. (A
        `batch_independent` predictor scores each sequence whole: the same bits.)
        """
        if self.batch_independent:
            return [self._sequence_log2_probs(sequence) for sequence in sequences]
        if not sequences:
            return []
        longest = max(len(sequence) for sequence in sequences)
        batch = np.zeros((len(sequences), longest), dtype=np.uint8)
        for row, sequence in enumerate(sequences):
            batch[row, : len(sequence)] = np.frombuffer(sequence, dtype=np.uint8)
        log2_probs = np.zeros((len(sequences), longest), dtype=np.float64)
        state, probabilities = self.start(len(sequences))
        rows = np.arange(len(sequences))
        for position in range(longest):
            symbols = batch[:, position]
            log2_probs[:, position] = np.log2(probabilities[rows, symbols])
            if position + 1 < longest:
                probabilities = self.step(state, symbols)
        return [log2_probs[row, : len(sequence)] for row, sequence in enumerate(sequences)]

    def _sequence_log2_probs(self, sequence: bytes) -> np.ndarray:
        symbols, pieces, offset = np.frombuffer(sequence, dtype=np.uint8), [np.zeros(0)], 0
        for rows in self.distribution_blocks(sequence):
            pieces.append(np.log2(rows[np.arange(len(rows)), symbols[offset:offset + len(rows)]]))
            offset += len(rows)
        return np.concatenate(pieces)
