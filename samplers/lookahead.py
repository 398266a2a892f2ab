"""Lookahead sampling: score multi-byte continuations, for codecs whose units are matches.

An LZ codec (gzip, LZMA2, zstd, brotli) codes a repeat as one match token. One byte of
lookahead cannot see that: ℓ(x·b) − ℓ(x) is about the same for most b until a repeat is
a few bytes long, so horizon-1 samples are near-uniform gibberish (the paper's issue #9).
Here the candidates are hypotheses about the next `horizon` (H) bytes:

- copies: the H bytes that followed earlier occurrences of the text's suffixes (the
  longest recurring suffix, then suffixes half as long, down to MIN_SUFFIX_BYTES; most
  recent occurrence first), which is what an LZ coder codes as one match (with LZ77
  semantics, a copy may run into the bytes it produces). A copy from *anywhere* costs
  gzip about the same, so without the suffix condition samples would be patchworks of
  arbitrary fragments; following a shared suffix keeps the joins plausible, and the
  codec's code lengths choose among the copies;
- the 256 single bytes, so that anything can still be generated.

Each candidate c gets Δ(c) = ℓ(x·c) − ℓ(x) from `continuation_bits`. Candidates differ in
length, so they are compared by the cost of H bytes: the bytes a candidate leaves open are
priced at the codec's average rate on the prompt, R = ℓ(prompt) / |prompt| bits per byte
(8 for an empty prompt):

    cost(c) = Δ(c) + (H − |c|) · R.

Raw Δ would favour short candidates for leaving bytes unpaid, and bits per byte Δ/|c|
would favour any long copy however poor the fit; pricing the open bytes at what this
codec typically pays keeps one scale for all lengths. Then a beam refines the estimate:
the `beam_width` cheapest candidates still shorter than H are extended by up to
`beam_width` copies that follow them (proposed from x·c) and scored again, and a
candidate's cost becomes the cheapest of itself and its extensions. Finally one candidate
is drawn with probability ∝ 2^(−cost / T) (top-k over candidates), its first byte is
committed, and the search starts again from the longer text, so the first byte is drawn
from the candidates' marginal and the sample may leave a copy at any byte.

What to expect from gzip: continuing the current match costs almost nothing while
starting a new one costs a byte or two, so at T = 1 samples are mostly long copies of the
prompt spliced where suffixes recur: real words, little novelty. Higher T splices more
often (more novel text) and eventually admits single bytes (gibberish again);
`samplers.quality` measures both sides.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gencomp.compressor import Compressor
from samplers.choice import choose
from samplers.code_length import SINGLE_BYTES

#: Copies proposed per text (distinct strings).
MAX_COPIES = 48
#: Shortest suffix whose occurrences propose copies (when a longer one occurs at all).
MIN_SUFFIX_BYTES = 2
#: How far back copies are looked for (beyond gzip's 32 KB window, within LZMA2's).
SEARCH_BYTES = 1 << 16


def lz_copy(text: bytes, start: int, length: int) -> bytes:
    """`length` bytes copied from `text[start:]` as LZ77 does: past the end of `text`
    the copy continues from its own output."""
    copy = bytearray(text[start:start + length])
    while len(copy) < length:
        copy.append(copy[len(copy) - (len(text) - start)])
    return bytes(copy)


def longest_recurring_suffix(text: bytes, start: int, end: int) -> int:
    """Length of the longest suffix of `text` that also occurs in `text[start:end]`.
    Whether a suffix recurs is monotone in its length (a recurring suffix's own suffixes
    recur), so gallop up and bisect: O(log length) searches."""

    def recurs(length: int) -> bool:
        return length <= end - start and text.rfind(text[len(text) - length:], start, end) >= 0

    found, missing = 0, 1
    while recurs(missing):
        found, missing = missing, 2 * missing
    while missing - found > 1:
        middle = (found + missing) // 2
        found, missing = (middle, missing) if recurs(middle) else (found, middle)
    return found


def copy_proposals(text: bytes, length: int, limit: int = MAX_COPIES,
                   shorter_suffixes: bool = True) -> list[bytes]:
    """Up to `limit` distinct `length`-byte continuations that followed earlier occurrences
    of suffixes of `text`: the longest recurring suffix first, then suffixes half as long,
    down to MIN_SUFFIX_BYTES, most recent occurrence first for each. If no suffix that
    long recurs, the longest that does is used, unless `shorter_suffixes` is False."""
    search_start = max(0, len(text) - SEARCH_BYTES)
    search_end = len(text) - 1  # an occurrence must end before the text does
    suffix_length = longest_recurring_suffix(text, search_start, search_end)
    shortest = min(suffix_length, MIN_SUFFIX_BYTES) if shorter_suffixes else MIN_SUFFIX_BYTES
    proposals: dict[bytes, None] = {}
    while suffix_length >= max(shortest, 1) and len(proposals) < limit:
        suffix = text[len(text) - suffix_length:]
        position = text.rfind(suffix, search_start, search_end)
        while position >= 0 and len(proposals) < limit:
            proposals.setdefault(lz_copy(text, position + suffix_length, length))
            position = text.rfind(suffix, search_start, position + suffix_length - 1)
        suffix_length = max(suffix_length // 2, shortest) if suffix_length > shortest else 0
    return list(proposals)


class Lookahead:
    """Scores candidates for one compressor and prompt; see the module doc."""

    def __init__(self, compressor: Compressor, prompt: bytes, horizon: int, beam_width: int,
                 unit: str):
        self.compressor = compressor
        self.unit = unit
        self.horizon = horizon
        self.beam_width = beam_width
        self.open_byte_bits = (compressor.code_length_bits(prompt, unit) / len(prompt)
                               if prompt else 8.0)

    def costs(self, text: bytes, candidates: list[bytes]) -> np.ndarray:
        delta = self.compressor.continuation_bits(text, candidates, self.unit)
        open_bytes = np.array([self.horizon - len(candidate) for candidate in candidates])
        return delta + open_bytes * self.open_byte_bits

    def candidates(self, text: bytes, rng: np.random.Generator
                   ) -> tuple[list[bytes], np.ndarray]:
        """Candidate continuations of `text` and their H-byte costs."""
        candidates = list(dict.fromkeys([*copy_proposals(text, self.horizon), *SINGLE_BYTES]))
        cost = self.costs(text, candidates)
        # Cheapest first, ties in random order (a fixed order would favour low bytes).
        order = np.lexsort((rng.permutation(len(candidates)), cost))
        beam = [index for index in order
                if len(candidates[index]) < self.horizon][: self.beam_width]
        parents, extensions = [], []
        for index in beam:
            prefix = candidates[index]
            for copy in copy_proposals(text + prefix, self.horizon - len(prefix),
                                       self.beam_width, shorter_suffixes=False):
                parents.append(index)
                extensions.append(prefix + copy)
        if extensions:
            np.minimum.at(cost, parents, self.costs(text, extensions))
        return candidates, cost


def sample_lookahead(compressor: Compressor, prompt: bytes, length: int, *, horizon: int,
                     beam_width: int, temperature: float, top_k: int | None,
                     rng: np.random.Generator, unit: str, advance: Callable[[int], None]
                     ) -> bytes:
    """`length` bytes, each the first byte of a candidate drawn by its H-byte cost (code
    lengths in `unit`)."""
    lookahead = Lookahead(compressor, prompt, horizon, beam_width, unit)
    text = bytearray(prompt)
    for _ in range(length):
        candidates, cost = lookahead.candidates(bytes(text), rng)
        text.append(candidates[choose(cost, temperature, top_k, rng)][0])
        advance(1)
    return bytes(text[len(prompt):])
