"""Arithmetic coder benchmark: overhead over the ideal code length, and speed.

    python benchmarks/bench_coder.py [--megabytes 1] [--reference-symbols 20000]

Runs the context-mixing predictor over the first megabyte of enwik8 (independent
2048-byte chunks, as the compressor does) and codes every byte under its distribution:

- overhead: one stream of all symbols vs Σ −log2 p (what quantisation to 24-bit
  frequencies and the coder's arithmetic cost), and per-chunk streams as the payload
  stores them (each also pays for its final 32-bit words);
- speed: gencomp.arithmetic (constriction) against a plain-Python arithmetic coder, below,
  on the same symbols and distributions; both round trips are checked.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gencomp import arithmetic  # noqa: E402
from gencomp.constants import ENWIK8_SAMPLE  # noqa: E402
from gencomp.locations import find_data  # noqa: E402
from predictors.cm import ContextMixingPredictor, table_bits_for  # noqa: E402

CHUNK_SIZE = 2048
BATCH_SIZE = 64


class ReferenceArithmeticCoder:
    """The textbook integer arithmetic coder (Witten, Neal & Cleary, 1987) in plain Python:
    32-bit low/high, underflow bits held back until the interval settles. Each float row
    is quantised to integer frequencies (every symbol at least 1) summing to at most 2**16.
    """

    BITS = 32
    TOP = (1 << BITS) - 1
    HALF = 1 << (BITS - 1)
    QUARTER = 1 << (BITS - 2)
    FREQUENCY_TOTAL = 1 << 16

    @classmethod
    def frequencies(cls, row: list[float]) -> list[int]:
        scale = (cls.FREQUENCY_TOTAL - len(row)) / sum(row)
        return [1 + int(p * scale) for p in row]

    @classmethod
    def interval(cls, row: list[float], symbol: int) -> tuple[int, int, int]:
        frequencies = cls.frequencies(row)
        low = sum(frequencies[:symbol])
        return low, low + frequencies[symbol], sum(frequencies)

    @classmethod
    def encode(cls, symbols: list[int], rows: list[list[float]]) -> list[int]:
        low, high, pending, bits = 0, cls.TOP, 0, []

        def emit(bit: int) -> None:
            nonlocal pending
            bits.append(bit)
            bits.extend([1 - bit] * pending)
            pending = 0

        for symbol, row in zip(symbols, rows, strict=True):
            cumulative_low, cumulative_high, total = cls.interval(row, symbol)
            span = high - low + 1
            high = low + span * cumulative_high // total - 1
            low = low + span * cumulative_low // total
            while True:
                if high < cls.HALF:
                    emit(0)
                elif low >= cls.HALF:
                    emit(1)
                    low, high = low - cls.HALF, high - cls.HALF
                elif low >= cls.QUARTER and high < 3 * cls.QUARTER:
                    pending += 1
                    low, high = low - cls.QUARTER, high - cls.QUARTER
                else:
                    break
                low, high = 2 * low, 2 * high + 1
        pending += 1
        emit(0 if low < cls.QUARTER else 1)
        return bits

    @classmethod
    def decode(cls, bits: list[int], rows: list[list[float]]) -> list[int]:
        def bit_at(index: int) -> int:
            return bits[index] if index < len(bits) else 0

        low, high, value = 0, cls.TOP, 0
        for index in range(cls.BITS):
            value = 2 * value + bit_at(index)
        position, symbols = cls.BITS, []
        for row in rows:
            frequencies = cls.frequencies(row)
            total = sum(frequencies)
            span = high - low + 1
            target = ((value - low + 1) * total - 1) // span
            symbol, cumulative = 0, 0
            while cumulative + frequencies[symbol] <= target:
                cumulative += frequencies[symbol]
                symbol += 1
            symbols.append(symbol)
            high = low + span * (cumulative + frequencies[symbol]) // total - 1
            low = low + span * cumulative // total
            while True:
                if high < cls.HALF:
                    pass
                elif low >= cls.HALF:
                    low, high, value = low - cls.HALF, high - cls.HALF, value - cls.HALF
                elif low >= cls.QUARTER and high < 3 * cls.QUARTER:
                    low, high = low - cls.QUARTER, high - cls.QUARTER
                    value -= cls.QUARTER
                else:
                    break
                low, high = 2 * low, 2 * high + 1
                value = 2 * value + bit_at(position)
                position += 1
        return symbols


def model_probabilities(data: bytes, keep: int) -> tuple[float, int, int, np.ndarray,
                                                          np.ndarray]:
    """Code `data` under the CM predictor's distributions, chunked as the compressor does.

    Returns (ideal bits, one-stream bits, per-chunk-stream bits, and the first `keep`
    symbols with their rows, for the speed comparison)."""
    predictor = ContextMixingPredictor(table_bits_for(CHUNK_SIZE))  # as cm sizes a chunk
    one_stream = arithmetic.Encoder()
    log2_terms, chunk_bits = [], 0
    kept_symbols, kept_rows = [], []
    for start in range(0, len(data), CHUNK_SIZE * BATCH_SIZE):
        group = np.frombuffer(data[start:start + CHUNK_SIZE * BATCH_SIZE], dtype=np.uint8)
        group = group.reshape(-1, CHUNK_SIZE)
        encoders = [arithmetic.Encoder() for _ in group]
        state, probabilities = predictor.start(len(group))
        rows = np.arange(len(group))
        for position in range(CHUNK_SIZE):
            symbols = group[:, position]
            log2_terms.append(np.log2(probabilities[rows, symbols]))
            one_stream.encode(symbols, probabilities)
            for row, encoder in enumerate(encoders):
                encoder.encode(symbols[row:row + 1], probabilities[row:row + 1])
            if sum(len(s) for s in kept_symbols) < keep:
                kept_symbols.append(symbols.astype(np.int64))
                kept_rows.append(probabilities.copy())
            if position + 1 < CHUNK_SIZE:
                probabilities = predictor.step(state, symbols)
        chunk_bits += sum(32 * len(encoder.words()) for encoder in encoders)
    ideal = math.fsum(-np.concatenate(log2_terms))
    return (ideal, 32 * len(one_stream.words()), chunk_bits,
            np.concatenate(kept_symbols)[:keep], np.concatenate(kept_rows)[:keep])


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1.0)
    parser.add_argument("--reference-symbols", type=int, default=20000)
    args = parser.parse_args()
    num_chunks = max(1, round(args.megabytes * (1 << 20) / CHUNK_SIZE))
    path = find_data(ENWIK8_SAMPLE)
    if path is None:
        raise SystemExit(f"no {ENWIK8_SAMPLE} in a data folder (set $GENCOMP_DATA)")
    data = path.read_bytes()[: num_chunks * CHUNK_SIZE]

    (ideal, one_stream, per_chunk, symbols, rows), model_seconds = timed(
        model_probabilities, data, args.reference_symbols)
    print(f"input: {len(data):,} bytes of enwik8, CM probabilities in {model_seconds:.0f} s")
    print(f"ideal code length      {ideal / 8:12,.0f} bytes ({ideal / 8 / len(data):.4%})")
    print(f"one stream             {one_stream / 8:12,.0f} bytes   overhead "
          f"{(one_stream - ideal) / ideal:.4%}")
    print(f"{len(data) // CHUNK_SIZE} chunk streams       {per_chunk / 8:12,.0f} bytes   "
          f"overhead {(per_chunk - ideal) / ideal:.4%} (each chunk ends on whole words)")

    words, encode_seconds = timed(arithmetic.encode, symbols, rows)
    decoded, decode_seconds = timed(arithmetic.decode, words, rows)
    assert np.array_equal(decoded, symbols), "gencomp.arithmetic round trip failed"
    decoder = arithmetic.Decoder(words)
    stepped, stepped_seconds = timed(lambda: [decoder.decode(row) for row in rows])
    assert stepped == symbols.tolist(), "symbol-by-symbol decoding failed"
    row_lists, symbol_list = rows.tolist(), symbols.tolist()
    bits, reference_encode_seconds = timed(ReferenceArithmeticCoder.encode, symbol_list,
                                           row_lists)
    reference_decoded, reference_decode_seconds = timed(ReferenceArithmeticCoder.decode,
                                                        bits, row_lists)
    assert reference_decoded == symbol_list, "reference round trip failed"

    count = len(symbols)
    print(f"\nspeed on {count:,} symbols, symbols/s:   ours   reference   speed-up")
    for what, ours, reference in (
        ("encode (arrays)", encode_seconds, reference_encode_seconds),
        ("decode (arrays)", decode_seconds, reference_decode_seconds),
        ("decode (one call per symbol)", stepped_seconds, reference_decode_seconds),
    ):
        print(f"{what:30s} {count / ours:11,.0f} {count / reference:9,.0f} "
              f"{reference / ours:9,.0f}x")
    print(f"reference size {len(bits) / 8:,.0f} bytes vs gencomp {4 * len(words):,} bytes")


if __name__ == "__main__":
    main()
