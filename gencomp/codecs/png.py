"""PNG: bytes laid out as an 8-bit grayscale image, compressed by Pillow (optimize=True).

Layout is what makes PNG a model of images: its filters predict each pixel from the one
above and the one to the left, so the width must be the image's real width. Give it
(`width=64` for 32×64 ImageNet patches); without it we use the paper's rule, the two
closest factors of the length (2048 → 32 rows of 64), with the wider side as the width.
With an explicit width the last row is padded with zeros, and the padding is recorded in a
tEXt chunk (only then), so the exact length comes back.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image, PngImagePlugin

from gencomp.compressor import Compressor, output_limit, register
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError
from gencomp.preprocessing import closest_factors

_PADDING_KEY = "gencomp-padding"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
_CHUNK_CRC = struct.Struct(">I")
#: Deflate expands at most 1032:1, so n bytes of PNG hold at most 1032·n pixels.
_DEFLATE_MAX_RATIO = 1032


@register("png", "PNG (Pillow, 8-bit grayscale, optimize=True); width = image width")
class PngCompressor(Compressor):
    name = "png"

    def __init__(self, width: int | None = None) -> None:
        if width is not None and (not isinstance(width, int) or width < 1 or width > 1 << 20):
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.width = width

    @property
    def params(self) -> dict[str, Any]:
        return {"width": self.width}

    def layout(self, length: int) -> tuple[int, int, int]:
        """(rows, columns, padding bytes) for data of `length` bytes."""
        if self.width is None:
            rows, columns = closest_factors(length)
            return rows, columns, 0
        rows = -(-length // self.width)
        return rows, self.width, rows * self.width - length

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        rows, columns, padding = self.layout(len(data))
        image = Image.frombytes("L", (columns, rows), data + bytes(padding))
        info = PngImagePlugin.PngInfo()
        if padding:
            info.add_text(_PADDING_KEY, str(padding))
        with io.BytesIO() as buffer:
            image.save(buffer, format="PNG", optimize=True, pnginfo=info)
            return buffer.getvalue()

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        if not payload:
            return b""
        limit = output_limit(max_output_bytes)
        columns, rows = check_chunks(payload)
        # The last row holds fewer than `columns` bytes of data, the rest is padding.
        if columns * rows > limit + columns:
            raise SizeLimitError(f"png: a {columns}x{rows} image is over the limit of {limit}")
        if columns * rows > _DEFLATE_MAX_RATIO * len(payload):
            raise CorruptPayloadError(f"png: declares a {columns}x{rows} image, more than "
                                      f"{len(payload)} bytes can hold")
        try:
            # PngImageFile, not Image.open: our limit replaces Pillow's pixel-count check,
            # which would refuse (and warn about) large images we wrote ourselves.
            image = PngImagePlugin.PngImageFile(io.BytesIO(payload))
            if image.mode != "L":
                raise CorruptPayloadError(f"png: expected a grayscale image, got {image.mode}")
            padding = int(image.text.get(_PADDING_KEY, "0"))
            pixels = image.tobytes()
        except CorruptPayloadError:
            raise
        except Exception as error:  # Pillow reports malformed files through many types
            raise CorruptPayloadError(f"png: corrupt payload ({error})") from error
        if not 0 <= padding < max(columns, 1) or padding > len(pixels):
            raise CorruptPayloadError(f"png: bad padding {padding}")
        output = pixels[: len(pixels) - padding]
        if len(output) > limit:
            raise SizeLimitError(f"png: payload expands past the limit of {limit}")
        return output


def check_chunks(payload: bytes) -> tuple[int, int]:
    """Check the chunk structure and every chunk's CRC-32 (Pillow does not check the pixel
    data's, so damaged pixels would decode silently); return (columns, rows) from IHDR."""
    if not payload.startswith(_SIGNATURE):
        raise CorruptPayloadError("png: payload is not a PNG (bad signature)")
    view = memoryview(payload)
    chunk_types = []
    position = len(_SIGNATURE)
    while position < len(payload):
        if position + _CHUNK_HEAD.size + _CHUNK_CRC.size > len(payload):
            raise TruncatedError("png: payload is truncated")
        length, chunk_type = _CHUNK_HEAD.unpack_from(payload, position)
        data_end = position + _CHUNK_HEAD.size + length
        if data_end + _CHUNK_CRC.size > len(payload):
            raise TruncatedError(f"png: {chunk_type!r} chunk runs past the end of the payload")
        (stored_crc,) = _CHUNK_CRC.unpack_from(payload, data_end)
        if zlib.crc32(view[position + 4 : data_end]) != stored_crc:
            raise CorruptPayloadError(f"png: {chunk_type!r} chunk fails its CRC-32")
        chunk_types.append(chunk_type)
        position = data_end + _CHUNK_CRC.size
    if not chunk_types or chunk_types[0] != b"IHDR" or chunk_types[-1] != b"IEND":
        raise CorruptPayloadError("png: payload must start with IHDR and end with IEND")
    return struct.unpack_from(">II", payload, len(_SIGNATURE) + _CHUNK_HEAD.size)
