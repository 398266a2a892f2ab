"""Throughput of the Transformer compressor on real enwik8 chunks, as a fraction of this
machine's own peak, measured in the same run.

The CPU engines (`predictors/transformer_kernels.py`: "kernels-f16", the default, and
"kernels", the first) compute every probability in one fixed order of float32 operations,
so the encoder scores a whole 2048-byte chunk in one call while the decoder steps it byte
by byte, and both get identical bits. For each engine (`--engines`) we time:

- the peak: a float32 matrix product through numpy on one BLAS thread (pinned below,
  before numpy loads), best of several, measured before and after the kernels;
- the encoder's scoring (`sequence_distributions`) and the decoder's stepping (batch 1, as
  the coder decodes; `--decode-batch-sizes` adds chunks stepped together, which share each
  pass over the weights), on one core, without the arithmetic coder, each as KB/s,
  GFLOP/s and a fraction of the peak, from the model's FLOPs per byte computed from its
  shapes;
- with `--held-out`, its rate on the whole held-out tail (what the model card reports);
- the torch engine's stepping (`--torch-batch-sizes`), the exact path before the kernels
  (and the one a GPU uses), on one core;
- `compress` / `decompress` of 2048-byte chunks through the coder with `--workers` (the
  default engine), the round trip checked.

Times are the CPU time of the thread doing the work (best of `--repeats`), so that other
processes sharing the cores do not count; the coder's are wall-clock.

    python benchmarks/bench_transformer.py --held-out
    python benchmarks/bench_transformer.py --chunks 2 --codec-chunks 0 --torch-batch-sizes
"""

from __future__ import annotations

import os

# One BLAS thread for the peak (set before numpy loads its BLAS).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from machine import cpu_model  # noqa: E402

from gencomp.constants import ENWIK8_SAMPLE  # noqa: E402
from gencomp.locations import find_data  # noqa: E402
from predictors.transformer import (  # noqa: E402
    KERNEL_ENGINES,
    TransformerConfig,
    load_pretrained,
)

CHUNK_SIZE = 2048
PEAK_SIZE = 512


def enwik8_sample() -> bytes:
    path = find_data(ENWIK8_SAMPLE)
    if path is None:
        raise SystemExit(f"no {ENWIK8_SAMPLE} in a data folder (set $GENCOMP_DATA)")
    return path.read_bytes()


def enwik8_chunks(count: int) -> list[bytes]:
    """`count` chunks from the held-out end of our enwik8 sample (never trained on)."""
    data = enwik8_sample()
    start = len(data) - count * CHUNK_SIZE
    return [data[start + i * CHUNK_SIZE : start + (i + 1) * CHUNK_SIZE] for i in range(count)]


def best_cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """The least CPU time of this thread over `repeats` runs of `work`."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best


def matmul_peak_flops(repeats: int) -> float:
    """FLOP/s of a float32 (PEAK_SIZE)² matrix product on one thread, best of `repeats`."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((PEAK_SIZE, PEAK_SIZE), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: BLAS loads its kernel
    return 2 * PEAK_SIZE**3 / best_cpu_seconds(lambda: a @ b, repeats)


def flops_per_byte(config: TransformerConfig, chunk_size: int) -> tuple[float, float]:
    """(projections, attention) multiply-adds × 2 per byte of a chunk, from the shapes:
    q, k, v, out, the two feed-forward layers and the head per position, and attention's
    scores and weighted values over the position's context (on average (n + 1) / 2 keys
    for a chunk of n bytes; the kernels' padding to whole blocks is not counted)."""
    dim = config.embedding_dim
    hidden = config.widening_factor * dim
    projections = 2 * (config.num_layers * (4 * dim * dim + 2 * dim * hidden) + dim * 256)
    attention = 2 * config.num_layers * 2 * dim * (chunk_size + 1) / 2
    return projections, attention


def scored_bits(predictor, chunk: bytes) -> float:
    rows = predictor.sequence_distributions(chunk)
    return -np.log2(rows[np.arange(len(chunk)), np.frombuffer(chunk, np.uint8)]).sum()


def stepped_bits(predictor, chunks: list[bytes]) -> float:
    """Step `chunks` as one batch, byte by byte, as a decoder does."""
    symbols = np.stack([np.frombuffer(chunk, np.uint8) for chunk in chunks])
    rows = np.arange(len(chunks))
    picked = np.empty(symbols.shape)  # each coded byte's probability
    state, probabilities = predictor.start(len(chunks))
    picked[:, 0] = probabilities[rows, symbols[:, 0]]
    for position in range(1, symbols.shape[1]):
        probabilities = predictor.step(state, symbols[:, position - 1])
        picked[:, position] = probabilities[rows, symbols[:, position]]
    return float(-np.log2(picked).sum())


def report(label: str, seconds_per_chunk: float, flops: float, peak: float,
           bits_per_byte: float) -> None:
    achieved = flops * CHUNK_SIZE / seconds_per_chunk
    print(f"{label:40s} {CHUNK_SIZE / seconds_per_chunk / 1000:6.2f} KB/s  "
          f"{achieved / 1e9:6.1f} GFLOP/s  {100 * achieved / peak:5.1f} % of peak  "
          f"({bits_per_byte:.4f} bits/byte)")


def held_out_tail() -> bytes:
    """The model card's held-out part: the last tenth of the enwik8 sample."""
    from predictors.train import HELD_OUT_FRACTION

    data = enwik8_sample()
    return data[int(len(data) * (1 - HELD_OUT_FRACTION)):]


def held_out_rate(predictor, tail: bytes) -> float:
    """The rate in % of `tail` in 2048-byte chunks, each from an empty context, scored as
    the encoder does."""
    bits = sum(scored_bits(predictor, tail[i:i + CHUNK_SIZE])
               for i in range(0, len(tail), CHUNK_SIZE))
    return 100 * bits / 8 / len(tail)


def bench_codec(size: str, num_chunks: int, batch_size: int, workers: int) -> None:
    from gencomp.compressor import get_compressor

    # chunk_size: the paper's independent chunks (the coder streams windows by default)
    compressor = get_compressor("transformer", size=size, chunk_size=CHUNK_SIZE,
                                batch_size=batch_size, workers=workers)
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
          f"decompress {len(data) / decompress_s / 1000:.2f} KB/s  (wall, round trip exact)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200k")
    parser.add_argument("--chunks", type=int, default=2,
                        help="chunks for the one-core timings (each timed separately)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each one-core timing; the fastest counts")
    parser.add_argument("--engines", nargs="+", default=list(KERNEL_ENGINES),
                        choices=KERNEL_ENGINES, help="CPU kernels to time (default: both)")
    parser.add_argument("--held-out", action="store_true",
                        help="also each engine's rate on the whole held-out tail (30 s each)")
    parser.add_argument("--decode-batch-sizes", type=int, nargs="*", default=[4],
                        help="kernels stepping this many chunks as one batch (besides 1)")
    parser.add_argument("--torch-batch-sizes", type=int, nargs="*", default=[32])
    parser.add_argument("--codec-chunks", type=int, default=128,
                        help="chunks to compress/decompress through the coder (0: none)")
    parser.add_argument("--codec-batch-size", type=int, default=32,
                        help="chunks per group (one group per worker at a time)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()

    peak_repeats = 7
    peak = matmul_peak_flops(peak_repeats)
    engines = {engine: load_pretrained(arguments.size, engine=engine)
               for engine in arguments.engines}
    config = next(iter(engines.values())).model_config
    projections, attention = flops_per_byte(config, CHUNK_SIZE)
    flops = projections + attention
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"transformer {arguments.size}: {flops / 1e6:.2f} MFLOP per byte of a "
          f"{CHUNK_SIZE}-byte chunk ({projections / 1e6:.2f} in the projections, "
          f"{attention / 1e6:.2f} in attention), the same for encoder and decoder")
    forms = {predictor.kernels.form for predictor in engines.values()}
    print(f"kernels compiled: {', '.join(sorted(forms))} (aot: the cached ahead-of-time "
          f"build, predictors/transformer_native.py; jit: numba's; GENCOMP_KERNELS=jit "
          f"chooses it)")
    chunks = enwik8_chunks(arguments.chunks)
    timings = {}
    for engine, predictor in engines.items():
        scored_bits(predictor, chunks[0][:64])  # warm-up: the kernels load
        timings[engine, "encoder"] = min(
            best_cpu_seconds(lambda p=predictor, c=chunk: scored_bits(p, c), arguments.repeats)
            for chunk in chunks)
        timings[engine, 1] = min(
            best_cpu_seconds(lambda p=predictor, c=chunk: stepped_bits(p, [c]),
                             arguments.repeats)
            for chunk in chunks)
        for batch_size in arguments.decode_batch_sizes:
            batch = enwik8_chunks(batch_size)
            timings[engine, batch_size] = best_cpu_seconds(
                lambda p=predictor, b=batch: stepped_bits(p, b), arguments.repeats) / batch_size
    peak = max(peak, matmul_peak_flops(peak_repeats))
    print(f"peak: numpy float32 {PEAK_SIZE}×{PEAK_SIZE} matrix product, one thread, "
          f"{peak / 1e9:.1f} GFLOP/s (best of {2 * peak_repeats}, before and after)")
    total = CHUNK_SIZE * len(chunks)
    for engine, predictor in engines.items():
        report(f"{engine}, encoder: whole chunk per call", timings[engine, "encoder"], flops,
               peak, sum(scored_bits(predictor, chunk) for chunk in chunks) / total)
        report(f"{engine}, decoder: stepping, batch 1", timings[engine, 1], flops, peak,
               sum(stepped_bits(predictor, [chunk]) for chunk in chunks) / total)
        for batch_size in arguments.decode_batch_sizes:
            batch = enwik8_chunks(batch_size)
            report(f"{engine}, decoder: stepping, batch {batch_size}",
                   timings[engine, batch_size], flops, peak,
                   stepped_bits(predictor, batch) / (CHUNK_SIZE * batch_size))
    if arguments.held_out:
        tail = held_out_tail()
        for engine, predictor in engines.items():
            print(f"{engine}: held-out rate {held_out_rate(predictor, tail):.3f} % "
                  f"({len(tail):,} bytes, the model card's measure)")
    if arguments.torch_batch_sizes:
        pytorch = load_pretrained(arguments.size, engine="torch")
        for batch_size in arguments.torch_batch_sizes:
            batch = enwik8_chunks(batch_size)
            seconds = best_cpu_seconds(lambda b=batch: stepped_bits(pytorch, b), 1)
            report(f"torch engine, stepping, batch {batch_size}", seconds / batch_size, flops,
                   peak, stepped_bits(pytorch, batch) / (CHUNK_SIZE * batch_size))
    if arguments.codec_chunks:
        bench_codec(arguments.size, arguments.codec_chunks, arguments.codec_batch_size,
                    arguments.workers)


if __name__ == "__main__":
    main()
