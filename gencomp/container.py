"""The .gcz container: a compressed payload that says how to decode itself, and proves it.

Layout (all integers little-endian):

    magic            4 bytes   b"GCZ\\x1a"
    version          1 byte    1
    header_length    4 bytes   length of the JSON header
    header           JSON      {"compressor": name, "params": {...},
                                "original_length": n, "original_sha256": hex}
    payload_length   8 bytes
    payload          the compressor's output
    crc32            4 bytes   CRC-32 of everything above

Two checks, for two failures. The CRC-32 catches any damage to the file before we decode
(it detects every single-byte change and every burst up to 32 bits, including ones a codec
would decode "fine", e.g. in a gzip header field or an unused parameter). The SHA-256 of
the original catches a payload that decodes to other bytes (another model, a codec bug).
Declared sizes are checked against a limit before anything is allocated.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from gencomp.compressor import Compressor, get_compressor
from gencomp.errors import (
    BadMagicError,
    ChecksumMismatchError,
    ContainerError,
    CorruptPayloadError,
    SizeLimitError,
    TruncatedError,
    UnknownCompressorError,
    UnsupportedVersionError,
    UsageError,
)

MAGIC = b"GCZ\x1a"
VERSION = 1
MAX_HEADER_BYTES = 1 << 16
#: Default limit on the original length a container may declare (16 GiB); the codec then
#: decodes with exactly the declared length as its cap.
MAX_DECLARED_LENGTH = 1 << 34

_PREFIX = struct.Struct("<4sBI")
_PAYLOAD_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class ContainerHeader:
    compressor: str
    params: dict[str, Any]
    original_length: int
    original_sha256: str


def pack(compressor: Compressor, data: bytes) -> bytes:
    """Compress `data` and wrap it in a .gcz container."""
    header = {
        "compressor": compressor.name,
        "params": compressor.params,
        "original_length": len(data),
        "original_sha256": hashlib.sha256(data).hexdigest(),
    }
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return frame(header_bytes, compressor.compress(data))


def frame(header_bytes: bytes, payload: bytes) -> bytes:
    """Frame a JSON header and a payload as a container, lengths and CRC-32 included.
    (`pack` uses it; the fuzz tests use it to build hostile containers that pass the CRC.)"""
    body = b"".join([
        _PREFIX.pack(MAGIC, VERSION, len(header_bytes)),
        header_bytes,
        _PAYLOAD_LENGTH.pack(len(payload)),
        payload,
    ])
    return body + _CRC.pack(zlib.crc32(body))


def read_header(container: bytes) -> tuple[ContainerHeader, bytes]:
    """Check the framing and the CRC; return the header and the payload."""
    if len(container) < _PREFIX.size:
        if MAGIC.startswith(container[:4]) and container:
            raise TruncatedError("container is truncated (shorter than its fixed header)")
        raise BadMagicError("not a .gcz container (bad magic)")
    magic, version, header_length = _PREFIX.unpack_from(container)
    if magic != MAGIC:
        raise BadMagicError("not a .gcz container (bad magic)")
    if version != VERSION:
        raise UnsupportedVersionError(f"unsupported .gcz format version {version} "
                                      f"(this gencomp reads version {VERSION})")
    if header_length > MAX_HEADER_BYTES:
        raise CorruptPayloadError(f"header length {header_length} is over the limit")
    payload_start = _PREFIX.size + header_length + _PAYLOAD_LENGTH.size
    if len(container) < payload_start + _CRC.size:
        raise TruncatedError("container is truncated (header cut short)")
    (payload_length,) = _PAYLOAD_LENGTH.unpack_from(container, payload_start - 8)
    expected_size = payload_start + payload_length + _CRC.size
    if len(container) < expected_size:
        raise TruncatedError(f"container is truncated ({len(container)} of {expected_size} bytes)")
    if len(container) > expected_size:
        raise CorruptPayloadError(f"{len(container) - expected_size} unexpected bytes after the "
                                  "container")
    body = memoryview(container)[: expected_size - _CRC.size]
    (stored_crc,) = _CRC.unpack_from(container, expected_size - _CRC.size)
    if zlib.crc32(body) != stored_crc:
        raise ChecksumMismatchError("container is corrupt (CRC-32 mismatch)")
    header = _parse_header(bytes(container[_PREFIX.size : _PREFIX.size + header_length]))
    return header, bytes(container[payload_start : payload_start + payload_length])


def _parse_header(header_bytes: bytes) -> ContainerHeader:
    """The header's fields, each of exactly the type `pack` writes (a hostile header can
    hold anything JSON can: deep nesting, Infinity, strings where numbers belong)."""
    try:
        fields = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CorruptPayloadError(f"container header is corrupt ({error})") from error
    expected_types = {"compressor": str, "params": dict, "original_length": int,
                      "original_sha256": str}
    if not isinstance(fields, dict):
        raise CorruptPayloadError("container header is corrupt (not a JSON object)")
    for key, expected_type in expected_types.items():
        value = fields.get(key)
        if not isinstance(value, expected_type) or isinstance(value, bool):
            raise CorruptPayloadError(f"container header is corrupt (bad or missing {key!r})")
    if fields["original_length"] < 0:
        raise CorruptPayloadError("container header declares a negative length")
    return ContainerHeader(**{key: fields[key] for key in expected_types})


def unpack(container: bytes, max_output_bytes: int = MAX_DECLARED_LENGTH,
           runtime_params: dict[str, Any] | None = None) -> bytes:
    """Decode a .gcz container to the exact original bytes, or raise a ContainerError.

    `runtime_params` (e.g. a model compressor's `workers`) are added to the recorded
    parameters: they change how decoding runs, not what it gives."""
    header, payload = read_header(container)
    if header.original_length > max_output_bytes:
        raise SizeLimitError(f"container declares {header.original_length} bytes, over the "
                             f"limit of {max_output_bytes}")
    try:
        compressor = get_compressor(header.compressor, **header.params,
                                    **(runtime_params or {}))
    except UnknownCompressorError as error:
        raise ContainerError(f"container needs compressor {header.compressor!r}, which this "
                             "gencomp does not have") from error
    except UsageError as error:
        raise ContainerError(f"container parameters are invalid: {error}") from error
    data = compressor.decompress(payload, max_output_bytes=header.original_length)
    if len(data) != header.original_length:
        raise ChecksumMismatchError(f"decoded {len(data)} bytes, the container declares "
                                    f"{header.original_length}")
    if hashlib.sha256(data).hexdigest() != header.original_sha256:
        raise ChecksumMismatchError("decoded bytes do not match the original's SHA-256")
    return data
