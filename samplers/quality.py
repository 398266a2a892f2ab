"""Is a text sample word-like, and is it more than a copy of its prompt?

Two questions, because each alone is easy to game: a sampler that copies the prompt
verbatim writes only real words, and one that writes random bytes copies nothing.

- known_word_share: of the sample's words (runs of 2+ ASCII letters, lowercased; a word
  cut by the sample's end is left out, one begun in the prompt is completed from it),
  the share found in the prompt's words or in an English vocabulary: the words of the
  Canterbury corpus's four English texts (alice29, asyoulik, lcet10, plrabn12).
- copied_share: the share of the sample's bytes inside a substring of at least
  `MIN_COPY_BYTES` bytes that occurs verbatim in the prompt; novel_share = 1 − copied_share.
  longest_copy is the longest such substring (longest common substring of the two).
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gencomp.locations import data_roots

WORD = re.compile(rb"[A-Za-z]+")
MIN_WORD_LETTERS = 2
MIN_COPY_BYTES = 16
CANTERBURY_ENGLISH = ("alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt")


def words(text: bytes) -> list[str]:
    return [match.group().decode().lower() for match in WORD.finditer(text)
            if len(match.group()) >= MIN_WORD_LETTERS]


@functools.cache
def english_vocabulary(data_dir: Path | None = None) -> frozenset[str]:
    """Words of the Canterbury corpus's English texts, found under `data_dir` or where
    data is looked for (`gencomp.locations`); empty if the corpus is not there."""
    for root in data_roots(data_dir):
        folder = Path(root) / "text" / "canterbury"
        if all((folder / name).is_file() for name in CANTERBURY_ENGLISH):
            return frozenset(word for name in CANTERBURY_ENGLISH
                             for word in words((folder / name).read_bytes()))
    return frozenset()


def sample_words(sample: bytes, prompt: bytes) -> list[str]:
    """The sample's words: the first one completed from the prompt, a cut-off last one
    dropped."""
    lead = re.search(rb"[A-Za-z]*\Z", prompt).group() if sample[:1].isalpha() else b""
    text = lead + sample
    if text[-1:].isalpha():
        text = text[: len(text) - len(re.search(rb"[A-Za-z]*\Z", text).group())]
    return words(text)


def copied_spans(sample: bytes, prompt: bytes) -> tuple[int, int]:
    """(bytes of the sample inside verbatim prompt substrings of ≥ MIN_COPY_BYTES,
    longest such substring). The longest match starting at i + 1 is at least the one at
    i minus a byte, so the scan does O(len(sample)) substring searches."""
    covered = [False] * len(sample)
    longest = match = 0
    for start in range(len(sample)):
        match = max(match - 1, 0)
        while start + match < len(sample) and sample[start:start + match + 1] in prompt:
            match += 1
        longest = max(longest, match)
        if match >= MIN_COPY_BYTES:
            covered[start:start + match] = [True] * match
    return sum(covered), longest


@dataclass(frozen=True)
class SampleQuality:
    words: int
    known_word_share: float
    copied_share: float
    novel_share: float
    longest_copy: int
    vocabulary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.known_word_share:.0%} of {self.words} words known ({self.vocabulary}), "
                f"{self.novel_share:.0%} not copied from the prompt "
                f"(longest copy {self.longest_copy} bytes)")


def measure(sample: bytes, prompt: bytes,
            vocabulary: frozenset[str] | None = None) -> SampleQuality:
    """Quality of a text sample given its prompt (see the module doc)."""
    english = english_vocabulary() if vocabulary is None else vocabulary
    known = english | set(words(prompt))
    generated = sample_words(sample, prompt)
    copied, longest = copied_spans(sample, prompt)
    copied_share = copied / len(sample) if sample else 0.0
    return SampleQuality(
        words=len(generated),
        known_word_share=(sum(word in known for word in generated) / len(generated)
                          if generated else 0.0),
        copied_share=copied_share,
        novel_share=1.0 - copied_share,
        longest_copy=longest,
        vocabulary="prompt + Canterbury English" if english else "prompt only",
    )
