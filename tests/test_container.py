"""The .gcz container: exact restore, and every kind of damage refused with one error type;
a compact header that records only what decoding needs; version 1 still read."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest

from gencomp import get_compressor
from gencomp.compressor import compressor_specs
from gencomp.container import (
    DIGEST_BYTES,
    MAGIC,
    frame,
    pack,
    read_header,
    recorded_params,
    unpack,
)
from gencomp.errors import (
    BadMagicError,
    ChecksumMismatchError,
    ContainerError,
    CorruptPayloadError,
    SizeLimitError,
    TruncatedError,
    UnsupportedVersionError,
    UsageError,
)
from tests.fuzz import frame_v1, split_container_v1

CLASSICAL = [spec.name for spec in compressor_specs() if not spec.is_model]
#: Containers written by earlier versions of gencomp (tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
V1_TEXT = b"".join(f"{i}: version 1 containers must still decode, byte for byte.\n".encode()
                   for i in range(60))
V2_TEXT = b"".join(f"{i}: version 2 containers record only what decoding needs.\n".encode()
                   for i in range(60))


def _reframe(header: dict, payload: bytes, version: int = 1) -> bytes:
    """A container with a valid CRC around an arbitrary header: tests the checks behind it."""
    header_bytes = json.dumps(header).encode()
    body = (struct.pack("<4sBI", MAGIC, version, len(header_bytes)) + header_bytes
            + struct.pack("<Q", len(payload)) + payload)
    return body + struct.pack("<I", zlib.crc32(body))


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


@pytest.mark.parametrize("name", CLASSICAL)
def test_pack_unpack_round_trip(name: str, enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:30000]
    container = pack(get_compressor(name), data)
    assert container.startswith(MAGIC)
    header, _ = read_header(container)
    assert header.compressor == name and header.original_length == len(data)
    assert unpack(container) == data


def test_params_travel_in_the_container() -> None:
    container = pack(get_compressor("png", width=64), bytes(range(256)) * 10)
    header, _ = read_header(container)
    assert header.params == {"width": 64}
    assert unpack(container) == bytes(range(256)) * 10


@pytest.mark.parametrize("name", CLASSICAL)
def test_every_single_byte_flip_and_cut_is_refused(name: str) -> None:
    data = b"gencomp keeps every byte a user gave. " * 20
    container = pack(get_compressor(name), data)
    for position in range(len(container)):
        damaged = bytearray(container)
        damaged[position] ^= 0x5A
        with pytest.raises(ContainerError):
            unpack(bytes(damaged))
    for length in range(len(container)):
        with pytest.raises(ContainerError):
            unpack(container[:length])


def test_specific_errors() -> None:
    container = pack(get_compressor("gzip"), b"hello")
    with pytest.raises(BadMagicError):
        unpack(b"PK\x03\x04" + container[4:])
    with pytest.raises(TruncatedError):
        unpack(container[:-3])
    with pytest.raises(ChecksumMismatchError):
        unpack(container[:-1] + bytes([container[-1] ^ 1]))
    with pytest.raises(ContainerError, match="unexpected bytes"):
        unpack(container + b"x")


def test_checks_behind_the_crc() -> None:
    payload = get_compressor("gzip").compress(b"hello")
    header = {"compressor": "gzip", "params": {"level": 9}, "original_length": 5,
              "original_sha256": "0" * 64}
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        unpack(_reframe(header, payload))
    with pytest.raises(UnsupportedVersionError):
        unpack(_reframe(header, payload, version=9))
    with pytest.raises(ContainerError, match="does not have"):
        unpack(_reframe({**header, "compressor": "zip64"}, payload))
    with pytest.raises(SizeLimitError):
        unpack(_reframe({**header, "original_length": 1 << 50}, payload))
    with pytest.raises(ContainerError, match="parameters"):
        unpack(_reframe({**header, "params": {"level": 99}}, payload))


# ---------------------------------------------------------------- version 2, compact


def test_a_6_kb_model_container_costs_at_most_28_bytes_of_framing(enwik8_megabyte: bytes
                                                                  ) -> None:
    """Issue 18: the header of a small file's model container is tens of bytes, not
    hundreds (version 1 took 330)."""
    data = enwik8_megabyte[:6144]
    container = pack(get_compressor("cm"), data)
    header, payload = read_header(container)
    assert header.version == 3 and header.params == {}
    assert len(container) - len(payload) <= 28
    assert unpack(container) == data


def test_only_parameters_that_decide_the_decoding_are_recorded() -> None:
    """Not how coding ran (workers), nor what the payload records itself (chunk and group
    sizes, the model's fingerprint), nor values the format implies."""
    assert recorded_params(get_compressor("cm", workers=2, batch_size=8, chunk_size=512)) == {}
    assert recorded_params(get_compressor("cm", order=5)) == {"order": 5}
    assert recorded_params(get_compressor("gzip", level=9)) == {}
    assert recorded_params(get_compressor("gzip", level=1)) == {"level": 1}
    assert recorded_params(get_compressor("lzma2", container="raw")) == {"container": "raw"}
    # version 3's Transformer engine is kernels-f16; the first kernels are named
    assert recorded_params(get_compressor("transformer")) == {}
    assert recorded_params(get_compressor("transformer", engine="kernels")) == {
        "engine": "kernels"}


@pytest.mark.parametrize("name", ["gzip", "cm", "lzma2", "transformer"])
def test_version_2_files_written_before_still_decode(name: str) -> None:
    """Committed containers pin the format, and the values it leaves out (a changed
    default must not change what an existing file means: version 2's Transformer engine
    is the first kernels, whatever the default is now)."""
    container = (DATA / f"v2_{name}.gcz").read_bytes()
    assert read_header(container)[0].version == 2
    assert unpack(container) == V2_TEXT


@pytest.mark.parametrize("name", ["gzip", "cm"])
def test_version_1_files_still_decode(name: str) -> None:
    container = (DATA / f"v1_{name}.gcz").read_bytes()
    header, _ = read_header(container)
    assert header.version == 1 and len(header.original_digest) == 32
    assert unpack(container) == V1_TEXT


def test_runtime_parameters_in_a_container_are_ignored() -> None:
    """Containers are data: one that asks for 16 workers does not get them (and the
    caller's own choice does not collide with it: issue 20's TypeError)."""
    data = b"a container may not choose how many processes decode it. " * 8
    payload = get_compressor("cm", chunk_size=64, batch_size=2).compress(data)
    container = frame("cm", {"workers": 16}, len(data), _digest(data), payload)
    assert unpack(container) == data
    assert unpack(container, runtime_params={"workers": 2}) == data
    header, payload = split_container_v1((DATA / "v1_cm.gcz").read_bytes())
    fields = json.loads(header)
    fields["params"]["workers"] = 16
    assert unpack(frame_v1(json.dumps(fields).encode(), payload)) == V1_TEXT


def test_runtime_parameters_come_from_the_caller_and_only_those() -> None:
    data = b"runtime parameters are the caller's " * 8
    container = pack(get_compressor("cm", chunk_size=64, batch_size=2), data)
    assert unpack(container, runtime_params={"workers": 2}) == data
    with pytest.raises(UsageError, match="not a runtime parameter"):
        unpack(container, runtime_params={"order": 5})


def test_version_2_checks_behind_the_crc() -> None:
    data = b"hello"
    payload = get_compressor("gzip").compress(data)
    assert unpack(frame("gzip", {}, 5, _digest(data), payload)) == data
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        unpack(frame("gzip", {}, 5, bytes(DIGEST_BYTES), payload))
    with pytest.raises(ChecksumMismatchError, match="declares 6"):
        unpack(frame("gzip", {}, 6, _digest(data), payload))
    with pytest.raises(ContainerError, match="does not have"):
        unpack(frame("zip64", {}, 5, _digest(data), payload))
    with pytest.raises(ContainerError, match="does not take"):
        unpack(frame("gzip", {"window": 15}, 5, _digest(data), payload))
    with pytest.raises(ContainerError, match="parameters"):
        unpack(frame("gzip", {"level": 99}, 5, _digest(data), payload))
    with pytest.raises(SizeLimitError):
        unpack(frame("gzip", {}, 2**63, _digest(data), payload))


def test_version_1_digest_must_be_a_whole_sha256() -> None:
    payload = get_compressor("gzip").compress(b"hello")
    header = {"compressor": "gzip", "params": {}, "original_length": 5,
              "original_sha256": hashlib.sha256(b"hello").hexdigest()[:16]}
    with pytest.raises(CorruptPayloadError, match="original_sha256"):
        unpack(_reframe(header, payload))
