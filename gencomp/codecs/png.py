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
import math
from typing import Any

from PIL import Image, PngImagePlugin

from gencomp.compressor import Compressor, register
from gencomp.errors import CorruptPayloadError, SizeLimitError

_PADDING_KEY = "gencomp-padding"
_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def closest_factors(length: int) -> tuple[int, int]:
    """(rows, columns) with rows × columns = length, rows ≤ columns, as close as possible."""
    rows = math.isqrt(length)
    while length % rows:
        rows -= 1
    return rows, length // rows


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
        if not payload.endswith(_IEND_CHUNK):
            raise CorruptPayloadError("png: payload does not end with an IEND chunk")
        try:
            image = Image.open(io.BytesIO(payload), formats=["PNG"])
            columns, rows = image.size
            if max_output_bytes is not None and columns * rows > max_output_bytes + columns:
                raise SizeLimitError(f"png: a {columns}x{rows} image is over the limit")
            if image.mode != "L":
                raise CorruptPayloadError(f"png: expected a grayscale image, got {image.mode}")
            padding = int(image.text.get(_PADDING_KEY, "0"))
            pixels = image.tobytes()
        except (SizeLimitError, CorruptPayloadError):
            raise
        except Exception as error:  # Pillow reports malformed files through many types
            raise CorruptPayloadError(f"png: corrupt payload ({error})") from error
        if not 0 <= padding < max(columns, 1) or padding > len(pixels):
            raise CorruptPayloadError(f"png: bad padding {padding}")
        output = pixels[: len(pixels) - padding]
        if max_output_bytes is not None and len(output) > max_output_bytes:
            raise SizeLimitError(f"png: payload expands past the limit of {max_output_bytes}")
        return output
