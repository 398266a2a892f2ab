"""Is a text sample word-like, and is it more than a copy of its prompt? Is an image
sample as rough as the image it continues?

Two questions, because each alone is easy to game: a sampler that copies the prompt
verbatim writes only real words, and one that writes random bytes copies nothing.

- known_word_share: of the sample's words (runs of 2+ ASCII letters, lowercased; a word
  cut by the sample's end is left out, one begun in the prompt is completed from it),
  the share found in the prompt's words or in an English vocabulary: the words of the
  Canterbury corpus's four English texts (alice29, asyoulik, lcet10, plrabn12).
- copied_share: the share of the sample's bytes inside a substring of at least
  `MIN_COPY_BYTES` bytes that occurs verbatim in the prompt; novel_share = 1 − copied_share.
  longest_copy is the longest such substring (longest common substring of the two).
- novel_ngram_share: the share of the sample's byte 6-grams (each of its
  len − 5 windows, repeats counted) that occur nowhere in the prompt.

For measuring samplers on prose (benchmarks/bench_text_samples.py) the known-word share is
taken against a vocabulary that excludes the prompt's own text, so that copying a prompt's
names and misspellings earns nothing: `known_word_share(sample, prompt, vocabulary)`
counts the sample's words of `KNOWN_WORD_LETTERS`+ letters (words as above) found in
`vocabulary`, and `vocabulary_of(texts)` is the words that occur at least twice in the
given texts (once may be a typo or a fragment of markup).

Images: `roughness` is the mean absolute step between neighbouring pixels in the
generated part divided by the same in the original's, along rows and across rows
separately (steps into the generated part from the given one count). Noise gives 3-35
in both, a copy of the row above ≈ 0 across rows; a sample is plausible when both lie in
`PLAUSIBLE_ROUGHNESS`.

Audio (8-bit unsigned samples): `spectral_flatness` of the frame-averaged power spectrum
(Hann-windowed frames of 256 samples, half overlapping; geometric ÷ arithmetic mean of
the power, DC left out): white noise ≈ 0.9-1, speech 0.05-0.3, and lower still for the
paper's 8-bit speech, whose power lies mostly below 1 kHz. `loudness` is the RMS about
the 8-bit midpoint 128, so a drifting level counts as loud. A continuation is plausible
when its flatness is at most `PLAUSIBLE_FLATNESS` and its loudness lies within
`PLAUSIBLE_LOUDNESS` times the original continuation's.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gencomp.locations import data_roots

WORD = re.compile(rb"[A-Za-z]+")
MIN_WORD_LETTERS = 2
MIN_COPY_BYTES = 16
CANTERBURY_ENGLISH = ("alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt")
NGRAM_BYTES = 6
KNOWN_WORD_LETTERS = 3
#: A word counts as English if the reference texts hold it at least this often.
VOCABULARY_MIN_COUNT = 2
#: Both roughness ratios of a plausible image sample lie in this range.
PLAUSIBLE_ROUGHNESS = (0.5, 2.0)
#: The most spectral flatness, and the range of loudness ÷ the original's, of plausible
#: speech continuations.
PLAUSIBLE_FLATNESS = 0.3
PLAUSIBLE_LOUDNESS = (0.3, 3.0)
SPECTRUM_FRAME = 256


def words(text: bytes, min_letters: int = MIN_WORD_LETTERS) -> list[str]:
    return [match.group().decode().lower() for match in WORD.finditer(text)
            if len(match.group()) >= min_letters]


def vocabulary_of(texts: Iterable[bytes], min_count: int = VOCABULARY_MIN_COUNT
                  ) -> frozenset[str]:
    """Words (lowercased, `KNOWN_WORD_LETTERS`+ letters) found `min_count`+ times in
    `texts`."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words(text, KNOWN_WORD_LETTERS))
    return frozenset(word for word, count in counts.items() if count >= min_count)


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


def known_word_share(sample: bytes, prompt: bytes, vocabulary: frozenset[str]) -> float:
    """Share of the sample's words of `KNOWN_WORD_LETTERS`+ letters (completed and cut as
    in `sample_words`) found in `vocabulary` (0 for a sample without such words)."""
    generated = [word for word in sample_words(sample, prompt)
                 if len(word) >= KNOWN_WORD_LETTERS]
    return sum(word in vocabulary for word in generated) / len(generated) if generated else 0.0


def novel_ngram_share(sample: bytes, prompt: bytes, size: int = NGRAM_BYTES) -> float:
    """Share of the sample's byte `size`-grams that do not occur in the prompt (0 for a
    sample shorter than `size`)."""
    grams = [sample[start:start + size] for start in range(len(sample) - size + 1)]
    return sum(gram not in prompt for gram in grams) / len(grams) if grams else 0.0


@dataclass(frozen=True)
class SampleQuality:
    words: int
    known_word_share: float
    copied_share: float
    novel_share: float
    longest_copy: int
    novel_ngram_share: float
    vocabulary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.known_word_share:.0%} of {self.words} words known ({self.vocabulary}), "
                f"{self.novel_share:.0%} not copied from the prompt "
                f"(longest copy {self.longest_copy} bytes), "
                f"{self.novel_ngram_share:.0%} of 6-grams new")


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
        novel_ngram_share=novel_ngram_share(sample, prompt),
        vocabulary="prompt + Canterbury English" if english else "prompt only",
    )


def mean_step(image: np.ndarray, axis: int, first: tuple[int, int]) -> float:
    """Mean |step| along `axis` over the steps that end in the part of `image` from row
    first[0], column first[1] on."""
    steps = np.abs(np.diff(image.astype(np.int64), axis=axis))
    rows, columns = first
    ends = steps[max(rows - 1, 0) if axis == 0 else rows:, max(columns - 1, 0)
                 if axis == 1 else columns:]
    return float(ends.mean())


def textured(image: np.ndarray) -> bool:
    """Whether `image` steps by a grey level or more on average both along and across rows:
    in a flatter one a ratio of steps means nothing."""
    return min(mean_step(image, axis, (0, 0)) for axis in (0, 1)) >= 1


def roughness(generated: np.ndarray, original: np.ndarray, first: tuple[int, int]
              ) -> tuple[float, float]:
    """(along rows, across rows): the mean step of the part generated from row first[0],
    column first[1] on, ÷ the original's there."""
    return tuple(mean_step(generated, axis, first) / max(mean_step(original, axis, first), 1e-9)
                 for axis in (1, 0))


def plausible_roughness(ratios: tuple[float, float]) -> bool:
    low, high = PLAUSIBLE_ROUGHNESS
    return all(low <= ratio <= high for ratio in ratios)


def spectral_flatness(samples: np.ndarray, frame: int = SPECTRUM_FRAME) -> float:
    """Flatness of the frame-averaged power spectrum of 8-bit unsigned `samples`."""
    signal = samples.astype(np.float64) - 128
    frames = np.lib.stride_tricks.sliding_window_view(signal, frame)[::frame // 2]
    power = (np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2).mean(axis=0)[1:]
    power = np.maximum(power, 1e-12)
    return float(np.exp(np.log(power).mean()) / power.mean())


def loudness(samples: np.ndarray) -> float:
    """RMS of 8-bit unsigned `samples` about 128."""
    return float(np.sqrt(np.mean((samples.astype(np.float64) - 128) ** 2)))
