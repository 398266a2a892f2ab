"""The words sampler: seeded, draws only its documented candidates, with the documented
probabilities, and refuses bad settings with a one-line error."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gencomp import get_compressor
from gencomp.cli import main
from gencomp.compressor import Compressor
from gencomp.errors import UsageError
from samplers import sample_continuation
from samplers.quality import known_word_share, vocabulary_of
from samplers.words import DEFAULT_COPY_LIMIT

# The module doc's rules, restated here so that the sampler is checked against the text of
# its documentation rather than against its own helpers.
DOC_TOKEN = re.compile(rb"[A-Za-z]+(?:['-][A-Za-z]+)*[^A-Za-z]*|[^A-Za-z]+")
DOC_WORD = re.compile(rb"[A-Za-z]+(?:['-][A-Za-z]+)*")
RECENT = 64


def doc_key(token: bytes) -> bytes:
    match = DOC_WORD.match(token)
    return match.group().lower() if match else b""


def documented_candidates(text: bytes, prompt_length: int, copy_limit: int) -> set[bytes]:
    """W(text) as the module doc defines it."""
    spans = [(match.start(), match.group()) for match in DOC_TOKEN.finditer(text)]
    tokens = [token for _, token in spans]
    last, complete = tokens[-1], tokens[:-1]
    generated_pairs = {(doc_key(spans[i][1]), doc_key(spans[i + 1][1]))
                       for i in range(len(spans) - 1) if spans[i + 1][0] >= prompt_length}

    def allowed(candidate: bytes) -> bool:
        joined = text + candidate
        ends_inside = range(max(len(text) + 1, copy_limit + 1), len(joined) + 1)
        copies = any(joined[end - copy_limit - 1:end] in text for end in ends_inside)
        repeats = doc_key(candidate) == doc_key(last)
        return not copies and not repeats and \
            (doc_key(last), doc_key(candidate)) not in generated_pairs

    if last[-1:].isalpha():
        options = [{token[len(last):] for token in complete
                    if token.startswith(last) and len(token) > len(last)}]
        if not options[0]:
            options = [{b" "}]
    else:
        options = [{complete[i + 1] for i in range(len(complete) - 1)
                    if doc_key(complete[i]) == doc_key(last)},
                   {token for token in complete[-RECENT:] if token[:1].isalpha()}]
    chosen = next((kept for kept in ({c for c in option if allowed(c)} for option in options)
                   if kept), None) or next(option for option in options if option)
    return {c for c in chosen if not any(c != other and c.startswith(other) for other in chosen)}


class Recording(Compressor):
    """A real codec that remembers what the sampler asked it to score."""

    def __init__(self, inner: Compressor):
        self.inner = inner
        self.name = inner.name
        self.length_units = inner.length_units
        self.calls: list[tuple[bytes, list[bytes]]] = []

    @property
    def params(self) -> dict[str, Any]:
        return self.inner.params

    def compress(self, data: bytes) -> bytes:
        return self.inner.compress(data)

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        return self.inner.decompress(payload, max_output_bytes)

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        self.calls.append((context, list(candidates)))
        return self.inner.continuation_bits(context, candidates, unit)


def test_same_seed_same_sample_and_seeds_differ(alice: bytes) -> None:
    prompt = alice[20000:21948]
    for name in ("gzip", "bz2"):
        compressor = get_compressor(name)
        first, again, other = (sample_continuation(compressor, prompt, 60, "words", seed=seed)
                               for seed in (5, 5, 6))
        assert first == again and len(first) == 60
        assert first != other


@pytest.mark.parametrize("copy_limit, temperature", [(10, 1.0), (6, 2.0)])
def test_only_documented_candidates_are_drawn(alice: bytes, copy_limit: int,
                                              temperature: float) -> None:
    prompt = alice[30000:31500] + b"and the Que"  # ends inside a word
    recording = Recording(get_compressor("gzip"))
    sample = sample_continuation(recording, prompt, 120, "words", seed=1,
                                 copy_limit=copy_limit, temperature=temperature)
    contexts = [context for context, _ in recording.calls]
    assert contexts[0] == prompt and len(contexts) > 10
    following = [*contexts[1:], prompt + sample]
    for step, (context, candidates) in enumerate(recording.calls):
        assert set(candidates) == documented_candidates(context, len(prompt), copy_limit)
        assert len(set(candidates)) == len(candidates)
        drawn = following[step][len(context):]
        if step < len(contexts) - 1:
            assert drawn in candidates
        else:  # the last one is cut at the sample's length
            assert any(candidate.startswith(drawn) for candidate in candidates)


def test_draws_follow_the_documented_distribution(alice: bytes) -> None:
    """ρ(c | x) ∝ 2^(−(ℓ(x·c) − ℓ(x)) / T) over W(x): candidates and lengths computed here
    by recompression, frequencies of the first candidate over 600 seeds."""
    prompt = alice[60000:62000].rsplit(b" to ", 1)[0] + b" to "
    gzip = get_compressor("gzip")
    candidates = sorted(documented_candidates(prompt, len(prompt), DEFAULT_COPY_LIMIT))
    assert 4 <= len(candidates) <= 40
    base = gzip.code_length_bits(prompt, "bits")
    delta = np.array([gzip.code_length_bits(prompt + c, "bits") - base for c in candidates])
    for temperature in (1.0, 3.0):
        expected = np.exp2(-(delta - delta.min()) / temperature)
        expected /= expected.sum()
        longest = max(map(len, candidates))
        draws = Counter()
        for seed in range(600):
            sample = sample_continuation(gzip, prompt, longest, "words", seed=seed,
                                         temperature=temperature)
            (first,) = [c for c in candidates if sample.startswith(c)]  # prefix-free
            draws[first] += 1
        observed = np.array([draws[c] for c in candidates])
        counts = 600 * expected
        bins = counts >= 5  # chi-square over the well-filled bins, the rest as one
        statistic = float(np.sum((observed[bins] - counts[bins]) ** 2 / counts[bins]))
        rest, rest_expected = observed[~bins].sum(), counts[~bins].sum()
        if rest_expected >= 5:
            statistic += (rest - rest_expected) ** 2 / rest_expected
        freedom = int(bins.sum()) - (0 if rest_expected >= 5 else 1)
        # Wilson–Hilferty: the chi-square quantile at p = 0.9999
        bound = freedom * (1 - 2 / (9 * freedom) + 3.72 * math.sqrt(2 / (9 * freedom))) ** 3
        assert statistic < bound, (temperature, statistic, bound)
    uniform = np.full(len(candidates), 1 / len(candidates))
    assert np.abs(expected - uniform).sum() > 0.2  # the test could tell the formula apart


def test_greedy_and_top_k_keep_the_cheapest(alice: bytes) -> None:
    prompt = alice[60000:62000].rsplit(b" to ", 1)[0] + b" to "
    gzip = get_compressor("gzip")
    candidates = sorted(documented_candidates(prompt, len(prompt), DEFAULT_COPY_LIMIT))
    cost = gzip.continuation_bits(prompt, candidates, "bits")
    cheapest = {c for c, bits in zip(candidates, cost, strict=True) if bits == cost.min()}
    top = {c for c, bits in zip(candidates, cost, strict=True) if bits <= np.sort(cost)[2]}
    longest = max(map(len, candidates))
    for seed in range(20):
        greedy = sample_continuation(gzip, prompt, longest, "words", seed=seed, temperature=0)
        assert any(greedy.startswith(c) for c in cheapest)
        kept = sample_continuation(gzip, prompt, longest, "words", seed=seed, top_k=3,
                                   temperature=5.0)
        assert any(kept.startswith(c) for c in top)


def test_prose_continuation_reads_as_words_and_copies_little(alice: bytes,
                                                             data_dir: Path) -> None:
    """After 1,948 bytes of Alice, gzip's words are English (a vocabulary without Alice)
    and no copy from the prompt is longer than the copy limit."""
    prompt = alice[90000:91948].rsplit(b" ", 1)[0] + b" "  # completing a word may copy
    canterbury = data_dir / "text" / "canterbury"
    vocabulary = vocabulary_of([(canterbury / name).read_bytes()
                                for name in ("lcet10.txt", "plrabn12.txt", "asyoulik.txt")])
    sample = sample_continuation(get_compressor("gzip"), prompt, 100, "words", seed=0)
    assert known_word_share(sample, prompt, vocabulary) >= 0.8
    text, width = prompt + sample, DEFAULT_COPY_LIMIT + 1
    assert not any(text[end - width:end] in prompt
                   for end in range(len(prompt) + 1, len(text) + 1))


@pytest.mark.parametrize("settings, message", [
    ({"copy_limit": 0}, "copy limit"), ({"copy_limit": -2}, "copy limit"),
    ({"copy_limit": 2.5}, "copy limit"), ({"copy_limit": True}, "copy limit"),
    ({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top-k"),
])
def test_bad_settings_are_usage_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sample_continuation(get_compressor("gzip"), b"the cat sat on the mat. ", 10, "words",
                            **settings)


@pytest.mark.parametrize("prompt", [b"", b"word", b"  ...  ", b"12345", b"word. ",
                                    b"12 word"])
def test_prompt_without_two_words_is_a_usage_error(prompt: bytes) -> None:
    with pytest.raises(UsageError, match="two words"):
        sample_continuation(get_compressor("gzip"), prompt, 10, "words")


def test_cli_words_sampler_and_bad_copy_limit(tmp_path: Path, alice: bytes,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(alice[20000:21948])
    output = tmp_path / "sample.txt"
    code = main(["sample", "-c", "gzip", "--prompt", str(prompt), "--sampler", "words",
                 "--length", "40", "--seed", "2", "-o", str(output)])
    assert code == 0
    expected = sample_continuation(get_compressor("gzip"), alice[20000:21948], 40, "words",
                                   seed=2)
    assert output.read_bytes() == expected
    capsys.readouterr()
    code = main(["sample", "-c", "gzip", "--prompt", str(prompt), "--sampler", "words",
                 "--copy-limit", "0", "-o", str(tmp_path / "bad.txt")])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "copy limit" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "bad.txt").exists()
