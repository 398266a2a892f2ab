"""The .gcz container: exact restore, and every kind of damage refused with one error type."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from gencomp import get_compressor
from gencomp.compressor import compressor_specs
from gencomp.container import MAGIC, pack, read_header, unpack
from gencomp.errors import (
    BadMagicError,
    ChecksumMismatchError,
    ContainerError,
    SizeLimitError,
    TruncatedError,
    UnsupportedVersionError,
)

CLASSICAL = [spec.name for spec in compressor_specs() if not spec.is_model]


def _reframe(header: dict, payload: bytes, version: int = 1) -> bytes:
    """A container with a valid CRC around an arbitrary header: tests the checks behind it."""
    header_bytes = json.dumps(header).encode()
    body = (struct.pack("<4sBI", MAGIC, version, len(header_bytes)) + header_bytes
            + struct.pack("<Q", len(payload)) + payload)
    return body + struct.pack("<I", zlib.crc32(body))


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
