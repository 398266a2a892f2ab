"""Unsigned LEB128 integers ("varints"): 7 bits a byte, low bits first, the high bit set on
every byte but the last. Small numbers, the usual case in our headers, take one or two
bytes; a reader never accepts more bytes than a value of its declared width needs."""

from __future__ import annotations

from gencomp.errors import CorruptPayloadError, TruncatedError


def encode(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"a varint is unsigned, got {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode(data: bytes, offset: int, what: str, max_bits: int = 64) -> tuple[int, int]:
    """The varint at `offset` and the offset after it. A value cut off by the end of
    `data` is a TruncatedError; one longer than `max_bits` allow, a CorruptPayloadError."""
    value = 0
    for shift in range(0, max_bits, 7):
        if offset >= len(data):
            raise TruncatedError(f"{what} is truncated")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> max_bits:
                break
            return value, offset
    raise CorruptPayloadError(f"{what} is corrupt (a number over {max_bits} bits)")
