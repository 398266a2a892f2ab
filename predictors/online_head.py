"""The Transformer over a stream of any length, its output layer learning as it reads.

A trained Transformer sees only its context (2,048 bytes), and the 200K model gains little
from more of it: sliding windows code the held-out tail of the enwik8 sample at 30.34 %,
its independent 2 KB chunks at 30.44 %. What a file offers beyond the context is its own
statistics: names, markup and words that recur. Here the network slides over the stream
in windows, as the compressor's windows do (`gencomp.codecs.predictive`: the first window
predicts up to a context of bytes, each later one restarts on the last context − stride
bytes and predicts the next stride), and the output layer, softmax(h @ W + b) of the last
layer's output h, takes one SGD step on −ln p(x_t) after every byte: dynamic evaluation
(Krause et al., 2018) of the last layer only. The gradient of the logits is
p − onehot(x_t), so a step is (p − onehot) ⊗ h, 16 K multiply-adds a byte: about 1 % of
the network's 1.5 MFLOP.

`HEAD_LEARNING_RATE` was chosen on the first half of the held-out tail (SGD rates 0.001 to
0.005, with and without decay towards the trained head; 0.002 coded it best) and checked
on the second half (`benchmarks/bench_file_compression.py --transformer` reports both).

Exactness: every update is elementwise float32 arithmetic in a fixed order
(`transformer_kernels.learn_head`), and the hidden states come from the kernels, whose
whole-window scoring (the encoder, `distribution_blocks`) and stepping (the decoder,
`start`/`step`) give the same bits; so encoder and decoder hold the same head at every
byte, on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictors.base import Predictor
from predictors.transformer import BEGIN_TOKEN, TransformerPredictor
from predictors.transformer_arrays import KernelCache, allocate_scratch

#: The output layer's SGD step size (module doc).
HEAD_LEARNING_RATE = 0.002


@dataclass
class _Stream:
    """One sequence: its window's cache, the head as it has learnt so far, and the last
    layer's output and the distribution before the byte to come."""

    cache: KernelCache
    head: np.ndarray
    head_bias: np.ndarray
    hidden: np.ndarray          # (1, dim)
    probabilities: np.ndarray   # (1, 256)
    history: bytearray          # the stream's last context − stride bytes (at least)
    seen: int = 0               # bytes fed so far
    position: int = 1           # the window's next position (the begin token took 0)
    learning: bool = True


class OnlineHeadTransformer(Predictor):
    """`transformer` (a kernels engine) slid over an unbounded stream in windows, each later
    one predicting `stride` bytes (default: half the context) after the context − stride
    before them, with an output layer that learns online at `rate` (module doc)."""

    batch_independent = True

    def __init__(self, transformer: TransformerPredictor, stride: int | None = None,
                 rate: float = HEAD_LEARNING_RATE) -> None:
        if not transformer.batch_independent:
            raise ValueError("the online head runs on the CPU kernels")
        context = transformer.context_length
        self.transformer = transformer
        self.name = transformer.name
        self.stride = context // 2 if stride is None else stride
        if not 1 <= self.stride <= context:
            raise ValueError(f"stride must be 1 to {context}, got {self.stride}")
        self.rate = np.float32(rate)
        self._weights = transformer.kernel_weights
        self._kernels = transformer.kernels
        self._fingerprint = hashlib.sha256(
            f"{transformer.fingerprint}+online-head:{float(self.rate)!r}:{self.stride}"
            .encode()).hexdigest()

    @property
    def config(self) -> dict[str, Any]:
        return {**self.transformer.config, "stride": self.stride,
                "head_learning_rate": float(self.rate)}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def num_parameters(self) -> int:
        return self.transformer.num_parameters

    def _restarts(self, position: int) -> bool:
        """Whether byte `position` of the stream is the first a later window predicts."""
        context = self.transformer.context_length
        return position >= context and (position - context) % self.stride == 0

    def _windows(self, length: int) -> Iterator[tuple[int, int, int]]:
        """(first byte fed, first byte predicted, end) of each window over `length` bytes."""
        context = self.transformer.context_length
        yield 0, 0, min(context, length)
        for first in range(context, length, self.stride):
            yield first - (context - self.stride), first, min(first + self.stride, length)

    def _hidden(self, cache: KernelCache, tokens: np.ndarray, start: int) -> np.ndarray:
        scratch = allocate_scratch(self._weights, len(tokens))
        self._kernels.extend_sequence_hidden(self._weights, cache, 0, tokens, start, scratch)
        return scratch.states

    def _predict(self, stream: _Stream) -> None:
        self._kernels.online_head(stream.head, stream.head_bias, stream.hidden,
                                  np.full(1, -1), self.rate, stream.probabilities)

    def start(self, batch_size: int) -> tuple[list[_Stream], np.ndarray]:
        streams = []
        for _ in range(batch_size):
            cache = self.transformer.allocate_cache(1)
            stream = _Stream(cache, self._weights.head.copy(), self._weights.head_bias.copy(),
                             self._hidden(cache, np.full(1, BEGIN_TOKEN), 0),
                             np.empty((1, 256)), bytearray())
            self._predict(stream)
            streams.append(stream)
        return streams, np.concatenate([stream.probabilities for stream in streams])

    def step(self, state: list[_Stream], symbols: np.ndarray) -> np.ndarray:
        context = self.transformer.context_length
        for stream, symbol in zip(state, symbols, strict=True):
            if stream.learning:
                self._kernels.learn_head(stream.head, stream.head_bias, stream.hidden[0],
                                         stream.probabilities[0], int(symbol), self.rate)
            stream.history.append(int(symbol))
            del stream.history[:-context]
            stream.seen += 1
            if self._restarts(stream.seen):
                stream.cache = self.transformer.allocate_cache(1)
                fed = np.frombuffer(stream.history[len(stream.history) - (context - self.stride):],
                                    np.uint8)
                tokens = np.concatenate([[BEGIN_TOKEN], fed]).astype(np.int64)
                stream.hidden = self._hidden(stream.cache, tokens, 0)[-1:]
                stream.position = len(tokens)
            else:
                stream.hidden = self._hidden(stream.cache, np.full(1, int(symbol)),
                                             stream.position)
                stream.position += 1
            self._predict(stream)
        return np.concatenate([stream.probabilities for stream in state])

    def freeze(self, state: list[_Stream]) -> None:
        for stream in state:
            stream.learning = False

    def distribution_blocks(self, sequence: bytes) -> Iterator[np.ndarray]:
        """Window by window, the rows `start` and `step` give: each window's hidden states
        scored at once, then the head predicts and learns them one by one."""
        if not sequence:
            return
        symbols = np.frombuffer(sequence, dtype=np.uint8)
        head, head_bias = self._weights.head.copy(), self._weights.head_bias.copy()
        for start, first, end in self._windows(len(sequence)):
            tokens = np.concatenate([[BEGIN_TOKEN], symbols[start:end - 1]]).astype(np.int64)
            cache = self.transformer.allocate_cache(1)
            hidden = np.ascontiguousarray(self._hidden(cache, tokens, 0)[first - start:])
            rows = np.empty((end - first, 256))
            self._kernels.online_head(head, head_bias, hidden,
                                      symbols[first:end].astype(np.int64), self.rate, rows)
            yield rows

    def sequence_distributions(self, sequence: bytes) -> np.ndarray:
        return np.concatenate([np.zeros((0, 256)), *self.distribution_blocks(sequence)])
