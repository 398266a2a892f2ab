"""PNG: bytes laid out as an 8-bit grayscale image, compressed by Pillow (optimize=True).

Layout is what makes PNG a model of images: its filters predict each pixel from the one
above and the one to the left, so the width must be the image's real width. Give it
(`width=64` for 32×64 ImageNet patches); without it we use the paper's rule, the two
closest factors of the length (2048 → 32 rows of 64), with the wider side as the width.
With an explicit width the last row is padded with zeros, and the padding is recorded in a
tEXt chunk (only then), so the exact length comes back.

Sampling images (`for_image`). A partly generated image ends in a partial row, which a
PNG file pads with zeros: then appending a 0 costs nothing and every other byte a whole
byte, and PNG "generates" black. So `PngImageLayout` scores a partial image differently
from how it writes it: data shorter than a row as a row of its own length, otherwise full
rows of the image's width with the partial last row completed as PNG's Average filter
predicts it (`complete_last_row`: each pixel the mean of its left and upper neighbours).
Counted in bytes, that is the completed file's size (the completion is coded almost for
free). Counted in bits, it is what a decoder reads until it has the last real pixel
(`streaming_bits`): the completion is not counted at all. Both choices matter:
- Counting the whole file, deflate codes the completion as one long match, and a candidate
  that joins it is free: the sampler copies whatever the completion holds.
- The completion still decides the row's filter (Pillow takes the filter with the smallest
  residuals over the whole row). Completed by the pixels above, the row is Up-filtered and
  each candidate priced by its difference from the pixel above alone: the bottom half of a
  patch came out as vertical stripes (roughness across rows 0.40 × the original's, median
  of 10 tuning crops). Completed as the Average filter predicts, it is priced by its
  difference from the mean of both neighbours (1.12 × across, 0.61 × along;
  `benchmarks/bench_bit_exact.py --split tune`).

Units. Exact bits: the zlib stream inside the IDAT chunks is deflate, which ends inside
its last byte (`gencomp.codecs.deflate` finds where); every other byte of the file
(signature, chunk headers and CRCs, the zlib header and Adler-32) is framing, counted
whole.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from gencomp.compressor import DECODE_PIECE_BYTES, Compressor, output_limit, register
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError
from gencomp.preprocessing import closest_factors

_PADDING_KEY = "gencomp-padding"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
_CHUNK_CRC = struct.Struct(">I")
#: Deflate expands at most 1032:1, so n bytes of PNG hold at most 1032·n pixels.
_DEFLATE_MAX_RATIO = 1032
#: IHDR after width and height: bit depth 8, colour type 0 (grayscale), compression,
#: filter method and interlace method 0.
_GRAYSCALE_8_BIT = bytes([8, 0, 0, 0, 0])
#: The zlib stream's framing: a 2-byte header before the deflate stream, Adler-32 after.
_ZLIB_HEADER_BITS, _ZLIB_TRAILER_BYTES = 16, 4


@register("png", "PNG (Pillow, 8-bit grayscale, optimize=True); width = image width")
class PngCompressor(Compressor):
    name = "png"
    length_units = ("bytes", "bits")

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
        from PIL import Image, PngImagePlugin  # loaded by the first PNG, not by every command

        rows, columns, padding = self.layout(len(data))
        image = Image.frombytes("L", (columns, rows), data + bytes(padding))
        info = PngImagePlugin.PngInfo()
        if padding:
            info.add_text(_PADDING_KEY, str(padding))
        with io.BytesIO() as buffer:
            image.save(buffer, format="PNG", optimize=True, pnginfo=info)
            return buffer.getvalue()

    def payload_bits(self, payload: bytes) -> float:
        """The file less the zero bits after the final end-of-block code of its deflate
        stream."""
        from gencomp.codecs import deflate  # numba kernels: loaded on the first exact count
        if not payload:
            return 0.0
        stream = b"".join(data for chunk_type, data in chunks(payload) if chunk_type == b"IDAT")
        if len(stream) < 6 or stream[1] & 0x20:
            raise ValueError("png: IDAT is not a zlib stream without a preset dictionary")
        end = deflate.final_block_end(stream, _ZLIB_HEADER_BITS)
        return 8.0 * len(payload) - (8 * (len(stream) - _ZLIB_TRAILER_BYTES) - end)

    def for_image(self, width: int) -> PngImageLayout:
        return PngImageLayout(width)

    def streaming_bits(self, image: bytes, prefix: bytes) -> float:
        """The bits of `image`'s PNG file a decoder reads until it has decoded `prefix`
        (the first pixels of `image`): the file up to the zlib stream, then the deflate
        codes up to the one that outputs `prefix`'s last pixel."""
        from gencomp.codecs import deflate  # numba kernels: loaded on the first exact count
        payload = self.compress(image)
        _, columns, _ = self.layout(len(image))
        last = len(prefix) - 1
        filtered = last // columns * (columns + 1) + 1 + last % columns + 1  # filter bytes
        stream, file_offsets = b"", []
        for offset, (kind, body) in zip(chunk_offsets(payload), chunks(payload), strict=True):
            if kind == b"IDAT":
                file_offsets.append((len(stream), offset))
                stream += body
        end = deflate.output_end(stream, _ZLIB_HEADER_BITS, filtered)
        start, offset = max(pair for pair in file_offsets if 8 * pair[0] < end)
        return float(8 * offset + end - 8 * start)

    def decompress_pieces(self, payload: bytes, max_output_bytes: int | None = None
                          ) -> Iterator[bytes]:
        """The pixels a few rows at a time: the zlib stream is inflated as far as the rows
        of one piece and their filters undone (`png_filters`), so that an image of any
        size decodes in bounded memory."""
        if not payload:
            return
        from gencomp.codecs.png_filters import unfilter  # numba kernel: loaded on first decode
        limit = output_limit(max_output_bytes)
        columns, rows = check_chunks(payload)
        # The last row holds fewer than `columns` bytes of data, the rest is padding.
        if columns * rows > limit + columns:
            raise SizeLimitError(f"png: a {columns}x{rows} image is over the limit of {limit}")
        if columns * rows > _DEFLATE_MAX_RATIO * len(payload):
            raise CorruptPayloadError(f"png: declares a {columns}x{rows} image, more than "
                                      f"{len(payload)} bytes can hold")
        found = chunks(payload)
        if found[0][1][8:] != _GRAYSCALE_8_BIT or not columns or not rows:
            raise CorruptPayloadError("png: expected a non-interlaced 8-bit grayscale image")
        padding = _padding(found)
        if not 0 <= padding < columns:
            raise CorruptPayloadError(f"png: bad padding {padding}")
        decoder = zlib.decompressobj()
        pending = b"".join(data for chunk_type, data in found if chunk_type == b"IDAT")
        above = np.zeros(columns, dtype=np.uint8)
        left = columns * rows - padding
        rows_per_piece = max(1, DECODE_PIECE_BYTES // (columns + 1))
        try:
            for first_row in range(0, rows, rows_per_piece):
                wanted = (columns + 1) * min(rows_per_piece, rows - first_row)
                filtered = b""
                while len(filtered) < wanted and not decoder.eof and pending:
                    filtered += decoder.decompress(pending, wanted - len(filtered))
                    pending = decoder.unconsumed_tail
                if len(filtered) < wanted:
                    raise TruncatedError(f"png: image data ends before row {first_row}")
                pixels = unfilter(np.frombuffer(filtered, dtype=np.uint8).reshape(-1, columns + 1),
                                  above)
                above = pixels[-1]
                piece = pixels.tobytes()[:left]
                left -= len(piece)
                yield piece
            if decoder.decompress(pending, 1) or not decoder.eof or decoder.unused_data:
                raise CorruptPayloadError("png: image data does not end after the last row")
        except (zlib.error, ValueError) as error:
            raise CorruptPayloadError(f"png: corrupt payload ({error})") from error


class PngImageLayout(PngCompressor):
    """PNG for sampling images `width` pixels wide: files are the plain codec's (zero
    padding); code lengths score partial images as laid out in the module doc, as LZMA2
    scores raw streams but writes .xz files."""

    def __init__(self, width: int) -> None:
        super().__init__(width)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        if len(data) <= self.width:
            layout = PngCompressor(width=max(len(data), 1))
            return layout.code_length_bits(data, unit) if self.length_unit(unit) == "bytes" \
                else layout.streaming_bits(data, data)
        completed = complete_last_row(data, self.width)
        if self.length_unit(unit) == "bytes":
            return super().code_length_bits(completed, unit)
        return self.streaming_bits(completed, data)


def complete_last_row(data: bytes, width: int) -> bytes:
    """`data` (at least a row of `width` pixels) with its partial last row completed as the
    Average filter predicts each pixel: ⌊(left + above) / 2⌋ (module doc)."""
    partial = len(data) % width
    if not partial:
        return data
    row = bytearray(data[len(data) - partial:])
    above = data[len(data) - partial - width:len(data) - partial]
    for column in range(partial, width):
        row.append((row[-1] + above[column]) // 2)
    return data + bytes(row[partial:])


def chunk_offsets(payload: bytes) -> list[int]:
    """Where each chunk's data starts in a PNG file we wrote."""
    found, position = [], len(_SIGNATURE)
    while position + _CHUNK_HEAD.size <= len(payload):
        length, _ = _CHUNK_HEAD.unpack_from(payload, position)
        found.append(position + _CHUNK_HEAD.size)
        position += _CHUNK_HEAD.size + length + _CHUNK_CRC.size
    return found


def chunks(payload: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk of a PNG file we wrote (not checked: see `check_chunks`)."""
    found, position = [], len(_SIGNATURE)
    while position + _CHUNK_HEAD.size <= len(payload):
        length, chunk_type = _CHUNK_HEAD.unpack_from(payload, position)
        start = position + _CHUNK_HEAD.size
        found.append((chunk_type, payload[start:start + length]))
        position = start + length + _CHUNK_CRC.size
    return found


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


def _padding(found: list[tuple[bytes, bytes]]) -> int:
    """The padding bytes the tEXt chunk we write for an explicit width records (0 if none)."""
    key = _PADDING_KEY.encode("latin-1") + b"\0"
    for chunk_type, data in found:
        if chunk_type == b"tEXt" and data.startswith(key):
            text = data[len(key):]
            if not text.isdigit() or len(text) > 9:
                raise CorruptPayloadError(f"png: bad padding {text[:20]!r}")
            return int(text)
    return 0
