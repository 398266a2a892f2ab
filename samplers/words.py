"""Word sampling: prose continued word by word, each word drawn by the code lengths.

One byte is too short a unit for an LZ codec to judge (its units are whole matches), and
the lookahead sampler, left to gzip's taste, copies the prompt. Here the units are the
prompt's own words, each with the separator (spaces, punctuation, line breaks) that
followed it there, and the compressor chooses among them.

Tokens. A text splits into tokens (`TOKEN`): a word (ASCII letters, with inner
apostrophes or hyphens: don't, well-known) followed by the non-letters after it, or a
run of non-letters at the very start of the text. "the cat, sat" is "the ", "cat, ",
"sat". A token's word, lowercased, is its key. The text's last token is open (a prompt
may end inside it); the others are complete. The prompt must hold a complete word token
(at least two words).

Candidates W(x) for the text x so far (prompt, then what was drawn):
1. x ends inside a word (its last byte is a letter): the completions c such that
   (last token)·c is one of x's complete tokens; if there is none, a space (the fragment
   ends as a word; in enwik8 the separators of the context would offer markup).
2. Otherwise the successors: every complete token of x that follows a complete token with
   the same key as x's last token (the words seen after this word, each with its
   separator). If the rules below leave none, the distinct word tokens among x's last
   `RECENT_TOKENS` complete tokens instead.
Two rules stop verbatim copying; each counts the whole text x, prompt and sample:
- copy limit L: c is left out if x·c has a substring of L + 1 bytes that ends inside c
  and occurs in x (so no copy of the prompt, or of the sample itself, is longer than L
  bytes);
- c is left out if its key is the last token's key, or already followed that key in the
  generated part (no word twice in a row, no word pair twice: LZ codecs find repeating
  what was just written almost free).
Where the rules leave no candidate in any of the sets, they are lifted for that step (the
first non-empty set is used whole). Last, any
candidate that extends another candidate is dropped, so W(x) is prefix-free: at most one
candidate begins any continuation, and the events "x continues with c" are disjoint.

The distribution: with Δ(c) = ℓ(x·c) − ℓ(x) from `Compressor.continuation_bits` (exact
bits wherever the codec counts them),

    ρ(c | x) = 2^(−Δ(c) / T) / Σ_{c' ∈ W(x)} 2^(−Δ(c') / T),

restricted to the k cheapest candidates (ties kept) with top-k, greedy at T = 0 (see
`samplers.choice`). At T = 1 it is the compressor's own probability of each candidate,
2^(ℓ(x) − ℓ(x·c)), conditioned on x continuing with one of W(x). The drawn candidate is
appended and candidates are found again; the last word may be cut at `length` bytes.

What the parts do (benchmarks/bench_text_samples.py, README): successors keep word pairs
that occur in the prompt; an LZ codec's code lengths favour candidates that extend a
longer match (words that also fit the words before the last one) and recent ones (a
nearer match costs fewer distance bits); the copy limit trades readability against
novelty (a longer limit copies more of the prompt).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from gencomp.compressor import Compressor
from gencomp.errors import UsageError
from samplers.choice import choose

TOKEN = re.compile(rb"[A-Za-z]+(?:['-][A-Za-z]+)*[^A-Za-z]*|[^A-Za-z]+")
WORD = re.compile(rb"[A-Za-z]+(?:['-][A-Za-z]+)*")
#: The longest verbatim copy (bytes) a candidate may make. Tuned on the benchmark's tuning
#: prompts: after 32 KiB prompts 10 keeps 32-35 % of gzip's and LZMA2's 6-grams new, 9
#: keeps 40 %, with the Transformer finding both about as fluent.
DEFAULT_COPY_LIMIT = 9
#: Where successors run out, candidates are the word tokens of this many last tokens.
RECENT_TOKENS = 64


def tokenize(text: bytes) -> list[bytes]:
    """`text` as tokens (see the module doc); they join to `text`."""
    return TOKEN.findall(text)


def key_of(token: bytes) -> bytes:
    """A token's word, lowercased (b"" for a run of non-letters)."""
    match = WORD.match(token)
    return match.group().lower() if match else b""


def prefix_free(candidates: set[bytes]) -> list[bytes]:
    """The candidates that extend no other candidate, sorted. In sorted order a string
    comes right after its prefixes (and after other strings sharing them), so comparing
    each with the last one kept is enough."""
    kept: list[bytes] = []
    for candidate in sorted(candidates):
        if not kept or not candidate.startswith(kept[-1]):
            kept.append(candidate)
    return kept


class WordChain:
    """The text so far, its tokens, and its candidates (see the module doc)."""

    def __init__(self, prompt: bytes, copy_limit: int):
        self.text = bytes(prompt)
        self.tokens = tokenize(self.text)
        self.keys = [key_of(token) for token in self.tokens]
        self.copy_limit = copy_limit
        self.generated_pairs: set[tuple[bytes, bytes]] = set()
        if not any(token[:1].isalpha() for token in self.tokens[:-1]):
            raise UsageError("the words sampler writes the prompt's own words: the prompt "
                             "needs at least two words")

    def copies(self, candidate: bytes) -> bool:
        """Whether text·candidate has a copy longer than the limit ending in candidate."""
        width = self.copy_limit + 1
        joined = self.text[max(0, len(self.text) - width + 1):] + candidate
        first_end = max(width, len(joined) - len(candidate) + 1)
        return any(joined[end - width:end] in self.text
                   for end in range(first_end, len(joined) + 1))

    def allowed(self, candidates: set[bytes]) -> set[bytes]:
        last_key = self.keys[-1]
        return {candidate for candidate in candidates if not self.copies(candidate)
                and key_of(candidate) != last_key
                and (last_key, key_of(candidate)) not in self.generated_pairs}

    def candidates(self) -> list[bytes]:
        """W(text), prefix-free and sorted."""
        last, complete = self.tokens[-1], self.tokens[:-1]
        if last[-1:].isalpha():
            options = [{token[len(last):] for token in complete
                        if len(token) > len(last) and token.startswith(last)}]
            if not options[0]:
                options = [{b" "}]
        else:
            key = self.keys[-1]
            options = [{complete[index + 1] for index in range(len(complete) - 1)
                        if self.keys[index] == key},
                       {token for token in complete[-RECENT_TOKENS:] if token[:1].isalpha()}]
        for option in options:
            allowed = self.allowed(option)
            if allowed:
                return prefix_free(allowed)
        return prefix_free(next(option for option in options if option))

    def append(self, candidate: bytes) -> None:
        """Add a drawn candidate: it extends the open token or adds new ones."""
        previous_key = self.keys[-1]
        self.text += candidate
        tail = tokenize(self.tokens[-1] + candidate)
        self.tokens[-1:] = tail
        self.keys[-1:] = [key_of(token) for token in tail]
        if len(tail) > 1:
            self.generated_pairs.add((previous_key, self.keys[-1]))


def sample_words(compressor: Compressor, prompt: bytes, length: int, *, copy_limit: int,
                 temperature: float, top_k: int | None, rng: np.random.Generator,
                 unit: str, advance: Callable[[int], None]) -> bytes:
    """`length` bytes of words drawn from ρ(c | x) (see the module doc)."""
    chain = WordChain(prompt, copy_limit)
    generated = 0
    while generated < length:
        candidates = chain.candidates()
        cost = compressor.continuation_bits(chain.text, candidates, unit)
        chain.append(candidates[choose(cost, temperature, top_k, rng)])
        step = min(len(chain.text) - len(prompt), length) - generated
        advance(step)
        generated += step
    return chain.text[len(prompt):len(prompt) + length]
