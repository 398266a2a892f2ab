"""Throughput of the Transformer's exact incremental path on real enwik8 chunks.

Coding steps every 2048-byte chunk one byte at a time against a KV cache, on both the
encode and the decode side, so this path bounds both directions. For each batch size
(chunks stepped together) we time `symbol_log2_probs` over whole chunks, which is the
coder's computation without the arithmetic coder, and report steps/s and KB/s. When the
`transformer` compressor is registered, we also time `compress` / `decompress` through the
coder and check the round trip.

Stepping runs on `CODING_THREADS` torch threads (one: the thread count changes rounding),
so the incremental figures are the speed of one core. More cores help through worker
processes, one group of `--codec-batch-size` chunks each (`--workers`, default: one per
core); the coder timing includes starting them.

    python benchmarks/bench_transformer.py --batch-sizes 8 16 32 64
    python benchmarks/bench_transformer.py --batch-sizes --codec-chunks 64 --workers 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from predictors.transformer import CODING_THREADS, load_pretrained

ENWIK8 = Path(__file__).resolve().parents[1] / "../shared/data/text/enwik8_first_4154400_bytes"
CHUNK_SIZE = 2048


def enwik8_chunks(count: int) -> list[bytes]:
    """`count` chunks from the held-out end of our enwik8 sample (never trained on)."""
    data = ENWIK8.read_bytes()
    start = len(data) - count * CHUNK_SIZE
    return [data[start + i * CHUNK_SIZE : start + (i + 1) * CHUNK_SIZE] for i in range(count)]


def bench_incremental(size: str, batch_size: int) -> dict[str, float]:
    predictor = load_pretrained(size)
    chunks = enwik8_chunks(batch_size)
    started = time.perf_counter()
    log2_probs = predictor.symbol_log2_probs(chunks)
    elapsed = time.perf_counter() - started
    total_bytes = sum(len(chunk) for chunk in chunks)
    bits = -sum(float(row.sum()) for row in log2_probs)
    return {"batch": batch_size, "seconds": elapsed, "steps_per_s": CHUNK_SIZE / elapsed,
            "kb_per_s": total_bytes / elapsed / 1000, "bits_per_byte": bits / total_bytes}


def bench_codec(size: str, num_chunks: int, batch_size: int, workers: int
                ) -> dict[str, float] | None:
    """compress/decompress through the registered coder, or None if not registered yet."""
    from gencomp.compressor import available_compressors, get_compressor

    if "transformer" not in available_compressors():
        return None
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
    return {"bytes": len(data), "rate_percent": 100 * len(payload) / len(data),
            "compress_kb_per_s": len(data) / compress_s / 1000,
            "decompress_kb_per_s": len(data) / decompress_s / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200k")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--codec-chunks", type=int, default=64,
                        help="chunks to compress/decompress through the coder")
    parser.add_argument("--codec-batch-size", type=int, default=32,
                        help="chunks per group (one group per worker at a time)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()
    print(f"transformer {arguments.size}, {CODING_THREADS} thread, CPU float32, "
          f"2048-byte enwik8 chunks, incremental KV-cache path")
    for batch_size in arguments.batch_sizes:
        result = bench_incremental(arguments.size, batch_size)
        print(f"batch {result['batch']:3d}: {result['steps_per_s']:7.1f} steps/s  "
              f"{result['kb_per_s']:6.2f} KB/s  ({result['bits_per_byte']:.3f} bits/byte)")
    codec = bench_codec(arguments.size, arguments.codec_chunks, arguments.codec_batch_size,
                        arguments.workers)
    if codec is None:
        print("gencomp 'transformer' compressor not registered yet: coder timing skipped")
    else:
        print(f"get_compressor('transformer', batch_size={arguments.codec_batch_size}, "
              f"workers={arguments.workers}) on {codec['bytes']:,} bytes: rate "
              f"{codec['rate_percent']:.2f}%  compress {codec['compress_kb_per_s']:.2f} KB/s  "
              f"decompress {codec['decompress_kb_per_s']:.2f} KB/s  (round trip exact)")


if __name__ == "__main__":
    main()
