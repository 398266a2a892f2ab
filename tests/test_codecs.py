"""Every classical codec round-trips byte for byte and reports consistent code lengths."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gencomp import available_compressors, get_compressor
from gencomp.codecs.png import closest_factors
from gencomp.compressor import DECODE_PIECE_BYTES, compressor_specs
from gencomp.constants import CHUNK_SIZE, PATCH_COLUMNS, PATCH_ROWS
from gencomp.datasets import DataLocations, load_chunks
from gencomp.errors import ContainerError, SizeLimitError, UnknownCompressorError, UsageError

CLASSICAL = [spec.name for spec in compressor_specs() if not spec.is_model]
PAPER_CODECS = {"gzip", "lzma2", "bz2", "zstd", "brotli", "png", "flac"}


def test_registry_has_every_classical_codec() -> None:
    assert PAPER_CODECS <= set(CLASSICAL)
    assert set(CLASSICAL) <= set(available_compressors())


SMALL_INPUTS = {
    "empty": b"",
    "one_byte": b"\x7f",
    "all_byte_values": bytes(range(256)),
    "odd_length_text": b"the quick brown fox jumps over the lazy dog" * 7,
}


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("label", sorted(SMALL_INPUTS))
def test_round_trip_small(name: str, label: str) -> None:
    compressor = get_compressor(name)
    data = SMALL_INPUTS[label]
    assert compressor.decompress(compressor.compress(data)) == data


@pytest.mark.parametrize("name", CLASSICAL)
def test_round_trip_megabyte_of_enwik8_and_random(name: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor(name)
    random_megabyte = random.Random(1234).randbytes(1 << 20)
    for data in (enwik8_megabyte, random_megabyte):
        payload = compressor.compress(data)
        assert compressor.decompress(payload) == data
    assert len(compressor.compress(enwik8_megabyte)) < 0.9 * len(enwik8_megabyte)


@pytest.mark.parametrize("name", CLASSICAL)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000))
def test_round_trip_property(name: str, data: bytes) -> None:
    compressor = get_compressor(name)
    assert compressor.decompress(compressor.compress(data)) == data


@pytest.mark.parametrize("name", CLASSICAL)
def test_compress_is_deterministic(name: str, enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:20000]
    assert get_compressor(name).compress(data) == get_compressor(name).compress(data)


@pytest.mark.parametrize("name", CLASSICAL)
def test_continuation_bits_equals_recompression(name: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor(name)
    context = enwik8_megabyte[5000:7000]
    candidates = [bytes([value]) for value in range(0, 256, 5)] + [b"the ", b"", b"\x00" * 40]
    got = compressor.continuation_bits(context, candidates)
    expected = [compressor.code_length_bits(context + candidate) -
                compressor.code_length_bits(context) for candidate in candidates]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.array(expected))


@pytest.mark.parametrize("sample_bits", [16, 8])
def test_flac_scores_only_the_last_frame_and_still_equals_recompression(
        sample_bits: int, data_dir: Path) -> None:
    flac = get_compressor("flac", sample_bits=sample_bits)
    assert flac.frame_samples == 4096
    audio = b"".join(load_chunks("audio", DataLocations(data_dir=data_dir), 300))
    candidates = [bytes([value]) for value in (0, 1, 127, 128, 129, 200, 255)]
    candidates += [audio[:10], b"\x80" * 3000]  # the long one runs into the next frame
    # Frame numbers from 128 on take two bytes in a frame header: 128 * 4096 crosses that.
    for length in (1, 4095, 4096, 4097, 10000, 128 * 4096 - 1, 128 * 4096 + 17):
        context = audio[len(audio) - length:]
        expected = [flac.code_length_bits(context + candidate) - flac.code_length_bits(context)
                    for candidate in candidates]
        np.testing.assert_array_equal(flac.continuation_bits(context, candidates), expected)


def test_lzma2_code_lengths_are_raw_not_xz(enwik8_megabyte: bytes) -> None:
    xz = get_compressor("lzma2")
    raw = get_compressor("lzma2", container="raw")
    data = enwik8_megabyte[:2048]
    assert xz.code_length_bits(data) == raw.code_length_bits(data) == 8 * len(raw.compress(data))
    assert len(xz.compress(data)) > len(raw.compress(data))
    assert xz.compress(data).startswith(b"\xfd7zXZ\x00")
    # The reason for raw: xz pads to 4 bytes, so one-byte continuations mostly tie.
    context = enwik8_megabyte[:2000]
    xz_lengths = {len(xz.compress(context + bytes([value]))) for value in range(256)}
    raw_lengths = {len(raw.compress(context + bytes([value]))) for value in range(256)}
    assert len(raw_lengths) >= len(xz_lengths)


def test_lzma2_small_dictionary_gives_the_presets_bytes(data_dir: Path,
                                                       enwik8_megabyte: bytes) -> None:
    """Inputs up to 128 KiB are coded with a 128 KiB dictionary, for speed; the bytes must be
    those of the preset's own dictionary (8 MiB), and the preset's filters must decode them."""
    import lzma

    from gencomp.codecs.lzma2 import SMALL_DICTIONARY

    preset_filters = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
    raw = get_compressor("lzma2", container="raw")
    locations = DataLocations(data_dir=data_dir)
    inputs = [chunk for name in ("text", "image", "audio", "random")
              for chunk in load_chunks(name, locations, 250)]
    inputs += [enwik8_megabyte[start:start + size] for size in (1, 100, 4096, 40000, 65536,
                                                               SMALL_DICTIONARY)
               for start in (0, 123457, 500001)]
    for data in inputs:
        payload = raw.compress(data)
        assert payload == lzma.compress(data, format=lzma.FORMAT_RAW, filters=preset_filters)
        assert lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=preset_filters) == data


def test_png_layout_follows_the_paper_rule_or_the_given_width() -> None:
    assert closest_factors(CHUNK_SIZE) == (PATCH_ROWS, PATCH_COLUMNS) == (32, 64)
    assert closest_factors(13) == (1, 13)
    assert get_compressor("png").layout(2048) == (32, 64, 0)
    assert get_compressor("png", width=64).layout(2000) == (32, 64, 48)
    patch = bytes(np.tile(np.arange(64, dtype=np.uint8), 32))
    image_wide = get_compressor("png", width=64)
    image_narrow = get_compressor("png", width=7)
    assert image_wide.decompress(image_wide.compress(patch)) == patch
    assert image_narrow.decompress(image_narrow.compress(patch)) == patch
    # Vertical structure is cheap only when the width is the image's width.
    assert len(image_wide.compress(patch)) < len(image_narrow.compress(patch))


def test_flac_modes_round_trip_and_paper_mode_is_default() -> None:
    audio = bytes((128 + 100 * np.sin(np.arange(8000) / 9.0)).astype(np.uint8))
    paper = get_compressor("flac")
    native = get_compressor("flac", sample_bits=8)
    assert paper.params["sample_bits"] == 16
    for compressor in (paper, native):
        payload = compressor.compress(audio)
        assert payload.startswith(b"fLaC")
        assert compressor.decompress(payload) == audio
        assert len(payload) < len(audio) // 2


@pytest.mark.parametrize("name", CLASSICAL)
def test_decompress_refuses_output_past_the_limit(name: str) -> None:
    compressor = get_compressor(name)
    payload = compressor.compress(bytes(100_000))
    with pytest.raises(SizeLimitError):
        compressor.decompress(payload, max_output_bytes=1000)


@pytest.mark.parametrize("name", CLASSICAL)
def test_truncated_payload_is_an_error_not_wrong_bytes(name: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor(name)
    data = enwik8_megabyte[:5000]
    payload = compressor.compress(data)
    for cut in (1, len(payload) // 2, len(payload) - 1):
        try:
            decoded = compressor.decompress(payload[:cut])
        except ContainerError:
            continue
        assert decoded != data, "a truncated payload decoded silently"
        pytest.fail(f"{name}: truncation at {cut} decoded without an error")


def test_registry_errors_are_clear() -> None:
    with pytest.raises(UnknownCompressorError, match="available"):
        get_compressor("nope")
    with pytest.raises(UsageError, match="takes no parameter"):
        get_compressor("gzip", quality=3)
    with pytest.raises(UsageError, match="level"):
        get_compressor("gzip", level=42)


@pytest.mark.parametrize("name", CLASSICAL)
def test_large_outputs_decode_in_bounded_pieces(name: str, enwik8_megabyte: bytes) -> None:
    """Issue 20: decoding holds one piece at a time, however much a payload expands."""
    compressor = get_compressor(name, **({"level": 1} if name in ("gzip", "bz2", "zstd") else {}))
    data = enwik8_megabyte * 2 + bytes(16 << 20)
    pieces = list(compressor.decompress_pieces(compressor.compress(data)))
    assert b"".join(pieces) == data
    assert max(map(len, pieces)) <= 4 * DECODE_PIECE_BYTES
    assert len(pieces) >= len(data) // (4 * DECODE_PIECE_BYTES)


def _png_with_filters(pixels: np.ndarray, filters: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG whose rows use the given filter types (PNG 1.2, 6.2-6.6),
    filtered here with numpy so that every type is exercised and checked against Pillow."""
    rows, columns = pixels.shape
    wide = pixels.astype(np.int32)
    left = np.pad(wide, ((0, 0), (1, 0)))[:, :-1]
    up = np.pad(wide, ((1, 0), (0, 0)))[:-1]
    up_left = np.pad(wide, ((1, 0), (1, 0)))[:-1, :-1]
    estimate = left + up - up_left
    to_left, to_up, to_up_left = (np.abs(estimate - other) for other in (left, up, up_left))
    paeth = np.where((to_left <= to_up) & (to_left <= to_up_left), left,
                     np.where(to_up <= to_up_left, up, up_left))
    predictions = np.stack([np.zeros_like(wide), left, up, (left + up) >> 1, paeth])
    residuals = (wide - predictions[filters % 5, np.arange(rows)]) & 0xFF  # 5+: unknown
    stream = zlib.compress(np.hstack([filters[:, None], residuals]).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">II", columns, rows) + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream)
            + chunk(b"IEND", b""))


def test_png_rows_of_every_filter_type_decode_as_pillow_decodes_them() -> None:
    generator = np.random.default_rng(7)
    rows, columns = 600, 97
    pixels = (np.cumsum(generator.integers(-9, 10, (rows, columns)), axis=1) % 256
              ).astype(np.uint8)
    filters = generator.integers(0, 5, rows)
    payload = _png_with_filters(pixels, filters)
    assert Image.open(io.BytesIO(payload)).tobytes() == pixels.tobytes()
    assert get_compressor("png").decompress(payload) == pixels.tobytes()
    with pytest.raises(ContainerError, match="filter type 5"):
        get_compressor("png").decompress(_png_with_filters(pixels, np.where(filters, filters, 5)))
