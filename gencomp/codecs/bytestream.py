"""Codecs that turn bytes into one byte stream with a general-purpose library.

They share one mechanism: a streaming decoder that is fed the payload and asked for at
most `limit + 1` bytes, so a payload that expands past the caller's limit is refused
without ever allocating the expanded size (decompression bombs). Each codec only says how
to encode and how to open its streaming decoder.
"""

from __future__ import annotations

import bz2
import zlib
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import brotli
import zstandard

from gencomp.compressor import Compressor, register
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError

#: A streaming decoder step: (payload, max_output) -> (output, finished, unused_input_length).
StreamDecoder = Callable[[bytes, int], tuple[bytes, bool, int]]

DEFAULT_MAX_OUTPUT_BYTES = 1 << 32


class ByteStreamCompressor(Compressor):
    """A compressor whose payload is the byte stream of one library call.

    Code length ℓ_C(x) = 8 × len(compress(x)): byte-granular, so continuation lengths
    differ in steps of 8 bits.
    """

    #: Exceptions the library raises on a malformed stream.
    library_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def compress(self, data: bytes) -> bytes: ...

    @abstractmethod
    def _decode_stream(self, payload: bytes, max_output: int) -> tuple[bytes, bool, int]:
        """Decode at most `max_output` bytes; return (output, stream ended, unused bytes)."""

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        limit = DEFAULT_MAX_OUTPUT_BYTES if max_output_bytes is None else max_output_bytes
        try:
            output, finished, unused = self._decode_stream(payload, limit + 1)
        except self.library_errors as error:
            raise CorruptPayloadError(f"{self.name}: corrupt payload ({error})") from error
        if len(output) > limit:
            raise SizeLimitError(f"{self.name}: payload expands past the limit of {limit} bytes")
        if not finished:
            raise TruncatedError(f"{self.name}: payload is truncated")
        if unused:
            raise CorruptPayloadError(f"{self.name}: {unused} unexpected bytes after the stream")
        return output


def _check_level(level: int, lowest: int, highest: int, what: str = "level") -> int:
    if not isinstance(level, int) or isinstance(level, bool) or not lowest <= level <= highest:
        raise ValueError(f"{what} must be an integer from {lowest} to {highest}, got {level!r}")
    return level


@register("gzip", "DEFLATE in the gzip format (zlib), as the paper's gzip -9", level_param="level")
class GzipCompressor(ByteStreamCompressor):
    """gzip via zlib with a fixed header (mtime 0), so equal inputs give equal bytes."""

    name = "gzip"
    library_errors = (zlib.error,)
    GZIP_WBITS = 31

    def __init__(self, level: int = 9) -> None:
        self.level = _check_level(level, 0, 9)

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def new_compressobj(self) -> Any:
        """The zlib stream `compress` uses; fast scoring copies it after the context."""
        return zlib.compressobj(self.level, zlib.DEFLATED, self.GZIP_WBITS)

    def compress(self, data: bytes) -> bytes:
        stream = self.new_compressobj()
        return stream.compress(data) + stream.flush()

    def _decode_stream(self, payload: bytes, max_output: int) -> tuple[bytes, bool, int]:
        decoder = zlib.decompressobj(self.GZIP_WBITS)
        output = decoder.decompress(payload, max_output)
        return output, decoder.eof, len(decoder.unused_data)


@register("bz2", "bzip2 (Burrows-Wheeler), block size 900k", level_param="level")
class Bz2Compressor(ByteStreamCompressor):
    name = "bz2"
    library_errors = (OSError, ValueError, EOFError)

    def __init__(self, level: int = 9) -> None:
        self.level = _check_level(level, 1, 9)

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def compress(self, data: bytes) -> bytes:
        return bz2.compress(data, self.level)

    def _decode_stream(self, payload: bytes, max_output: int) -> tuple[bytes, bool, int]:
        decoder = bz2.BZ2Decompressor()
        output = decoder.decompress(payload, max_output)
        return output, decoder.eof, len(decoder.unused_data)


@register("zstd", "Zstandard (zstandard), level 19 by default", level_param="level")
class ZstdCompressor(ByteStreamCompressor):
    """Zstandard frames with the content size in the header and no checksum (the .gcz
    container checks integrity)."""

    name = "zstd"
    library_errors = (zstandard.ZstdError,)

    def __init__(self, level: int = 19) -> None:
        self.level = _check_level(level, 1, 22)
        self._compressor = zstandard.ZstdCompressor(level=self.level, write_content_size=True)

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def _decode_stream(self, payload: bytes, max_output: int) -> tuple[bytes, bool, int]:
        # The stream decoder has no output cap, so check the frame's declared size first
        # (our frames always declare it; libzstd verifies it while decoding).
        declared = zstandard.frame_content_size(payload)
        if declared < 0:
            raise zstandard.ZstdError("frame does not declare its content size")
        if declared >= max_output:
            raise SizeLimitError(f"zstd: frame declares {declared} bytes, over the limit")
        decoder = zstandard.ZstdDecompressor().decompressobj()
        output = decoder.decompress(payload)
        return output, decoder.eof, len(decoder.unused_data)


@register("brotli", "Brotli, quality 11 by default", level_param="quality")
class BrotliCompressor(ByteStreamCompressor):
    name = "brotli"
    library_errors = (brotli.error,)

    def __init__(self, quality: int = 11) -> None:
        self.quality = _check_level(quality, 0, 11, "quality")

    @property
    def params(self) -> dict[str, Any]:
        return {"quality": self.quality}

    def compress(self, data: bytes) -> bytes:
        return brotli.compress(data, quality=self.quality)

    def _decode_stream(self, payload: bytes, max_output: int) -> tuple[bytes, bool, int]:
        decoder = brotli.Decompressor()
        output = decoder.process(payload, output_buffer_limit=max_output)
        while len(output) < max_output and not decoder.can_accept_more_data():
            output += decoder.process(b"", output_buffer_limit=max_output - len(output))
        # Brotli consumes the whole input or fails, so it reports no unused bytes.
        return output[:max_output], decoder.is_finished(), 0
