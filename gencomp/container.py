"""The .gcz container: a compressed payload that says how to decode itself, and proves it.

Layout of versions 2 and 3 (3 is written; they differ only in `IMPLICIT_PARAMS`; integers
little-endian; "varint" is unsigned LEB128, `gencomp.varints`):

    magic            4 bytes   b"GCZ\\x1a"
    version          1 byte    3
    compressor       u8 length + UTF-8 registry name
    params           varint length + a JSON object: the encoding parameters whose value
                     differs from the one `IMPLICIT_PARAMS` gives (none: length 0)
    original_length  varint
    original_digest  8 bytes   the first 64 bits of the original's SHA-256
    payload_length   varint
    payload          the compressor's output
    crc32            4 bytes   CRC-32 of everything above

A small file's container costs little: 25 bytes of framing for a 6 KB file coded by `cm`
with its defaults. Version 1 (still read) had a JSON header with every parameter and the
full SHA-256: ~330 bytes for a model compressor.

Two checks, for two failures. The CRC-32 catches any damage to the file before we decode
(it detects every single-byte change and every burst up to 32 bits, including ones a codec
would decode "fine", e.g. in a gzip header field or an unused parameter). The digest of
the original catches a payload that decodes to other bytes (another model, a codec bug).
Neither stops a forger, who can recompute both, so the digest needs no collision
resistance, only a negligible chance that an accident passes: 2^-64 per decode for 64
bits (and model payloads check a CRC-32 of the original besides).

A container's parameters are data, not instructions. It records only what decides the
decoding: not how to run it (`CompressorSpec.runtime_params`: workers, device, which the
caller chooses and a container cannot), nor what the payload records itself
(`CompressorSpec.payload_params`). Declared sizes are checked against a limit before
anything is allocated (`gencomp.limits`).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gencomp import varints
from gencomp.compressor import Compressor, CompressorSpec, compressor_spec, get_compressor
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
    quoted,
)
from gencomp.limits import default_output_limit

MAGIC = b"GCZ\x1a"
VERSION = 3
MAX_HEADER_BYTES = 1 << 16
DIGEST_BYTES = 8

_VERSION_2_IMPLICIT_PARAMS: dict[str, dict[str, Any]] = {
    "gzip": {"level": 9},
    "bz2": {"level": 9},
    "zstd": {"level": 19},
    "brotli": {"quality": 11},
    "flac": {"sample_bits": 16, "sample_rate": 16000},
    "lzma2": {"preset": 6, "container": "xz"},
    "png": {"width": None},
    "cm": {"order": 4, "table_bits": 13, "width": None},
    "transformer": {"size": "200k", "checkpoint": None, "engine": "kernels", "mix": None},
    "transformer-cm": {"size": "200k", "checkpoint": None, "engine": "kernels",
                       "mix": "cm-signals"},
}
#: By format version, the value each encoding parameter has in a container that leaves it
#: out (the defaults when that version was made). A listed value never changes: that would
#: change what existing files mean (new values need a new format version: version 3 is
#: version 2 with the Transformer's engine kernels-f16). A parameter not listed is always
#: recorded; one added to a compressor later may join the tables with the value that keeps
#: its compressor's old behaviour, which is what files made before it mean.
IMPLICIT_PARAMS: dict[int, dict[str, dict[str, Any]]] = {
    2: _VERSION_2_IMPLICIT_PARAMS,
    3: {**_VERSION_2_IMPLICIT_PARAMS,
        **{name: {**_VERSION_2_IMPLICIT_PARAMS[name], "engine": "kernels-f16"}
           for name in ("transformer", "transformer-cm")}},
}

_PREFIX = struct.Struct("<4sB")
_CRC = struct.Struct("<I")
_V1_HEADER_LENGTH = struct.Struct("<I")
_V1_PAYLOAD_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class ContainerHeader:
    version: int
    compressor: str
    #: The parameters as recorded (from version 2: those that differ from IMPLICIT_PARAMS).
    params: dict[str, Any]
    original_length: int
    #: The SHA-256 of the original: whole (version 1) or its first DIGEST_BYTES (2, 3).
    original_digest: bytes


def _same(value: Any, other: Any) -> bool:
    """Equal and of one type: True is not the level 1, nor 1.0 the width 1."""
    return type(value) is type(other) and value == other


def recorded_params(compressor: Compressor) -> dict[str, Any]:
    """The parameters a container of `compressor` records (module docstring)."""
    spec = compressor_spec(compressor.name)
    left_out = {*spec.runtime_params, *spec.payload_params}
    implicit = IMPLICIT_PARAMS[VERSION].get(compressor.name, {})
    return {key: value for key, value in compressor.params.items()
            if key not in left_out and not (key in implicit and _same(value, implicit[key]))}


def pack(compressor: Compressor, data: bytes) -> bytes:
    """Compress `data` and wrap it in a .gcz container."""
    return frame(compressor.name, recorded_params(compressor), len(data),
                 hashlib.sha256(data).digest()[:DIGEST_BYTES], compressor.compress(data))


def frame(compressor: str, params: dict[str, Any], original_length: int,
          original_digest: bytes, payload: bytes) -> bytes:
    """A container of these fields (the version written), CRC-32 included. (`pack` uses it; the fuzz
    tests use it to build hostile containers that pass the CRC.)"""
    name = compressor.encode("utf-8")
    params_bytes = (json.dumps(params, sort_keys=True, separators=(",", ":")).encode("ascii")
                    if params else b"")
    return seal(b"".join([
        _PREFIX.pack(MAGIC, VERSION), bytes([len(name)]), name,
        varints.encode(len(params_bytes)), params_bytes,
        varints.encode(original_length), original_digest,
        varints.encode(len(payload)), payload,
    ]))


def seal(body: bytes) -> bytes:
    """`body` (everything but the CRC) followed by its CRC-32."""
    return body + _CRC.pack(zlib.crc32(body))


def read_header(container: bytes) -> tuple[ContainerHeader, bytes]:
    """Check the framing and the CRC; return the header and the payload."""
    if len(container) < _PREFIX.size:
        if MAGIC.startswith(container[:4]) and container:
            raise TruncatedError("container is truncated (shorter than its fixed header)")
        raise BadMagicError("not a .gcz container (bad magic)")
    magic, version = _PREFIX.unpack_from(container)
    if magic != MAGIC:
        raise BadMagicError("not a .gcz container (bad magic)")
    if version in IMPLICIT_PARAMS:
        return _read_v2(container, version)
    if version == 1:
        return _read_v1(container)
    raise UnsupportedVersionError(f"unsupported .gcz format version {version} "
                                  f"(this gencomp reads versions 1 to {VERSION})")


def _check_size_and_crc(container: bytes, payload_end: int) -> None:
    """The container ends with the CRC right after the payload, and the CRC holds."""
    expected_size = payload_end + _CRC.size
    if len(container) < expected_size:
        raise TruncatedError(f"container is truncated ({len(container)} of {expected_size} bytes)")
    if len(container) > expected_size:
        raise CorruptPayloadError(f"{len(container) - expected_size} unexpected bytes after the "
                                  "container")
    (stored_crc,) = _CRC.unpack_from(container, payload_end)
    if zlib.crc32(memoryview(container)[:payload_end]) != stored_crc:
        raise ChecksumMismatchError("container is corrupt (CRC-32 mismatch)")


def _read_v2(container: bytes, version: int) -> tuple[ContainerHeader, bytes]:
    """Versions 2 and 3 (one layout)."""
    what = "container header"
    offset = _PREFIX.size
    if offset >= len(container):
        raise TruncatedError("container is truncated (header cut short)")
    name_end = offset + 1 + container[offset]
    params_length, params_start = varints.decode(container, name_end, what)
    if params_length > MAX_HEADER_BYTES:
        raise CorruptPayloadError(f"container parameters of {params_length} bytes are over "
                                  "the limit")
    original_length, digest_start = varints.decode(container, params_start + params_length,
                                                   what)
    payload_length, payload_start = varints.decode(container, digest_start + DIGEST_BYTES,
                                                   what)
    _check_size_and_crc(container, payload_start + payload_length)
    try:
        name = container[_PREFIX.size + 1 : name_end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorruptPayloadError("container header is corrupt (compressor name is not "
                                  "UTF-8)") from error
    params_bytes = container[params_start : params_start + params_length]
    params = _parse_json(params_bytes, "parameters") if params_bytes else {}
    if not isinstance(params, dict):
        raise CorruptPayloadError("container header is corrupt (parameters are not a JSON "
                                  "object)")
    header = ContainerHeader(version, name, params, original_length,
                             bytes(container[digest_start : digest_start + DIGEST_BYTES]))
    return header, bytes(container[payload_start : payload_start + payload_length])


def _parse_json(data: bytes, what: str) -> Any:
    """JSON from a file, which can hold anything JSON can: deep nesting, Infinity."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CorruptPayloadError(f"container {what} are corrupt ({error})") from error


def _read_v1(container: bytes) -> tuple[ContainerHeader, bytes]:
    """Version 1: a u32 header length, a JSON header, a u64 payload length, the payload."""
    header_start = _PREFIX.size + _V1_HEADER_LENGTH.size
    if len(container) < header_start:
        raise TruncatedError("container is truncated (shorter than its fixed header)")
    (header_length,) = _V1_HEADER_LENGTH.unpack_from(container, _PREFIX.size)
    if header_length > MAX_HEADER_BYTES:
        raise CorruptPayloadError(f"header length {header_length} is over the limit")
    payload_start = header_start + header_length + _V1_PAYLOAD_LENGTH.size
    if len(container) < payload_start + _CRC.size:
        raise TruncatedError("container is truncated (header cut short)")
    (payload_length,) = _V1_PAYLOAD_LENGTH.unpack_from(container, payload_start - 8)
    _check_size_and_crc(container, payload_start + payload_length)
    fields = _parse_json(bytes(container[header_start : header_start + header_length]), "header")
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
    try:
        digest = bytes.fromhex(fields["original_sha256"])
    except ValueError:
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise CorruptPayloadError("container header is corrupt (bad 'original_sha256')")
    header = ContainerHeader(1, fields["compressor"], fields["params"],
                             fields["original_length"], digest)
    return header, bytes(container[payload_start : payload_start + payload_length])


def _spec(header: ContainerHeader) -> CompressorSpec:
    try:
        return compressor_spec(header.compressor)
    except UnknownCompressorError as error:
        raise ContainerError(f"container needs compressor {quoted(header.compressor)}, which "
                             "this gencomp does not have") from error


def decoding_params(header: ContainerHeader, spec: CompressorSpec) -> dict[str, Any]:
    """The parameters to rebuild the compressor with, from what the container says.
    Runtime parameters it holds (containers made before they were told apart may record
    `workers`, say) are ignored; a parameter the compressor does not take is an error."""
    recorded = {key: value for key, value in header.params.items()
                if key not in spec.runtime_params}
    unknown = sorted(set(recorded) - set(spec.defaults))
    if unknown:
        raise ContainerError(f"container gives {spec.name} parameters it does not take: "
                             f"{', '.join(map(quoted, unknown[:3]))}"
                             f"{' ...' if len(unknown) > 3 else ''}")
    if header.version == 1:
        return recorded
    implicit = {key: value
                for key, value in IMPLICIT_PARAMS[header.version].get(spec.name, {}).items()
                if key in spec.defaults}
    return {**implicit, **recorded}


def unpack(container: bytes, max_output_bytes: int | None = None,
           runtime_params: dict[str, Any] | None = None) -> bytes:
    """Decode a .gcz container to the exact original bytes, or raise a ContainerError.

    `max_output_bytes` caps the original length a container may declare (default:
    `gencomp.limits.default_output_limit()`). `runtime_params` (a model compressor's
    `workers`, `device`) say how to run the decoder; only the compressor's
    `runtime_params` may be given."""
    pieces: list[bytes] = []
    unpack_to(container, pieces.append, max_output_bytes, runtime_params)
    return b"".join(pieces)


def unpack_to(container: bytes, write: Callable[[bytes], object],
              max_output_bytes: int | None = None,
              runtime_params: dict[str, Any] | None = None) -> None:
    """`unpack`, handing the output to `write` a piece at a time as the codec decodes it,
    so that a container that declares gigabytes decodes in bounded memory. The length
    and digest are checked once the last piece is out: `write` must keep the pieces
    where they can be thrown away if this raises (`gencomp.fileio.streamed_output`)."""
    header, payload = read_header(container)
    limit = default_output_limit() if max_output_bytes is None else max_output_bytes
    if header.original_length > limit:
        raise SizeLimitError(f"container declares {header.original_length} bytes, over the "
                             f"limit of {limit}")
    spec = _spec(header)
    runtime = dict(runtime_params or {})
    not_runtime = sorted(set(runtime) - set(spec.runtime_params))
    if not_runtime:
        raise UsageError(f"{', '.join(not_runtime)}: not a runtime parameter of {spec.name} "
                         f"(those are: {', '.join(spec.runtime_params) or 'none'}); the "
                         "container records the others")
    try:
        compressor = get_compressor(spec.name, **decoding_params(header, spec), **runtime)
    except UsageError as error:
        raise ContainerError(f"container parameters are invalid: {error}") from error
    digest = hashlib.sha256()
    length = 0
    for piece in compressor.decompress_pieces(payload, max_output_bytes=header.original_length):
        digest.update(piece)
        length += len(piece)
        write(piece)
    if length != header.original_length:
        raise ChecksumMismatchError(f"decoded {length} bytes, the container declares "
                                    f"{header.original_length}")
    if digest.digest()[: len(header.original_digest)] != header.original_digest:
        raise ChecksumMismatchError("decoded bytes do not match the original's SHA-256")
