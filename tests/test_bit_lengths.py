"""Exact code lengths in bits, checked against parsers written here independently of the
production walkers (gencomp/codecs/deflate.py, flac_frames.py): a small reference inflater
that decodes the data itself, a reference FLAC decoder that reconstructs every sample and
checks every CRC, and the real decoders' own verdicts on flipped bits. Inputs are real
(enwik8, ImageNet, LibriSpeech chunks) and random, 1,000 or more per codec, most of them
short so the pure-Python references stay fast."""

from __future__ import annotations

import bz2
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gencomp import get_compressor
from gencomp.codecs import flac_predictor, png
from gencomp.codecs.flac_predictor import LinearPredictor
from gencomp.compressor import Compressor
from gencomp.datasets import DataLocations, load_chunks

SINGLE_BYTES = [bytes([value]) for value in range(256)]


@pytest.fixture(scope="module")
def inputs(data_dir: Path) -> list[bytes]:
    """1,200 inputs: pieces of real text, image and audio chunks and random bytes, of
    0 to 700 bytes (plus a few whole 2 KB chunks)."""
    rng = random.Random(15)
    locations = DataLocations(data_dir=data_dir)
    chunks = [chunk for name in ("text", "image", "audio")
              for chunk in load_chunks(name, locations, 40)]
    found = [chunk for chunk in chunks[::20]]
    while len(found) < 1200:
        length = rng.choice([0, 1, 2, 5, 17, 64, 150, 300, 700])
        if rng.random() < 0.25:
            found.append(rng.randbytes(length))
        else:
            chunk = rng.choice(chunks)
            start = rng.randrange(len(chunk) - length + 1)
            found.append(chunk[start:start + length])
    return found


# --- a reference inflater (RFC 1951), written for clarity, not speed -------------------


class LsbBits:
    """Bits of `data` from bit `position`, least significant first."""

    def __init__(self, data: bytes, position: int):
        self.data, self.position = data, position

    def take(self, count: int) -> int:
        value = 0
        for index in range(count):
            byte = self.data[self.position >> 3]  # IndexError past the end: truncated
            value |= (byte >> (self.position & 7) & 1) << index
            self.position += 1
        return value


def canonical_code(lengths: list[int]) -> dict[tuple[int, int], int]:
    """{(length, code): symbol} of the canonical Huffman code with these lengths."""
    code, table = 0, {}
    for length in range(1, 16):
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                table[length, code] = symbol
                code += 1
        code <<= 1
    return table


def read_symbol(bits: LsbBits, table: dict[tuple[int, int], int]) -> int:
    code = 0
    for length in range(1, 16):
        code = code << 1 | bits.take(1)  # Huffman codes are sent most significant bit first
        if (length, code) in table:
            return table[length, code]
    raise ValueError("no such code")


LENGTH_BASES = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67,
                83, 99, 115, 131, 163, 195, 227, 258]
LENGTH_EXTRAS = [0] * 8 + [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
DISTANCE_BASES = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
                  769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
DISTANCE_EXTRAS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
                   11, 11, 12, 12, 13, 13]
ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


def inflate(data: bytes, position: int, ends: list[int] | None = None) -> tuple[bytes, int]:
    """(decoded bytes, bit just past the final block) of the deflate stream at `position`;
    `ends` gets, for every output byte, the bit just past the code that outputs it."""
    bits, output = LsbBits(data, position), bytearray()
    ends = [] if ends is None else ends
    while True:
        final, kind = bits.take(1), bits.take(2)
        if kind == 0:
            bits.position = -(-bits.position // 8) * 8
            length = bits.take(16)
            assert bits.take(16) == length ^ 0xFFFF
            output += data[bits.position // 8:bits.position // 8 + length]
            ends += range(bits.position + 8, bits.position + 8 * length + 1, 8)
            bits.position += 8 * length
        else:
            if kind == 1:
                literal = canonical_code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
                distance = canonical_code([5] * 30)
            else:
                literals, distances, code_lengths = bits.take(5) + 257, bits.take(5) + 1, \
                    bits.take(4) + 4
                length_lengths = [0] * 19
                for symbol in ORDER[:code_lengths]:
                    length_lengths[symbol] = bits.take(3)
                length_code, lengths = canonical_code(length_lengths), []
                while len(lengths) < literals + distances:
                    symbol = read_symbol(bits, length_code)
                    if symbol < 16:
                        lengths.append(symbol)
                    elif symbol == 16:
                        lengths += [lengths[-1]] * (3 + bits.take(2))
                    elif symbol == 17:
                        lengths += [0] * (3 + bits.take(3))
                    else:
                        lengths += [0] * (11 + bits.take(7))
                literal = canonical_code(lengths[:literals])
                distance = canonical_code(lengths[literals:])
            while (symbol := read_symbol(bits, literal)) != 256:
                if symbol < 256:
                    output.append(symbol)
                    ends.append(bits.position)
                    continue
                length = LENGTH_BASES[symbol - 257] + bits.take(LENGTH_EXTRAS[symbol - 257])
                code = read_symbol(bits, distance)
                back = DISTANCE_BASES[code] + bits.take(DISTANCE_EXTRAS[code])
                for _ in range(length):
                    output.append(output[-back])
                ends += [bits.position] * length
        if final:
            return bytes(output), bits.position


def test_reference_inflater_decodes_zlib() -> None:
    data = b"a reference inflater must decode what zlib writes " * 40
    for level in (0, 1, 9):
        stream = zlib.compress(data, level)
        assert inflate(stream, 16)[0] == data


def test_gzip_bits_end_at_the_final_end_of_block_code(inputs: list[bytes]) -> None:
    gzip = get_compressor("gzip")
    for data in inputs:
        payload = gzip.compress(data)
        decoded, end = inflate(payload, 80)
        bits = gzip.code_length_bits(data, "bits")
        assert decoded == data
        assert bits == end + 64
        assert 8 * len(payload) - 8 < bits <= 8 * len(payload)
        assert gzip.code_length_bits(data, "bytes") == 8 * len(payload)


def test_png_bits_end_at_the_final_end_of_block_code(inputs: list[bytes]) -> None:
    compressor = get_compressor("png")
    for data in inputs:
        payload = compressor.compress(data)
        bits = compressor.code_length_bits(data, "bits")
        if not data:
            assert bits == 0
            continue
        stream = b"".join(body for kind, body in png.chunks(payload) if kind == b"IDAT")
        decoded, end = inflate(stream, 16)
        assert decoded == zlib.decompress(stream)
        # The zlib stream's Adler-32 (4 bytes) follows the padded deflate stream.
        assert bits == 8 * len(payload) - (8 * (len(stream) - 4) - end)
        assert 8 * len(payload) - 8 < bits <= 8 * len(payload)


def test_png_sampling_layout_counts_the_bits_up_to_the_last_real_pixel(
        inputs: list[bytes]) -> None:
    """For sampling, a partial image's exact length is what a decoder reads until it has
    its last real pixel: checked against the reference inflater's per-byte code ends."""
    for width in (16, 64):
        layout = get_compressor("png").for_image(width)
        for data in inputs[:400]:
            if len(data) <= width:
                continue
            image = png.complete_last_row(data, width)
            payload = layout.compress(image)
            (idat_start, stream), = [(offset, body) for offset, (kind, body) in
                                     zip(png.chunk_offsets(payload), png.chunks(payload),
                                         strict=True) if kind == b"IDAT"]
            ends: list[int] = []
            decoded, _ = inflate(stream, 16, ends)
            last = len(data) - 1  # the last real pixel, behind one filter byte per row
            filtered = last // width * (width + 1) + 1 + last % width
            assert decoded == zlib.decompress(stream)
            assert layout.code_length_bits(data, "bits") == 8 * idat_start + ends[filtered]


def flipped(payload: bytes, bit: int) -> bytes:
    """`payload` with bit number `bit` flipped (bits counted from the first byte's most
    significant bit when `msb`, else least significant first)."""
    changed = bytearray(payload)
    changed[bit >> 3] ^= 1 << (bit & 7)
    return bytes(changed)


def test_gzip_decoder_ignores_the_padding_and_needs_the_last_bit(inputs: list[bytes]) -> None:
    """The real decoder's verdict: setting every bit after the end changes nothing, and
    flipping the last counted bit breaks the stream (its CRC-32 and length catch it)."""
    gzip = get_compressor("gzip")
    for data in inputs[:300]:
        payload = gzip.compress(data)
        end = int(gzip.code_length_bits(data, "bits")) - 64  # bit in deflate order
        trailer = len(payload) - 8
        padded = bytearray(payload)
        padded[trailer - 1] |= 0xFF << (end - 8 * (trailer - 1)) & 0xFF
        assert zlib.decompress(bytes(padded), 31) == data
        with pytest.raises(zlib.error):
            assert zlib.decompress(flipped(payload, end - 1), 31) == data


def test_bz2_bits_end_with_the_stream_crc(inputs: list[bytes]) -> None:
    """bz2's stream is sent most significant bit first; the decoder stops after the final
    CRC, so bits after it are free and the CRC's last bit is checked."""
    compressor = get_compressor("bz2")
    for data in inputs:
        payload = compressor.compress(data)
        bits = int(compressor.code_length_bits(data, "bits"))
        assert 8 * len(payload) - 8 < bits <= 8 * len(payload)
        padding = 8 * len(payload) - bits
        assert bz2.decompress(payload[:-1] + bytes([payload[-1] | (1 << padding) - 1])) == data
        last = bytearray(payload)
        last[(bits - 1) >> 3] ^= 0x80 >> ((bits - 1) & 7)
        with pytest.raises(OSError):
            bz2.decompress(bytes(last))


# --- a reference FLAC decoder: every sample reconstructed, every CRC checked ---------------


class MsbBits:
    def __init__(self, data: bytes, position: int = 0):
        self.data, self.position = data, position

    def take(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | (self.data[self.position >> 3] >> (7 - (self.position & 7)) & 1)
            self.position += 1
        return value

    def signed(self, count: int) -> int:
        value = self.take(count)
        return value - (1 << count) if count and value >> (count - 1) else value

    def unary(self) -> int:
        zeros = 0
        while not self.take(1):
            zeros += 1
        return zeros


def crc(data: bytes, polynomial: int, width: int) -> int:
    value = 0
    for byte in data:
        value ^= byte << (width - 8)
        for _ in range(8):
            value = (value << 1) ^ (polynomial if value >> (width - 1) & 1 else 0)
            value &= (1 << width) - 1
    return value


FIXED_COEFFICIENTS = [[], [1], [2, -1], [3, -3, 1], [4, -6, 4, -1]]


@dataclass
class Subframe:
    """A decoded subframe: its samples (at full width) and how they were coded."""

    samples: list[int]
    kind: int
    wasted: int
    coefficients: list[int]
    shift: int
    precision: int
    #: (Rice parameter, or None where stored raw; residual values) of each partition.
    partitions: list[tuple[int | None, list[int]]]
    #: The subframe's length in bits.
    bits: int


def decode_subframe(bits: MsbBits, block_size: int, sample_bits: int) -> Subframe:
    start = bits.position
    assert bits.take(1) == 0
    kind = bits.take(6)
    wasted = bits.unary() + 1 if bits.take(1) else 0
    sample_bits -= wasted
    coefficients, shift, precision, partitions = [], 0, 0, []
    if kind == 0:
        samples = [bits.signed(sample_bits)] * block_size
    elif kind == 1:
        samples = [bits.signed(sample_bits) for _ in range(block_size)]
    else:
        order = kind - 8 if kind < 32 else kind - 31
        samples = [bits.signed(sample_bits) for _ in range(order)]
        if kind < 32:
            coefficients = FIXED_COEFFICIENTS[order]
        else:
            precision = bits.take(4) + 1
            shift = bits.signed(5)
            coefficients = [bits.signed(precision) for _ in range(order)]
        parameter_bits = 4 + bits.take(2)
        partition_order = bits.take(4)
        for partition in range(1 << partition_order):
            count = (block_size >> partition_order) - (order if partition == 0 else 0)
            parameter = bits.take(parameter_bits)
            if parameter == (1 << parameter_bits) - 1:
                raw_bits = bits.take(5)
                partitions.append((None, [bits.signed(raw_bits) for _ in range(count)]))
                continue
            residual = []
            for _ in range(count):
                folded = bits.unary() << parameter | bits.take(parameter)
                residual.append(folded >> 1 ^ -(folded & 1))
            partitions.append((parameter, residual))
        for _, residual in partitions:
            for value in residual:
                history = reversed(samples[len(samples) - order:])
                prediction = sum(c * s for c, s in zip(coefficients, history, strict=True))
                samples.append(value + (prediction >> shift))
    return Subframe([sample << wasted for sample in samples], kind, wasted, coefficients,
                    shift, precision, partitions, bits.position - start)


def decode_flac(payload: bytes) -> tuple[list[int], int, list[Subframe]]:
    """(samples, padding bits of all frames, each frame's subframe) of a mono FLAC
    stream."""
    bits = MsbBits(payload, 32)
    while True:  # metadata blocks
        last, _, length = bits.take(1), bits.take(7), bits.take(24)
        bits.position += 8 * length
        if last:
            break
    samples, padding, subframes = [], 0, []
    while bits.position < 8 * len(payload):
        start = bits.position // 8
        assert bits.take(15) == 0x7FFC
        bits.take(1)
        size_code, rate_code = bits.take(4), bits.take(4)
        assert bits.take(4) == 0  # mono
        sample_bits = {1: 8, 4: 16}[bits.take(3)]
        bits.take(1)
        ones = 0
        while bits.take(1):
            ones += 1
        bits.position += 7 - ones + 8 * max(ones - 1, 0)
        if size_code in (6, 7):
            block_size = bits.take(8 if size_code == 6 else 16) + 1
        elif size_code >= 8:
            block_size = 256 << (size_code - 8)
        else:
            block_size = 192 if size_code == 1 else 576 << (size_code - 2)
        bits.take({12: 8, 13: 16, 14: 16}.get(rate_code, 0))
        header = payload[start:bits.position // 8]
        assert bits.take(8) == crc(header, 0x07, 8)
        subframes.append(decode_subframe(bits, block_size, sample_bits))
        samples += subframes[-1].samples
        padding += -bits.position % 8
        assert bits.take(-bits.position % 8) == 0
        end = bits.position // 8
        assert bits.take(16) == crc(payload[start:end], 0x8005, 16)
    return samples, padding, subframes


@pytest.mark.parametrize("sample_bits", [16, 8])
def test_flac_bits_leave_out_each_frames_padding(inputs: list[bytes], sample_bits: int,
                                                 data_dir: Path) -> None:
    flac = get_compressor("flac", sample_bits=sample_bits)
    audio = b"".join(load_chunks("audio", DataLocations(data_dir=data_dir), 8))
    several_frames = [audio[:4096 * 2 + 100], audio[5000:5000 + 4096 * 3]]
    for data in [*inputs, *several_frames]:
        payload = flac.compress(data)
        bits = flac.code_length_bits(data, "bits")
        if not data:
            assert bits == 0
            continue
        samples, padding, subframes = decode_flac(payload)
        frames = len(subframes)
        expected = (np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 128)
        assert samples == list(expected << (8 if sample_bits == 16 else 0))
        assert bits == 8 * len(payload) - padding
        assert 8 * len(payload) - 8 * frames < bits <= 8 * len(payload)


@pytest.mark.parametrize("sample_bits", [16, 8])
def test_flac_predictor_codes_subframes_as_libflac_does(sample_bits: int,
                                                        data_dir: Path) -> None:
    """`flac_predictor` against libFLAC's own subframes of real speech, decoded by the
    reference decoder above: the same predictor gives the same residual (fixed and LPC
    subframes), an LPC subframe's length is its overhead plus its partitions' Rice codes,
    and the predictor `fit` chooses codes a frame about as short as libFLAC's choice."""
    audio = b"".join(load_chunks("audio", DataLocations(data_dir=data_dir), 400))
    subframes = decode_flac(get_compressor("flac", sample_bits=sample_bits).compress(audio))[2]
    ratios = []
    for subframe in subframes:
        if subframe.kind < 8 or any(parameter is None for parameter, _ in subframe.partitions):
            continue
        predictor = LinearPredictor(tuple(subframe.coefficients), subframe.shift, 0,
                                    subframe.precision)
        samples = np.array(subframe.samples) >> subframe.wasted
        residual = np.concatenate([values for _, values in subframe.partitions])
        np.testing.assert_array_equal(predictor.residual(samples), residual)
        if subframe.kind < 32:
            continue
        rice = sum(flac_predictor.PARAMETER_BITS + int(flac_predictor.rice_bits(
            np.array(values), parameter).sum()) for parameter, values in subframe.partitions)
        overhead = predictor.overhead_bits(sample_bits, subframe.wasted)
        assert overhead - flac_predictor.PARAMETER_BITS + rice == subframe.bits
        fitted = flac_predictor.fit(samples, sample_bits, subframe.wasted)
        ratios.append(fitted.subframe_bits(samples, sample_bits, subframe.wasted)
                      / subframe.bits)
    assert len(ratios) >= 40, len(ratios)
    assert np.median(ratios) <= 1.1 and max(ratios) <= 1.5, sorted(ratios)


def test_flac_predictor_continuation_is_the_window_difference() -> None:
    """A predictor's cost of candidates after a history is what their samples add to the
    subframe; a block no longer than the order is all warm-up."""
    rng = np.random.default_rng(15)
    samples = np.cumsum(rng.integers(-3, 4, 300)).astype(np.int64)
    predictor = flac_predictor.fit(samples, 8, 0)
    assert predictor.order >= 1
    candidates = rng.integers(-40, 40, (30, 3))
    extended = [predictor.subframe_bits(np.concatenate([samples, row]), 8, 0)
                for row in candidates]
    np.testing.assert_array_equal(
        predictor.continuation_bits(samples, candidates),
        np.array(extended) - predictor.subframe_bits(samples, 8, 0))
    short = samples[:predictor.order]
    assert predictor.subframe_bits(short, 8, 0) == flac_predictor.HEADER_BITS + 8 * len(short)


# --- fast scoring paths: equal to recompressing and counting the same way -----------------


def assert_fast_is_recompression(compressor: Compressor, context: bytes,
                                 candidates: list[bytes]) -> None:
    for unit in ("bits", "bytes"):
        fast = compressor.continuation_bits(context, candidates, unit)
        slow = Compressor.continuation_bits(compressor, context, candidates, unit)
        np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_fast_bits_equal_recompression(level: int, enwik8_megabyte: bytes) -> None:
    """Contexts of every size class: inside one block, with blocks flushed before (long
    texts fill zlib's symbol buffer), past the 32 KB window, random (stored blocks)."""
    gzip = get_compressor("gzip", level=level)
    rng = random.Random(level)
    for start, length in [(0, 10), (1000, 600), (0, 2048), (5000, 33000), (200_000, 100_000)]:
        context = enwik8_megabyte[start:start + length]
        candidates = SINGLE_BYTES[::9] + [context[-40:], rng.randbytes(300), bytes(600)]
        assert_fast_is_recompression(gzip, context, candidates)
    assert_fast_is_recompression(gzip, rng.randbytes(5000), SINGLE_BYTES[::17])


def test_fast_bits_equal_recompression_png_flac_bz2(data_dir: Path) -> None:
    locations = DataLocations(data_dir=data_dir)
    image = b"".join(load_chunks("image", locations, 2))
    audio = b"".join(load_chunks("audio", locations, 4))
    layout = get_compressor("png").for_image(64)
    for length in (10, 64, 100, 1000, 2048, 2100):
        assert_fast_is_recompression(layout, image[:length], SINGLE_BYTES[::7])
    flac = get_compressor("flac")
    for length in (1, 2000, 4095, 4096, 4097, 8000):
        assert_fast_is_recompression(flac, audio[:length], SINGLE_BYTES[::7] + [audio[:50]])
    # The audio sampling window, in bits from the prompt's predictor: candidates of one
    # length at once (single samples, runs of three), contexts shorter than its order,
    # shorter than a frame and sliding.
    for prompt in (b"", audio[:5], audio[1000:4000]):
        window = flac.for_audio(prompt)
        for length in (0, 1, 5, 13, 2000, 4095, 4096, 4097, 8000):
            for candidates in (SINGLE_BYTES[::7], [audio[i:i + 3] for i in range(0, 90, 9)]):
                assert_fast_is_recompression(window, audio[:length], candidates)
    assert_fast_is_recompression(get_compressor("bz2"), audio[:3000], SINGLE_BYTES[::7])


def test_units_each_codec_offers() -> None:
    offers_bits = {"gzip", "bz2", "png", "flac"}
    for name in ("gzip", "bz2", "zstd", "brotli", "lzma2", "png", "flac"):
        compressor = get_compressor(name)
        expected = "bits" if name in offers_bits else "bytes"
        assert compressor.length_unit("bits") == expected
        assert compressor.length_unit("bytes") == "bytes"
        data = b"bytes only where the codec says so " * 3
        if name not in offers_bits:
            assert compressor.code_length_bits(data, "bits") == \
                compressor.code_length_bits(data, "bytes")
    with pytest.raises(ValueError, match="length unit"):
        get_compressor("gzip").length_unit("nats")
