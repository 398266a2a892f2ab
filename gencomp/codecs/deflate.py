"""Exact bit lengths of deflate streams (RFC 1951), by walking their blocks.

A deflate stream is one run of bits, least significant bit first; it ends with the
end-of-block code of its final block, and the byte holding that code is padded with zero
bits. So a stream of n bytes carries between 8n − 7 and 8n bits the decoder needs, and
where inside the last byte it ends is known only by decoding every code of the final
block. gzip and PNG (the zlib stream inside IDAT) write these streams; their code lengths
in bits count up to that end and then their fixed trailers.

The walk decodes codes only, never the data: how long a block is does not depend on the
window its matches copy from, so a walk may start at any block boundary. Scoring many
continuations of one context (gzip's fast path) needs more: for 32 KB of text the final
block holds ~10,000 symbols, and decoding them all per candidate would cost as much as
zlib's own coding. But the symbols deflate chooses for the context's first bytes are the
same whatever follows: the symbol at input position p depends only on the bytes up to
p + MAX_MATCH + 1 (its match, and the lazy match one byte later, each read at most 258
bytes ahead) and on the symbols before it. So `common_prefix` walks the context's own
stream once and counts, per code, the symbols of the block that holds the context's last
COMMON_MARGIN bytes that start before them; per candidate, `final_block_end` reads that
block's code description, skips those symbols at once (the sum of count × code length,
plus their extra bits), and decodes only the rest. tests/test_bit_lengths.py checks the
skip against walking every symbol.

`output_end` answers a different question, for a prefix of the input: where the code that
outputs its last byte ends, all a decoder must read to reconstruct it (PNG's sampling
layout counts a partial image that way).

Huffman codes are decoded with one lookup table per code, indexed by the next `longest`
bits of the stream (at most 15, deflate's longest code). The kernels run in numba without
the GIL, so the scoring threads walk candidates in parallel.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

_kernel = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")

#: Walk outcomes.
FINAL, OPEN, CORRUPT = 1, 0, -1
MAX_CODE_BITS = 15
MAX_MATCH = 258
#: Input bytes at the end of a context whose symbols a continuation may change, with
#: room to spare: zlib codes a position once MIN_LOOKAHEAD (262) bytes follow it, and
#: a symbol reads at most MAX_MATCH + 1 bytes ahead (see the module doc).
COMMON_MARGIN = 262 + MAX_MATCH
LITERAL_SYMBOLS, DISTANCE_SYMBOLS = 288, 30
#: The order in which a dynamic block sends its code-length code lengths.
CODE_LENGTH_ORDER = np.array([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15],
                             dtype=np.int64)
#: Extra bits after length symbols 257..285 and distance symbols 0..29, and the match
#: length each length symbol starts at.
LENGTH_EXTRA_BITS = np.array([0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0],
                             dtype=np.int64)
LENGTH_BASE = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51,
                        59, 67, 83, 99, 115, 131, 163, 195, 227, 258], dtype=np.int64)
DISTANCE_EXTRA_BITS = np.array([0, 0] + [bits for bits in range(14) for _ in range(2)],
                               dtype=np.int64)
#: The fixed code of block type 1 (RFC 1951, 3.2.6).
FIXED_LITERAL_LENGTHS = np.array([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8, dtype=np.int64)
FIXED_DISTANCE_LENGTHS = np.full(DISTANCE_SYMBOLS, 5, dtype=np.int64)


@_kernel
def _peek(stream: np.ndarray, position: int, count: int) -> int:
    """`count` (at most 25) bits from bit `position`, least significant first; bits past
    the end of the stream read as zeros (the caller checks it did not use them)."""
    first = position >> 3
    value = 0
    for index in range(4):
        if first + index < len(stream):
            value |= np.int64(stream[first + index]) << (8 * index)
    return (value >> (position & 7)) & ((1 << count) - 1)


@_kernel
def _build_table(lengths: np.ndarray, table: np.ndarray) -> int:
    """Fill `table` with the canonical Huffman code of `lengths`: the entry at every index
    whose low L bits are a symbol's L-bit code (reversed, as the stream sends codes most
    significant bit first) is symbol · 16 + L; 0 where no code matches. Returns the
    longest length (0 for an empty code), or −1 for an over-subscribed code."""
    counts = np.zeros(MAX_CODE_BITS + 1, dtype=np.int64)
    longest = 0
    for length in lengths:
        counts[length] += 1
        longest = max(longest, length)
    counts[0] = 0
    unused = 1
    for length in range(1, MAX_CODE_BITS + 1):
        unused = 2 * unused - counts[length]
        if unused < 0:
            return -1
    next_code = np.zeros(MAX_CODE_BITS + 2, dtype=np.int64)
    for length in range(1, MAX_CODE_BITS + 1):
        next_code[length + 1] = (next_code[length] + counts[length]) << 1
    size = 1 << longest
    table[:size] = 0
    for symbol in range(len(lengths)):
        length = lengths[symbol]
        if length == 0:
            continue
        code = next_code[length]
        next_code[length] += 1
        reversed_code = 0
        for _ in range(length):
            reversed_code = (reversed_code << 1) | (code & 1)
            code >>= 1
        for index in range(reversed_code, size, 1 << length):
            table[index] = symbol * 16 + length
    return longest


@_kernel
def _decode(stream: np.ndarray, position: int, table: np.ndarray, longest: int
            ) -> tuple[int, int]:
    """(symbol, bits it took) at `position`; (−1, 0) where no code matches."""
    entry = table[_peek(stream, position, longest)] if longest else 0
    if entry == 0:
        return -1, 0
    return entry >> 4, entry & 15


@_kernel
def _read_dynamic_code(stream: np.ndarray, position: int, literal_lengths: np.ndarray,
                       distance_lengths: np.ndarray, scratch: np.ndarray
                       ) -> tuple[int, bool]:
    """Read a dynamic block's code description at `position` into the two length arrays.
    Returns (position after it, True), or (position reached, False) where it is corrupt."""
    literal_count = _peek(stream, position, 5) + 257
    distance_count = _peek(stream, position + 5, 5) + 1
    code_length_count = _peek(stream, position + 10, 4) + 4
    position += 14
    code_length_lengths = np.zeros(19, dtype=np.int64)
    for index in range(code_length_count):
        code_length_lengths[CODE_LENGTH_ORDER[index]] = _peek(stream, position, 3)
        position += 3
    longest = _build_table(code_length_lengths, scratch)
    if longest <= 0 or literal_count > 286 or distance_count > 30:
        return position, False
    lengths = np.zeros(literal_count + distance_count, dtype=np.int64)
    filled = 0
    while filled < len(lengths):
        symbol, used = _decode(stream, position, scratch, longest)
        if symbol < 0:
            return position, False
        position += used
        if symbol < 16:
            lengths[filled] = symbol
            filled += 1
            continue
        if symbol == 16:
            if filled == 0:
                return position, False
            value, repeat = lengths[filled - 1], 3 + _peek(stream, position, 2)
            position += 2
        elif symbol == 17:
            value, repeat = 0, 3 + _peek(stream, position, 3)
            position += 3
        else:
            value, repeat = 0, 11 + _peek(stream, position, 7)
            position += 7
        if filled + repeat > len(lengths):
            return position, False
        lengths[filled:filled + repeat] = value
        filled += repeat
    if lengths[256] == 0:  # a block without an end-of-block code cannot end
        return position, False
    literal_lengths[:] = 0
    distance_lengths[:] = 0
    literal_lengths[:literal_count] = lengths[:literal_count]
    distance_lengths[:distance_count] = lengths[literal_count:]
    return position, True


@_kernel
def _failure(position: int, longest: int, total_bits: int) -> int:
    """A code that does not decode at `position` is corrupt, unless it may be one that
    reaches past the end of the stream (read as zeros): then the block is still open."""
    return OPEN if position + max(longest, 1) > total_bits else CORRUPT


@_kernel
def _walk_symbols(stream: np.ndarray, position: int, literal_table: np.ndarray,
                  literal_longest: int, distance_table: np.ndarray, distance_longest: int
                  ) -> tuple[int, int]:
    """Decode symbols from `position` up to and including the end-of-block code.
    Returns (bit after it, FINAL), or (bit where the symbol that runs past the stream
    starts, OPEN), or (where the one that does not decode starts, CORRUPT).

    The hot loop. Bits come from a 64-bit buffer, refilled a byte at a time (zeros past
    the end) whenever it holds fewer than 48 bits, the most one length/distance pair
    takes (15 + 5 + 15 + 13); it never holds more than 63, so it stays a non-negative
    int64."""
    total_bits = 8 * len(stream)
    literal_mask = (1 << literal_longest) - 1
    distance_mask = (1 << distance_longest) - 1
    next_byte = position >> 3
    buffer = 0
    buffered = 0
    while buffered < 56:
        if next_byte < len(stream):
            buffer |= np.int64(stream[next_byte]) << buffered
        next_byte += 1
        buffered += 8
    skip = position & 7
    buffer >>= skip
    buffered -= skip
    symbol_start = position
    while True:
        if position > total_bits:  # the last symbol ran past the end
            return symbol_start, OPEN
        if buffered < 48:
            while buffered < 56:
                if next_byte < len(stream):
                    buffer |= np.int64(stream[next_byte]) << buffered
                next_byte += 1
                buffered += 8
        symbol_start = position
        entry = literal_table[buffer & literal_mask] if literal_longest \
            else 0
        used = entry & 15
        if used == 0:
            return symbol_start, _failure(position, literal_longest, total_bits)
        symbol = entry >> 4
        if symbol < 256:
            buffer >>= used
            buffered -= used
            position += used
            continue
        if symbol == 256:
            position += used
            return (position, FINAL) if position <= total_bits else (symbol_start, OPEN)
        if symbol > 285:
            return symbol_start, CORRUPT
        extra = LENGTH_EXTRA_BITS[symbol - 257]
        buffer >>= used + extra
        buffered -= used + extra
        position += used + extra
        entry = distance_table[buffer & distance_mask] \
            if distance_longest else 0
        used = entry & 15
        if used == 0 or entry >> 4 > 29:
            return symbol_start, _failure(position, distance_longest, total_bits)
        extra = DISTANCE_EXTRA_BITS[entry >> 4]
        buffer >>= used + extra
        buffered -= used + extra
        position += used + extra
        if position > total_bits:
            return symbol_start, OPEN


@_kernel
def _read_block_code(stream: np.ndarray, position: int, block_type: int,
                     literal_lengths: np.ndarray, distance_lengths: np.ndarray,
                     literal_table: np.ndarray, distance_table: np.ndarray,
                     scratch: np.ndarray) -> tuple[int, int, int, int]:
    """The codes of a Huffman block (type 1 or 2) whose description starts at `position`:
    fills the length arrays and tables. Returns (position after the description,
    longest literal/length code, longest distance code, outcome)."""
    total_bits = 8 * len(stream)
    if block_type == 1:
        literal_lengths[:] = FIXED_LITERAL_LENGTHS
        distance_lengths[:] = FIXED_DISTANCE_LENGTHS
    else:
        position, readable = _read_dynamic_code(stream, position, literal_lengths,
                                                distance_lengths, scratch)
        if position > total_bits:
            return position, 0, 0, OPEN
        if not readable:
            return position, 0, 0, _failure(position, MAX_CODE_BITS, total_bits)
    literal_longest = _build_table(literal_lengths, literal_table)
    distance_longest = _build_table(distance_lengths, distance_table)
    if literal_longest <= 0 or distance_longest < 0:
        return position, 0, 0, CORRUPT
    return position, literal_longest, distance_longest, FINAL


@_kernel
def _walk_blocks(stream: np.ndarray, position: int, skip_literals: np.ndarray,
                 skip_distances: np.ndarray, skip_extra_bits: int) -> tuple[int, int]:
    """Walk blocks from bit `position` until the final one ends: (bit after it, FINAL),
    or (the bit where the block that runs past the stream starts, OPEN), or CORRUPT.
    The first block's first symbols are skipped: `skip_literals[s]` literal/length and
    `skip_distances[d]` distance symbols, with `skip_extra_bits` extra bits in all."""
    total_bits = 8 * len(stream)
    literal_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    distance_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    scratch = np.empty(1 << 7, dtype=np.int32)
    literal_lengths = np.zeros(LITERAL_SYMBOLS, dtype=np.int64)
    distance_lengths = np.zeros(DISTANCE_SYMBOLS, dtype=np.int64)
    first = True
    while True:
        block_start = position
        if position + 3 > total_bits:
            return block_start, OPEN
        final = _peek(stream, position, 1)
        block_type = _peek(stream, position + 1, 2)
        position += 3
        if block_type == 0:  # stored: byte-aligned LEN, NLEN, then LEN bytes
            position = (position + 7) & ~7
            if position + 32 > total_bits:
                return block_start, OPEN
            length = _peek(stream, position, 16)
            if length != (~_peek(stream, position + 16, 16) & 0xFFFF):
                return block_start, CORRUPT
            position += 32 + 8 * length
            if position > total_bits:
                return block_start, OPEN
        elif block_type == 3:
            return block_start, CORRUPT
        else:
            position, literal_longest, distance_longest, outcome = _read_block_code(
                stream, position, block_type, literal_lengths, distance_lengths,
                literal_table, distance_table, scratch)
            if outcome != FINAL:
                return block_start, outcome
            if first:
                for symbol in range(LITERAL_SYMBOLS):
                    if skip_literals[symbol] and not literal_lengths[symbol]:
                        return block_start, CORRUPT  # not the block the counts came from
                    position += skip_literals[symbol] * literal_lengths[symbol]
                for symbol in range(DISTANCE_SYMBOLS):
                    if skip_distances[symbol] and not distance_lengths[symbol]:
                        return block_start, CORRUPT
                    position += skip_distances[symbol] * distance_lengths[symbol]
                position += skip_extra_bits
            position, outcome = _walk_symbols(stream, position, literal_table,
                                              literal_longest, distance_table,
                                              distance_longest)
            if outcome != FINAL:
                return block_start, outcome
        first = False
        if final:
            return position, FINAL


@_kernel
def _common_prefix(stream: np.ndarray, position: int, cut: int,
                   literal_counts: np.ndarray, distance_counts: np.ndarray
                   ) -> tuple[int, int, int]:
    """Walk a complete stream from bit `position`, following how many input bytes its
    symbols produce, to the block that holds the first symbol starting at input byte
    `cut` or later (or the final block). Fills the counts of that block's symbols before
    that one; returns (the block's first bit, their extra bits, outcome)."""
    total_bits = 8 * len(stream)
    literal_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    distance_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    scratch = np.empty(1 << 7, dtype=np.int32)
    literal_lengths = np.zeros(LITERAL_SYMBOLS, dtype=np.int64)
    distance_lengths = np.zeros(DISTANCE_SYMBOLS, dtype=np.int64)
    produced = 0
    while True:
        block_start = position
        literal_counts[:] = 0
        distance_counts[:] = 0
        extra_bits = 0
        if position + 3 > total_bits:
            return block_start, 0, OPEN
        final = _peek(stream, position, 1)
        block_type = _peek(stream, position + 1, 2)
        position += 3
        if block_type == 0:
            position = (position + 7) & ~7
            length = _peek(stream, position, 16)
            if produced + length > cut or final:
                return block_start, 0, FINAL
            position += 32 + 8 * length
            produced += length
            if position > total_bits:
                return block_start, 0, OPEN
            continue
        if block_type == 3:
            return block_start, 0, CORRUPT
        position, literal_longest, distance_longest, outcome = _read_block_code(
            stream, position, block_type, literal_lengths, distance_lengths, literal_table,
            distance_table, scratch)
        if outcome != FINAL:
            return block_start, 0, outcome
        while produced < cut:
            symbol, used = _decode(stream, position, literal_table, literal_longest)
            if symbol < 0 or symbol > 285 or position + used > total_bits:
                return block_start, 0, CORRUPT
            position += used
            if symbol == 256:
                break
            literal_counts[symbol] += 1
            if symbol < 256:
                produced += 1
                continue
            extra = LENGTH_EXTRA_BITS[symbol - 257]
            produced += LENGTH_BASE[symbol - 257] + _peek(stream, position, extra)
            position += extra
            symbol, used = _decode(stream, position, distance_table, distance_longest)
            if symbol < 0 or symbol > 29:
                return block_start, 0, CORRUPT
            distance_counts[symbol] += 1
            position += used + DISTANCE_EXTRA_BITS[symbol]
            extra_bits += extra + DISTANCE_EXTRA_BITS[symbol]
        else:
            return block_start, extra_bits, FINAL
        if final:
            return block_start, extra_bits, FINAL


@_kernel
def _output_end(stream: np.ndarray, position: int, target: int) -> tuple[int, int]:
    """Walk a complete stream from bit `position` to the code that outputs its `target`-th
    byte: (the bit just after that code and its extra bits, FINAL), or CORRUPT."""
    total_bits = 8 * len(stream)
    literal_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    distance_table = np.empty(1 << MAX_CODE_BITS, dtype=np.int32)
    scratch = np.empty(1 << 7, dtype=np.int32)
    literal_lengths = np.zeros(LITERAL_SYMBOLS, dtype=np.int64)
    distance_lengths = np.zeros(DISTANCE_SYMBOLS, dtype=np.int64)
    produced = 0
    while position + 3 <= total_bits:
        final = _peek(stream, position, 1)
        block_type = _peek(stream, position + 1, 2)
        position += 3
        if block_type == 0:
            position = (position + 7) & ~7
            length = _peek(stream, position, 16)
            position += 32
            if produced + length >= target:
                return position + 8 * (target - produced), FINAL
            position += 8 * length
            produced += length
        elif block_type == 3:
            return position, CORRUPT
        else:
            position, literal_longest, distance_longest, outcome = _read_block_code(
                stream, position, block_type, literal_lengths, distance_lengths,
                literal_table, distance_table, scratch)
            if outcome != FINAL:
                return position, CORRUPT
            while True:
                symbol, used = _decode(stream, position, literal_table, literal_longest)
                if symbol < 0 or symbol > 285 or position + used > total_bits:
                    return position, CORRUPT
                position += used
                if symbol == 256:
                    break
                if symbol < 256:
                    produced += 1
                else:
                    extra = LENGTH_EXTRA_BITS[symbol - 257]
                    produced += LENGTH_BASE[symbol - 257] + _peek(stream, position, extra)
                    position += extra
                    symbol, used = _decode(stream, position, distance_table, distance_longest)
                    if symbol < 0 or symbol > 29:
                        return position, CORRUPT
                    position += used + DISTANCE_EXTRA_BITS[symbol]
                if produced >= target:
                    return position, FINAL
        if final:
            break
    return position, CORRUPT


_NO_SKIP = (np.zeros(LITERAL_SYMBOLS, dtype=np.int64), np.zeros(DISTANCE_SYMBOLS, dtype=np.int64))


class CommonPrefix(NamedTuple):
    """Where candidates' streams start to differ: the first bit of the block they may
    change, and the symbols at its start that they share (counts per code, extra bits)."""

    block_start: int
    literal_counts: np.ndarray
    distance_counts: np.ndarray
    extra_bits: int


def common_prefix(stream: bytes, position: int, input_length: int) -> CommonPrefix:
    """For the complete stream of an input of `input_length` bytes, starting at bit
    `position`: what every stream of that input followed by more bytes shares with it
    (see the module doc)."""
    literal_counts, distance_counts = (np.zeros_like(counts) for counts in _NO_SKIP)
    block_start, extra_bits, outcome = _common_prefix(
        np.frombuffer(stream, dtype=np.uint8), position, input_length - COMMON_MARGIN,
        literal_counts, distance_counts)
    if outcome != FINAL:
        raise ValueError(f"not a complete deflate stream (bad block at bit {block_start})")
    return CommonPrefix(block_start, literal_counts, distance_counts, extra_bits)


def final_block_end(stream: bytes, position: int = 0, skip: CommonPrefix | None = None
                    ) -> int:
    """The bit just past the end-of-block code of the final block, walking the blocks
    from the one that starts at bit `position`, whose first symbols may be skipped as
    `skip` says. ValueError on a stream that ends before it or is not deflate."""
    literal_counts, distance_counts = _NO_SKIP if skip is None else skip[1:3]
    end, outcome = _walk_blocks(np.frombuffer(stream, dtype=np.uint8), position,
                                literal_counts, distance_counts,
                                0 if skip is None else skip.extra_bits)
    if outcome == OPEN:
        raise ValueError("deflate stream is truncated (no final block)")
    if outcome == CORRUPT:
        raise ValueError(f"not a deflate stream (bad block at bit {end})")
    return end


def output_end(stream: bytes, position: int, output_bytes: int) -> int:
    """The bit just after the code (with its extra bits) that outputs byte number
    `output_bytes` of the complete stream at bit `position`: all a decoder must read to
    reconstruct the first `output_bytes` bytes. ValueError if the stream is shorter."""
    end, outcome = _output_end(np.frombuffer(stream, dtype=np.uint8), position, output_bytes)
    if outcome != FINAL:
        raise ValueError(f"deflate stream does not output {output_bytes} bytes")
    return end
