"""Codecs that turn bytes into one byte stream with a general-purpose library.

They share one mechanism: a streaming decoder that hands its output back in pieces of at
most about `DECODE_PIECE_BYTES`, so decoding holds one piece at a time however much a
payload expands (49 KB of zstd can declare 1.25 GiB of zeros), and output past the
caller's limit is refused as it arrives. Each codec only says how to encode and how to
drive its library's streaming decoder.

Scoring continuations (`continuation_bits`, what samplers call 256 times per generated
byte) is exact and fast: gzip deflates the context once and finishes a copy of the stream
per candidate; zstd compresses the candidates in libzstd's own threads; the others
recompress on a pool of threads (these libraries release the GIL while they compress).
Each path gives exactly the numbers of recompression; tests/test_samplers_scoring.py
checks that.

Units. gzip counts exact bits: its deflate stream ends inside its last byte, and where is
found by walking the blocks (`gencomp.codecs.deflate`); the header and trailer are fixed
bytes. bz2 counts them too: its stream ends with a 48-bit end-of-stream magic number and a
32-bit CRC at any bit, then zero bits to the byte boundary, so the end is where that magic
number sits. zstd and brotli count bytes: a zstd block holds up to seven bitstreams, each
padded on its own (Huffman weights, one or four literal streams, three table
descriptions, the sequences), and brotli's end is known only by decoding the whole last
meta-block, so neither has a short exact parse here.
"""

from __future__ import annotations

import bz2
import functools
import os
import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import brotli
import numpy as np
import zstandard

from gencomp.compressor import (
    DECODE_PIECE_BYTES,
    Compressor,
    check_int_range,
    output_limit,
    register,
)
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError

#: zstd's decoder returns all it can make of the input it is given, so it is fed this
#: much at a time: a block of at most 128 KiB of output takes at least 4 bytes (a
#: repeated byte), which bounds a piece to 4 MiB.
ZSTD_FEED_BYTES = 128

#: Below this much input to recompress per scoring call, threads cost more than they save.
PARALLEL_MIN_BYTES = 1 << 16
#: Fewer candidates than this are finished on one thread by gzip's fast path.
PARALLEL_MIN_CANDIDATES = 32
SCORING_THREADS = min(8, os.cpu_count() or 1)
#: Input handed to libzstd per batch call when scoring (the texts are built in memory).
ZSTD_BATCH_BYTES = 1 << 26

Item = TypeVar("Item")


@functools.cache
def _scoring_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=SCORING_THREADS, thread_name_prefix="gencomp-scoring")


def parallel_map(function: Callable[[Item], float], items: Sequence[Item],
                 worth_threads: bool) -> list[float]:
    """`[function(item) for item in items]`, split into one contiguous share per worker
    thread when the caller says the work is worth it. Only useful for functions that
    release the GIL, as zlib, bz2, lzma and brotli do while compressing."""
    if SCORING_THREADS == 1 or len(items) < 2 or not worth_threads:
        return [function(item) for item in items]
    share = -(-len(items) // SCORING_THREADS)
    shares = [items[start:start + share] for start in range(0, len(items), share)]
    results = _scoring_pool().map(lambda part: [function(item) for item in part], shares)
    return [value for part in results for value in part]


def recompressed_continuation_bits(compressor: Compressor, context: bytes,
                                   candidates: Sequence[bytes], unit: str) -> np.ndarray:
    """ℓ(context·c) − ℓ(context) by recompressing every context·c, on the scoring threads:
    the base class's computation, in parallel."""
    total_bytes = sum(len(context) + len(candidate) for candidate in candidates)
    bits = parallel_map(lambda candidate: compressor.code_length_bits(context + candidate,
                                                                      unit),
                        [b"", *candidates], total_bytes >= PARALLEL_MIN_BYTES)
    return np.array(bits[1:], dtype=np.float64) - bits[0]


class ByteStreamCompressor(Compressor):
    """A compressor whose payload is the byte stream of one library call.

    In bytes, ℓ_C(x) = 8 × len(compress(x)): continuation lengths differ in steps of 8
    bits. Codecs that can count exact bits say so in `length_units`.
    """

    #: Exceptions the library raises on a malformed stream.
    library_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def compress(self, data: bytes) -> bytes: ...

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """Exact: recompression, spread over threads (the library releases the GIL)."""
        return recompressed_continuation_bits(self, context, candidates, unit)

    @abstractmethod
    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        """The library's output for `payload`, in bounded pieces; a TruncatedError if the
        stream ends early, a CorruptPayloadError if bytes follow its end."""

    def decompress_pieces(self, payload: bytes, max_output_bytes: int | None = None
                          ) -> Iterator[bytes]:
        limit = output_limit(max_output_bytes)
        produced = 0
        try:
            for piece in self._decoded_pieces(payload, limit):
                produced += len(piece)
                if produced > limit:
                    raise SizeLimitError(f"{self.name}: payload expands past the limit of "
                                         f"{limit} bytes")
                yield piece
        except self.library_errors as error:
            raise CorruptPayloadError(f"{self.name}: corrupt payload ({error})") from error


def drained(name: str, decoder: Any, payload: bytes) -> Iterator[bytes]:
    """The pieces of a zlib, bz2 or lzma decompressor fed `payload`: each call asks for at
    most DECODE_PIECE_BYTES. zlib hands back the input it did not read
    (`unconsumed_tail`); bz2 and lzma keep it and are asked again with nothing new."""
    pending = payload
    while not decoder.eof:
        piece = decoder.decompress(pending, DECODE_PIECE_BYTES)
        unread = getattr(decoder, "unconsumed_tail", b"")
        if not piece and len(unread) == len(pending) and getattr(decoder, "needs_input", True):
            raise TruncatedError(f"{name}: payload is truncated")  # it wants input: none left
        pending = unread
        yield piece
    if decoder.unused_data:
        raise CorruptPayloadError(f"{name}: {len(decoder.unused_data)} unexpected bytes "
                                  "after the stream")


@register("gzip", "DEFLATE in the gzip format (zlib), as the paper's gzip -9", level_param="level")
class GzipCompressor(ByteStreamCompressor):
    """gzip via zlib with a fixed header (mtime 0), so equal inputs give equal bytes."""

    name = "gzip"
    length_units = ("bytes", "bits")
    library_errors = (zlib.error,)
    GZIP_WBITS = 31
    #: zlib's gzip framing: a 10-byte header (no name, comment or extra field) before the
    #: deflate stream, and CRC-32 and length (8 bytes) after it.
    HEADER_BITS, TRAILER_BITS = 80, 64

    def __init__(self, level: int = 9) -> None:
        self.level = check_int_range(level, 0, 9, "level")

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def new_compressobj(self) -> Any:
        """The zlib stream `compress` uses; fast scoring copies it after the context."""
        return zlib.compressobj(self.level, zlib.DEFLATED, self.GZIP_WBITS)

    def compress(self, data: bytes) -> bytes:
        stream = self.new_compressobj()
        return stream.compress(data) + stream.flush()

    def payload_bits(self, payload: bytes) -> float:
        """The header, the deflate stream up to its final end-of-block code, the trailer."""
        from gencomp.codecs import deflate  # numba kernels: loaded on the first exact count
        if payload[3] != 0:
            raise ValueError("gzip: expected zlib's header without optional fields")
        end = deflate.final_block_end(payload, self.HEADER_BITS)
        return float(end + self.TRAILER_BITS)

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """Exact, without recompressing the context: deflate it once, then per candidate
        finish a copy of that stream with the candidate.

        Deflate's output does not depend on how its input is split across `compress`
        calls: it codes a position only once 262 bytes follow it (MIN_LOOKAHEAD, room for
        the longest match) or when told to finish, and starts a block only when its symbol
        buffer is full. So the bytes emitted for the context plus those of the finished
        copy are exactly `compress(context + candidate)`. Per candidate this costs the
        match search over the held-back bytes and the coding of the last block, not
        O(context); the copies are finished on the scoring threads (zlib releases the
        GIL). Level 0 writes stored blocks whose sizes follow the output buffer, so it
        recompresses instead.

        In bits, each finished stream is walked from the block that the candidates may
        change, skipping the symbols they all share (`deflate.common_prefix`, found once
        from the context's own stream): per candidate that is the block's code
        description and its last few hundred symbols, whatever the context's length.
        """
        if self.level == 0:
            return recompressed_continuation_bits(self, context, candidates, unit)
        stream = self.new_compressobj()
        head = stream.compress(context)

        def finish(candidate: bytes) -> bytes:
            branch = stream.copy()
            return branch.compress(candidate) + branch.flush()

        if self.length_unit(unit) == "bytes":
            def length(candidate: bytes) -> float:
                return 8.0 * (len(head) + len(finish(candidate)))
        else:
            from gencomp.codecs import deflate  # numba kernels: loaded on the first exact count

            shared = deflate.common_prefix(head + finish(b""), self.HEADER_BITS, len(context))
            # Walk from the byte holding the block's first bit (it may lie in the finish).
            kept = min(shared.block_start >> 3, len(head))
            head_rest, start = head[kept:], shared.block_start - 8 * kept

            def length(candidate: bytes) -> float:
                end = deflate.final_block_end(head_rest + finish(candidate), start, shared)
                return float(8 * kept + end + self.TRAILER_BITS)

        lengths = parallel_map(length, [b"", *candidates],
                               len(candidates) >= PARALLEL_MIN_CANDIDATES)
        return np.array(lengths[1:], dtype=np.float64) - lengths[0]

    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        return drained(self.name, zlib.decompressobj(self.GZIP_WBITS), payload)


@register("bz2", "bzip2 (Burrows-Wheeler), block size 900k", level_param="level")
class Bz2Compressor(ByteStreamCompressor):
    name = "bz2"
    length_units = ("bytes", "bits")
    library_errors = (OSError, ValueError, EOFError)
    #: A bzip2 stream ends with this 48-bit magic number and a 32-bit CRC, at any bit
    #: position, then zero bits up to a byte boundary. No shift of the magic number by
    #: 1 to 7 bits overlaps itself, so at most one padding length fits.
    END_OF_STREAM = 0x177245385090
    END_BITS = 48 + 32

    def __init__(self, level: int = 9) -> None:
        self.level = check_int_range(level, 1, 9, "level")

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def compress(self, data: bytes) -> bytes:
        return bz2.compress(data, self.level)

    def payload_bits(self, payload: bytes) -> float:
        """The stream up to the end of its final CRC: its length less the padding."""
        last_bits = int.from_bytes(payload[-11:], "big")
        for padding in range(8):
            if last_bits & ((1 << padding) - 1) == 0 and \
                    last_bits >> (padding + 32) & ((1 << 48) - 1) == self.END_OF_STREAM:
                return 8.0 * len(payload) - padding
        raise ValueError("bz2: no end-of-stream marker")

    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        return drained(self.name, bz2.BZ2Decompressor(), payload)


@register("zstd", "Zstandard (zstandard), level 19 by default", level_param="level")
class ZstdCompressor(ByteStreamCompressor):
    """Zstandard frames with the content size in the header and no checksum (the .gcz
    container checks integrity)."""

    name = "zstd"
    library_errors = (zstandard.ZstdError,)

    def __init__(self, level: int = 19) -> None:
        self.level = check_int_range(level, 1, 22, "level")
        self._compressor = zstandard.ZstdCompressor(level=self.level, write_content_size=True)

    @property
    def params(self) -> dict[str, Any]:
        return {"level": self.level}

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """Exact: every context·c compressed as its own frame by libzstd's worker threads.
        (A `zstandard.ZstdCompressor` must not be shared between Python threads, so this
        uses libzstd's batch call with a compressor of its own.) In bytes, whatever the
        unit asked: zstd offers no other."""
        compressor = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
        texts = [b"", *candidates]
        per_batch = max(1, ZSTD_BATCH_BYTES // (len(context) + 1))
        lengths = []
        for start in range(0, len(texts), per_batch):
            batch = [context + text for text in texts[start:start + per_batch]]
            frames = compressor.multi_compress_to_buffer(batch, threads=-1)
            lengths += [len(frames[index]) for index in range(len(batch))]
        return 8.0 * (np.array(lengths[1:], dtype=np.float64) - lengths[0])

    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        # Our frames always declare their size (libzstd checks it while decoding): a
        # frame that does not is not ours, one that declares too much is refused unread.
        declared = zstandard.frame_content_size(payload)
        if declared < 0:
            raise zstandard.ZstdError("frame does not declare its content size")
        if declared > limit:
            raise SizeLimitError(f"zstd: frame declares {declared} bytes, over the limit of "
                                 f"{limit}")
        decoder = zstandard.ZstdDecompressor().decompressobj()
        for start in range(0, len(payload), ZSTD_FEED_BYTES):
            if decoder.eof:
                raise CorruptPayloadError(f"zstd: {len(payload) - start} unexpected bytes "
                                          "after the stream")
            yield decoder.decompress(payload[start:start + ZSTD_FEED_BYTES])
        if not decoder.eof:
            raise TruncatedError("zstd: payload is truncated")
        if decoder.unused_data:
            raise CorruptPayloadError(f"zstd: {len(decoder.unused_data)} unexpected bytes "
                                      "after the stream")


@register("brotli", "Brotli, quality 11 by default", level_param="quality")
class BrotliCompressor(ByteStreamCompressor):
    name = "brotli"
    library_errors = (brotli.error,)

    def __init__(self, quality: int = 11) -> None:
        self.quality = check_int_range(quality, 0, 11, "quality")

    @property
    def params(self) -> dict[str, Any]:
        return {"quality": self.quality}

    def compress(self, data: bytes) -> bytes:
        return brotli.compress(data, quality=self.quality)

    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        # Brotli takes the whole input at once (bytes after the stream are an error) and
        # keeps what its output limit left undecoded until asked again with no input.
        decoder = brotli.Decompressor()
        piece = decoder.process(payload, output_buffer_limit=DECODE_PIECE_BYTES)
        while piece:
            yield piece
            if decoder.is_finished():
                return
            piece = decoder.process(b"", output_buffer_limit=DECODE_PIECE_BYTES)
        if not decoder.is_finished():
            raise TruncatedError("brotli: payload is truncated")
