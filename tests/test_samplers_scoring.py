"""Fast continuation scoring is exact: every codec's `continuation_bits` equals recompressing
context·c for every candidate c (the base class's definition), number for number."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gencomp import get_compressor
from gencomp.compressor import Compressor

PAPER_CODECS = ["gzip", "lzma2", "bz2", "zstd", "brotli", "png", "flac"]
SINGLE_BYTES = [bytes([value]) for value in range(256)]


def recompressed(compressor: Compressor, context: bytes, candidates: list[bytes]) -> np.ndarray:
    return Compressor.continuation_bits(compressor, context, candidates)


def assert_exact(compressor: Compressor, context: bytes, candidates: list[bytes]) -> None:
    fast = compressor.continuation_bits(context, candidates)
    assert fast.dtype == np.float64 and fast.shape == (len(candidates),)
    np.testing.assert_array_equal(fast, recompressed(compressor, context, candidates))


def contexts(enwik8_megabyte: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "short": b"the cat sat on the m",
        "text_2k": enwik8_megabyte[100_000:102_048],
        "random_1k": random.Random(7).randbytes(1024),
    }


def multi_byte_candidates(context: bytes) -> list[bytes]:
    return [b"", b"at", b"the mat", context[-40:], bytes(300), random.Random(3).randbytes(600)]


@pytest.mark.parametrize("name", PAPER_CODECS)
def test_all_single_bytes_exact(name: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor(name)
    for context in contexts(enwik8_megabyte).values():
        assert_exact(compressor, context, SINGLE_BYTES)


@pytest.mark.parametrize("name", PAPER_CODECS)
def test_multi_byte_candidates_exact(name: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor(name)
    for context in contexts(enwik8_megabyte).values():
        assert_exact(compressor, context, multi_byte_candidates(context))


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_gzip_exact_past_its_window(level: int, enwik8_megabyte: bytes) -> None:
    """Contexts longer than deflate's 32 KB window, and ones ending just around it."""
    compressor = get_compressor("gzip", level=level)
    for start, length in [(0, 32_768), (5_000, 33_000), (200_000, 100_000)]:
        context = enwik8_megabyte[start:start + length]
        assert_exact(compressor, context, SINGLE_BYTES[::5] + multi_byte_candidates(context))


@pytest.mark.parametrize("name", ["zstd", "lzma2", "bz2"])
def test_threaded_paths_exact_on_a_long_context(name: str, enwik8_megabyte: bytes) -> None:
    """Large enough for the scoring threads to run (PARALLEL_MIN_BYTES)."""
    compressor = get_compressor(name)
    context = enwik8_megabyte[300_000:340_000]
    assert_exact(compressor, context, SINGLE_BYTES[::16] + multi_byte_candidates(context))


@settings(max_examples=40, deadline=None)
@given(context=st.binary(max_size=5000), candidates=st.lists(st.binary(max_size=400),
                                                              min_size=1, max_size=6),
       level=st.integers(0, 9))
def test_gzip_exact_property(context: bytes, candidates: list[bytes], level: int) -> None:
    assert_exact(get_compressor("gzip", level=level), context, candidates)


def test_lzma2_scores_raw_lzma2_whatever_the_container() -> None:
    context = b"abracadabra " * 50
    xz, raw = get_compressor("lzma2"), get_compressor("lzma2", container="raw")
    np.testing.assert_array_equal(xz.continuation_bits(context, SINGLE_BYTES),
                                  raw.continuation_bits(context, SINGLE_BYTES))
