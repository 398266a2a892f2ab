"""Throughput of the Transformer compressor on real enwik8 chunks, per engine.

The CPU engine ("kernels", `predictors/transformer_kernels.py`) computes every probability
in one fixed order of float32 operations, so the encoder scores a whole 2048-byte chunk in
one call while the decoder steps it byte by byte, and both get identical bits. We time:

- the encoder's scoring (`sequence_distributions`) and the decoder's stepping (batch 1, as
  the coder decodes), on one core, without the arithmetic coder;
- the torch engine's stepping (`--torch-batch-sizes`), the exact path before the kernels
  (and the one a GPU uses), on one core;
- `compress` / `decompress` through the coder in `--workers` processes, one group of
  `--codec-batch-size` chunks each, starting them included; the round trip is checked.

    python benchmarks/bench_transformer.py
    python benchmarks/bench_transformer.py --codec-chunks 256 --torch-batch-sizes 8 32
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from predictors.transformer import load_pretrained

ENWIK8 = Path(__file__).resolve().parents[1] / "../shared/data/text/enwik8_first_4154400_bytes"
CHUNK_SIZE = 2048


def enwik8_chunks(count: int) -> list[bytes]:
    """`count` chunks from the held-out end of our enwik8 sample (never trained on)."""
    data = ENWIK8.read_bytes()
    start = len(data) - count * CHUNK_SIZE
    return [data[start + i * CHUNK_SIZE : start + (i + 1) * CHUNK_SIZE] for i in range(count)]


def timed(label: str, work, chunks: list[bytes]) -> None:
    """Run `work(chunks)` once to warm up (numba's cache, allocations), then time it."""
    work(chunks[:1])
    started = time.perf_counter()
    bits = work(chunks)
    elapsed = time.perf_counter() - started
    total = sum(map(len, chunks))
    print(f"{label:44s} {total / elapsed / 1000:6.2f} KB/s  ({bits / total:.4f} bits/byte)")


def scored_bits(predictor, chunks: list[bytes]) -> float:
    bits = 0.0
    for chunk in chunks:
        rows = predictor.sequence_distributions(chunk)
        bits -= np.log2(rows[np.arange(len(chunk)), np.frombuffer(chunk, np.uint8)]).sum()
    return bits


def stepped_bits(predictor, chunks: list[bytes]) -> float:
    """Step `chunks` as one batch, byte by byte, as a decoder does."""
    symbols = np.stack([np.frombuffer(chunk, np.uint8) for chunk in chunks])
    rows = np.arange(len(chunks))
    state, probabilities = predictor.start(len(chunks))
    bits = -np.log2(probabilities[rows, symbols[:, 0]]).sum()
    for position in range(1, symbols.shape[1]):
        probabilities = predictor.step(state, symbols[:, position - 1])
        bits -= np.log2(probabilities[rows, symbols[:, position]]).sum()
    return float(bits)


def bench_codec(size: str, num_chunks: int, batch_size: int, workers: int) -> None:
    from gencomp.compressor import get_compressor

    compressor = get_compressor("transformer", size=size, batch_size=batch_size,
                                workers=workers)
    data = b"".join(enwik8_chunks(num_chunks))
    started = time.perf_counter()
    payload = compressor.compress(data)
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    restored = compressor.decompress(payload)
    decompress_s = time.perf_counter() - started
    if restored != data:
        raise SystemExit("round trip FAILED: decompressed bytes differ")
    print(f"coder, engine {compressor.predictor.engine}, {workers} workers, groups of "
          f"{batch_size}, {len(data):,} bytes: rate {100 * len(payload) / len(data):.2f}%  "
          f"compress {len(data) / compress_s / 1000:.2f} KB/s  "
          f"decompress {len(data) / decompress_s / 1000:.2f} KB/s  (round trip exact)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200k")
    parser.add_argument("--chunks", type=int, default=4,
                        help="chunks for the one-core timings")
    parser.add_argument("--torch-batch-sizes", type=int, nargs="*", default=[32])
    parser.add_argument("--codec-chunks", type=int, default=128,
                        help="chunks to compress/decompress through the coder")
    parser.add_argument("--codec-batch-size", type=int, default=32,
                        help="chunks per group (one group per worker at a time)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()
    print(f"transformer {arguments.size}, CPU, 2048-byte held-out enwik8 chunks; "
          "one core unless stated")
    kernels = load_pretrained(arguments.size, engine="kernels")
    chunks = enwik8_chunks(arguments.chunks)
    timed("kernels, encoder: whole chunk per call", lambda c: scored_bits(kernels, c), chunks)
    timed("kernels, decoder: stepping, batch 1",
          lambda c: sum(stepped_bits(kernels, [chunk]) for chunk in c), chunks)
    pytorch = load_pretrained(arguments.size, engine="torch")
    for batch_size in arguments.torch_batch_sizes:
        timed(f"torch engine, stepping, batch {batch_size}",
              lambda c: stepped_bits(pytorch, c), enwik8_chunks(batch_size))
    bench_codec(arguments.size, arguments.codec_chunks, arguments.codec_batch_size,
                arguments.workers)


if __name__ == "__main__":
    main()
