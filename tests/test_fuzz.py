"""Hostile input, CI-sized: the seeded mutation loop of tests/fuzz.py over every target,
hypothesis over random payloads and header fields, and hand-crafted bombs.

Every case must end in a GencompError or the exact original, quickly and in bounded
memory; mutated container parameters must also start no process and take no more than
a little memory. The long run is `python -m tests.fuzz --cases 100000`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import multiprocessing
import struct
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gencomp import arithmetic
from gencomp.compressor import get_compressor
from gencomp.container import DIGEST_BYTES, frame, pack, read_header, unpack
from gencomp.errors import CorruptPayloadError, GencompError, SizeLimitError
from tests.fuzz import (
    MEMORY_GROWTH_LIMIT,
    build_targets,
    compressors,
    frame_v1,
    fuzz,
    memory_limit,
    pack_v1,
    split_container_v1,
    target_name,
)

#: Mutation cases per target in CI. Classical decoders take well under a millisecond a
#: case; model compressors decode a byte at a time, so they get fewer, as do the targets
#: that build a model per case (version 1's headers, the parameters).
CASES = 2000
MODEL_CASES = 40
TARGET_CASES = {"container-v1-resealed": 500, "container-params": 300}
COMPRESSORS = {target_name(one): one for one in compressors(None)}
TARGET_NAMES = ["container", "container-resealed", *TARGET_CASES, *COMPRESSORS]
MODEL_TARGETS = {name for name, one in COMPRESSORS.items() if one.predictor is not None}
CLASSICAL = {name: one for name, one in COMPRESSORS.items() if name not in MODEL_TARGETS}


def cases_of(name: str) -> int:
    return TARGET_CASES.get(name, MODEL_CASES if name in MODEL_TARGETS else CASES)


@pytest.fixture(scope="module")
def targets():
    return {target.name: target for target in build_targets(seed=0)}


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_seeded_mutations_end_in_an_error_or_the_original(targets, name):
    # Under an address-space cap, as the long run: an allocation the budgets should have
    # refused is a MemoryError, a failure, not a machine swapping.
    with memory_limit(2 << 30):
        report = fuzz([targets[name]], cases_of(name), seed=0)
    assert report.cases == cases_of(name)
    problems = [f"{failure.problem}  ({failure.reproduce(0)})" for failure in report.failures]
    assert not problems, "\n".join(problems[:10])
    if name == "container-params":
        # Its hostile model seeds really reach the decoder (and its memory budget), not
        # all stopped earlier by their mutations.
        assert report.outcomes[name]["SizeLimitError"] >= 3


def test_the_ci_loop_runs_at_least_2000_cases():
    assert sum(map(cases_of, TARGET_NAMES)) >= 2000


def _spawns_a_process(seed, damaged):
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    process.start()
    process.join()
    return seed.original


def _takes_memory(seed, damaged):
    taken = np.ones(MEMORY_GROWTH_LIMIT + (64 << 20), dtype=np.uint8)
    return seed.original if taken.all() else b""


def test_a_wrong_output_is_reported(targets):
    """The oracle itself: a decoder that returns other bytes is caught."""
    target = targets["gzip"]
    broken = dataclasses.replace(target, decode=lambda seed, damaged: b"other")
    report = fuzz([broken], 20, seed=0)
    assert report.failures and "other bytes" in report.failures[0].problem


@pytest.mark.parametrize(("decode", "problem"), [(_spawns_a_process, "child process"),
                                                 (_takes_memory, "resident memory")])
def test_a_case_that_starts_a_process_or_takes_memory_is_reported(targets, decode, problem):
    """The parameter target's watch itself: a decoder that returns the right bytes but
    starts a process, or takes hundreds of MiB, fails the case."""
    broken = dataclasses.replace(targets["container-params"], decode=decode)
    report = fuzz([broken], 2, seed=0)
    assert len(report.failures) == 2 and problem in report.failures[0].problem


# ---------------------------------------------------------------- hypothesis


#: Valid starts of every classical codec's payloads (magic numbers, headers).
PREFIXES = [compressor.compress(b"The quick brown fox jumps over the lazy dog. " * 20)
            for compressor in CLASSICAL.values()]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CLASSICAL)),
       prefix_index=st.integers(0, 100), cut=st.integers(0, 4096), tail=st.binary(max_size=64))
def test_random_payloads_end_in_an_error_or_bounded_output(name, prefix_index, cut, tail):
    """Some codec's valid start plus garbage, into each decoder."""
    payload = PREFIXES[prefix_index % len(PREFIXES)][:cut] + tail
    try:
        output = CLASSICAL[name].decompress(payload, max_output_bytes=1000)
    except GencompError:
        return
    assert len(output) <= 1000


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
HEADER_DATA = b"what the header says "
#: A container per compressor, to damage its header (version 2, and version 1's JSON).
PACKED = {name: pack(compressor, HEADER_DATA) for name, compressor in COMPRESSORS.items()}
PACKED_V1 = {name: pack_v1(compressor, HEADER_DATA) for name, compressor in COMPRESSORS.items()}
DIGEST = hashlib.sha256(HEADER_DATA).digest()[:DIGEST_BYTES]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(PACKED)), field=st.sampled_from(
    ["compressor", "params", "original_length", "one parameter"]),
       choice=st.integers(0, 100), value=JSON_VALUES, text=st.text(max_size=40),
       length=st.integers(0, 2**64 - 1))
def test_hostile_header_fields_end_in_an_error_or_the_original(name, field, choice, value, text,
                                                               length):
    """Any name, length or parameters in a version-2 header, any JSON in one parameter."""
    header, payload = read_header(PACKED[name])
    compressor, params, original_length = header.compressor, dict(header.params), len(HEADER_DATA)
    if field == "compressor":
        compressor = text
    elif field == "params":
        params = value if isinstance(value, dict) else {"value": value}
    elif field == "original_length":
        original_length = length
    else:
        keys = sorted(params) or ["extra"]
        params[keys[choice % len(keys)]] = value
    try:
        output = unpack(frame(compressor, params, original_length, DIGEST, payload))
    except GencompError:
        return
    assert output == HEADER_DATA


@settings(max_examples=200, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(PACKED_V1)), field=st.sampled_from(
    ["compressor", "params", "original_length", "original_sha256", "one parameter"]),
       choice=st.integers(0, 100), value=JSON_VALUES)
def test_hostile_version_1_header_fields_end_in_an_error_or_the_original(name, field, choice,
                                                                         value):
    """Any JSON in any field of a version-1 header, or in one of its parameters."""
    header, payload = split_container_v1(PACKED_V1[name])
    fields = json.loads(header)
    if field == "one parameter":
        keys = sorted(fields["params"]) or ["extra"]
        fields["params"][keys[choice % len(keys)]] = value
    else:
        fields[field] = value
    try:
        output = unpack(frame_v1(json.dumps(fields).encode(), payload))
    except GencompError:
        return
    assert output == HEADER_DATA


# ---------------------------------------------------------------- crafted containers


def _header(original_length: int, compressor: str = "gzip", params: dict | None = None) -> bytes:
    return json.dumps({"compressor": compressor, "params": params or {},
                       "original_length": original_length,
                       "original_sha256": "0" * 64}).encode()


def test_a_container_declaring_2_to_the_40_bytes_is_refused_before_decoding():
    started = time.perf_counter()
    with pytest.raises(SizeLimitError, match="1099511627776"):
        unpack(frame("gzip", {}, 2**40, bytes(DIGEST_BYTES), b"\x00" * 10))
    with pytest.raises(SizeLimitError, match="1099511627776"):
        unpack(frame_v1(_header(2**40), b"\x00" * 10))
    assert time.perf_counter() - started < 0.1


MALFORMED_HEADERS = {
    "nested-past-recursion-limit": b"[" * 40_000 + b"]" * 20_000,
    "length-infinity": _header(1).replace(b'"original_length":1', b'"original_length":Infinity'),
    "length-bool": _header(1).replace(b'"original_length":1', b'"original_length":true'),
    "length-string": _header(1).replace(b'"original_length":1', b'"original_length":"1"'),
    "length-negative": _header(1).replace(b'"original_length":1', b'"original_length":-1'),
    "nested-param": _header(1, params={"level": [[[[[[]]]]]]}),
    "unknown-compressor": _header(1, compressor="nonesuch"),
    "not-utf8": b"\xff\xfe not utf-8",
    "not-an-object": b'"a string"',
}


@pytest.mark.parametrize("header", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
def test_malformed_headers_with_a_valid_crc_are_refused(header):
    with pytest.raises(GencompError):
        unpack(frame_v1(header[:65536], b""))


# ---------------------------------------------------------------- decompression bombs


BOMB_BYTES = 100_000_000
BOMBS = [("gzip", {"level": 1}), ("bz2", {"level": 1}), ("zstd", {"level": 1}),
         ("brotli", {"quality": 5}), ("lzma2", {"preset": 0}),
         ("lzma2", {"preset": 0, "container": "raw"})]


@pytest.fixture(scope="module")
def bombs():
    """100 MB of zeros, compressed by each streaming codec (a few hundred KB at most)."""
    zeros = bytes(BOMB_BYTES)
    return {(name, str(params)): get_compressor(name, **params).compress(zeros)
            for name, params in BOMBS}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), BOMBS)
def test_a_100_mb_bomb_is_refused_quickly_in_bounded_memory(bombs, name, params):
    payload = bombs[name, str(params)]
    compressor = get_compressor(name, **params)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SizeLimitError):
            compressor.decompress(payload, max_output_bytes=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < len(payload) + (4 << 20)
    # Through a container that declares a small original: the same refusal.
    with pytest.raises(SizeLimitError):
        unpack(frame(name, params, 1000, bytes(DIGEST_BYTES), payload))


def _png_with_size(columns: int, rows: int) -> bytes:
    """A real PNG payload whose IHDR declares another size (CRC fixed, so it is checked)."""
    payload = bytearray(get_compressor("png").compress(bytes(range(256)) * 8))
    struct.pack_into(">II", payload, 16, columns, rows)
    struct.pack_into(">I", payload, 29, zlib.crc32(payload[12:29]))
    return bytes(payload)


@pytest.mark.parametrize("max_output_bytes", [1 << 16, None])
def test_png_declaring_a_huge_image_is_refused_before_allocating(max_output_bytes):
    started = time.perf_counter()
    with pytest.raises(SizeLimitError):
        get_compressor("png").decompress(_png_with_size(2**31 - 1, 2**31 - 1),
                                         max_output_bytes=max_output_bytes)
    # Within the limit, but more pixels than a few hundred bytes of deflate can hold.
    with pytest.raises(CorruptPayloadError, match="more than"):
        get_compressor("png").decompress(_png_with_size(1 << 14, 1 << 14),
                                         max_output_bytes=1 << 30)
    assert time.perf_counter() - started < 0.5


def test_png_larger_than_pillows_pixel_limit_round_trips(monkeypatch):
    """Our limit replaces Pillow's: an image we wrote must decode, without a warning."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    compressor = get_compressor("png", width=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compressor.decompress(compressor.compress(data)) == data


def test_png_damaged_pixel_data_is_refused():
    """Pillow skips the IDAT CRCs; a damaged pixel must not decode to other bytes."""
    data = bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8))
    payload = bytearray(get_compressor("png").compress(data))
    payload[payload.index(b"IDAT") + 200] ^= 0x10
    with pytest.raises(CorruptPayloadError, match="CRC"):
        get_compressor("png").decompress(bytes(payload), max_output_bytes=len(data))


def _flac_with(sample_count: int | None = None, md5: bytes | None = None) -> bytes:
    payload = bytearray(get_compressor("flac").compress(bytes(range(256)) * 4))
    if sample_count is not None:
        fields = int.from_bytes(payload[18:26], "big")
        fields = fields & ~((1 << 36) - 1) | sample_count
        payload[18:26] = fields.to_bytes(8, "big")
    if md5 is not None:
        payload[26:42] = md5
    return bytes(payload)


@pytest.mark.parametrize("max_output_bytes", [1 << 16, None])
def test_flac_declaring_a_huge_frame_count_is_refused_before_allocating(max_output_bytes):
    started = time.perf_counter()
    with pytest.raises(SizeLimitError):
        get_compressor("flac").decompress(_flac_with(sample_count=(1 << 36) - 1),
                                          max_output_bytes=max_output_bytes)
    assert time.perf_counter() - started < 0.5


def test_flac_declaring_more_samples_than_it_holds_reads_only_what_is_there():
    tracemalloc.start()
    try:
        with pytest.raises(GencompError):
            get_compressor("flac").decompress(_flac_with(sample_count=1 << 32),
                                              max_output_bytes=1 << 33)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_flac_checks_the_md5_signature():
    with pytest.raises(CorruptPayloadError, match="MD5"):
        get_compressor("flac").decompress(_flac_with(md5=bytes(range(16))))


def test_flac_refuses_other_audio_formats_without_noise(capfd):
    """libsndfile would happily open MP3 and other formats (and print to stderr)."""
    wav = io.BytesIO()
    soundfile.write(wav, np.zeros(100, dtype=np.int16), 16000, format="WAV")
    for payload in (wav.getvalue(), b"\xff\xfb\x90\x00" + bytes(400)):
        with pytest.raises(CorruptPayloadError):
            get_compressor("flac").decompress(payload)
    assert capfd.readouterr().err == ""


def test_xz_declaring_a_4_gib_dictionary_is_refused():
    """liblzma allocates the dictionary an .xz block header declares, before decoding. A
    600-byte file asking for 4 GiB must be refused (a memory limit on the decoder), not
    allocated: under an address-space limit the allocation is a MemoryError."""
    payload = bytearray(get_compressor("lzma2").compress(b"hello" * 100))
    header_start = 12  # after the stream header
    header_size = (payload[header_start] + 1) * 4
    header = bytearray(payload[header_start : header_start + header_size])
    header[header.index(0x21) + 2] = 40  # LZMA2 filter property: dictionary 4 GiB - 1
    struct.pack_into("<I", header, header_size - 4, zlib.crc32(header[: header_size - 4]))
    payload[header_start : header_start + header_size] = header
    with pytest.raises(GencompError):
        get_compressor("lzma2").decompress(bytes(payload), max_output_bytes=1000)


def test_the_arithmetic_decoder_reports_invalid_streams_as_corrupt_payloads():
    """Random words under random peaked distributions: constriction rejects some of these
    streams (with an AssertionError of its own), which must reach the user as a
    CorruptPayloadError, not a crash."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        decoder = arithmetic.Decoder(rng.integers(0, 2**32, size=rng.integers(1, 8),
                                                  dtype=np.uint64).astype(np.uint32))
        probabilities = rng.dirichlet(np.full(256, 0.05))
        try:
            for _ in range(40):
                assert 0 <= decoder.decode(probabilities) < 256
        except CorruptPayloadError:
            pass
