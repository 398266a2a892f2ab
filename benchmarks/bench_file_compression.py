"""`cm` (and the Transformer) as file compressors, beside xz -9e and bzip2 -9, in one run.

For every file of the Canterbury corpus and for the first 100 KB of the enwik8 sample it
measures, side by side on the same bytes and the same machine:

- the sizes: `gencomp compress -c cm` (its .gcz container, header included, defaults:
  learning across the whole file), xz -9e and bzip2 -9 (Python's lzma with preset
  9 | PRESET_EXTREME and bz2 at level 9: the same liblzma and libbzip2 as the command-line
  tools, without the tools' headers);
- the speeds: cm's compression and decompression and xz's compression, wall-clock, after
  one warm-up call (numba loads its compiled kernels from the cache on first use);
- that every round trip is exact, and that damaged containers give a clean error.

With `--transformer` it also measures the Transformer on the held-out tail of the enwik8
sample (the model card's: the last 10 %, never trained on): its chunked rate (the paper's
independent 2048-byte chunks, the model card's definition) beside its streaming rates
(windows that carry `context − stride` bytes of context; what `gencomp compress` codes,
`online=true`: those windows read by an output layer that learns across the stream,
`predictors.online_head`, also on each half of the tail, the first of which chose its
learning rate; and the windows mixed with cm, `mix=cm`) and cm's own, as ideal code
lengths over the raw size, the model card's measure.

    python benchmarks/bench_file_compression.py
    python benchmarks/bench_file_compression.py --transformer --workers 2
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import cpu_model

from gencomp import get_compressor
from gencomp.compressor import Compressor
from gencomp.container import pack, unpack
from gencomp.errors import ContainerError

DATA = Path(__file__).resolve().parents[1] / "../shared/data/text"
CANTERBURY = DATA / "canterbury"
ENWIK8 = DATA / "enwik8_first_4154400_bytes"
#: The model card's held-out part: the last 10 % of the sample.
HELD_OUT_FRACTION = 0.1


def timed(function: Callable[[], bytes]) -> tuple[bytes, float]:
    began = time.perf_counter()
    result = function()
    return result, time.perf_counter() - began


def xz(data: bytes) -> bytes:
    return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)


def files() -> list[tuple[str, bytes]]:
    canterbury = [(path.name, path.read_bytes()) for path in sorted(CANTERBURY.iterdir())]
    with open(ENWIK8, "rb") as handle:
        return [*canterbury, ("enwik8[:100000]", handle.read(100_000))]


def damaged_are_refused(container: bytes, rng: np.random.Generator, count: int) -> int:
    """How many of `count` containers with one flipped bit are refused cleanly."""
    refused = 0
    for position in rng.integers(0, len(container), count):
        damaged = bytearray(container)
        damaged[position] ^= 1 << int(rng.integers(8))
        try:
            unpack(bytes(damaged))
        except ContainerError:
            refused += 1
    return refused


def bench_files(workers: int) -> None:
    cm = get_compressor("cm", **({"workers": workers} if workers > 1 else {}))
    unpack(pack(cm, b"warm up the compiled kernels"))
    rng = np.random.default_rng(0)
    rows, totals = [], {"raw": 0, "cm": 0, "xz": 0, "bzip2": 0, "cm_c": 0.0, "cm_d": 0.0,
                        "xz_c": 0.0}
    header = (f"{'file':<16} {'bytes':>9} {'cm':>8} {'xz -9e':>8} {'bzip2 -9':>8} "
              f"{'cm/xz':>6} {'cm/bz2':>6} {'cm c MB/s':>9} {'cm d MB/s':>9} {'xz MB/s':>8}")
    print(header)
    print("-" * len(header))
    damaged, tried = 0, 0
    for name, data in files():
        container, cm_seconds = timed(lambda data=data: pack(cm, data))
        restored, cm_decode_seconds = timed(lambda container=container: unpack(container))
        if restored != data:
            raise SystemExit(f"{name}: cm round trip is not exact")
        xz_bytes, xz_seconds = timed(lambda data=data: xz(data))
        if lzma.decompress(xz_bytes) != data:
            raise SystemExit(f"{name}: xz round trip is not exact")
        bzip2_bytes = bz2.compress(data, 9)
        damaged += damaged_are_refused(container, rng, 20)
        tried += 20
        sizes = {"cm": len(container), "xz": len(xz_bytes), "bzip2": len(bzip2_bytes)}
        for key, value in (("raw", len(data)), *sizes.items(), ("cm_c", cm_seconds),
                           ("cm_d", cm_decode_seconds), ("xz_c", xz_seconds)):
            totals[key] += value
        rows.append((name, len(data), sizes, cm_seconds, cm_decode_seconds, xz_seconds))
        print(f"{name:<16} {len(data):>9,} {sizes['cm']:>8,} {sizes['xz']:>8,} "
              f"{sizes['bzip2']:>8,} {sizes['cm'] / sizes['xz']:>6.3f} "
              f"{sizes['cm'] / sizes['bzip2']:>6.3f} {len(data) / cm_seconds / 1e6:>9.3f} "
              f"{len(data) / cm_decode_seconds / 1e6:>9.3f} "
              f"{len(data) / xz_seconds / 1e6:>8.3f}")
    print("-" * len(header))
    canterbury = [row for row in rows if not row[0].startswith("enwik8")]
    raw = sum(row[1] for row in canterbury)
    sums = {key: sum(row[2][key] for row in canterbury) for key in ("cm", "xz", "bzip2")}
    seconds = [sum(row[index] for row in canterbury) for index in (3, 4, 5)]
    print(f"{'Canterbury':<16} {raw:>9,} {sums['cm']:>8,} {sums['xz']:>8,} {sums['bzip2']:>8,} "
          f"{sums['cm'] / sums['xz']:>6.3f} {sums['cm'] / sums['bzip2']:>6.3f} "
          f"{raw / seconds[0] / 1e6:>9.3f} {raw / seconds[1] / 1e6:>9.3f} "
          f"{raw / seconds[2] / 1e6:>8.3f}")
    print()
    print(f"Canterbury total: cm is {100 * (1 - sums['cm'] / sums['xz']):.1f} % smaller than "
          f"xz -9e and {100 * (1 - sums['cm'] / sums['bzip2']):.1f} % smaller than bzip2 -9")
    enwik = rows[-1][2]
    print(f"enwik8[:100000]: cm {enwik['cm']:,} bytes, xz -9e {enwik['xz']:,}, "
          f"bzip2 -9 {enwik['bzip2']:,}")
    all_raw = totals["raw"]
    print(f"speed (all files): cm compresses at {all_raw / totals['cm_c'] / 1e6:.3f} MB/s, "
          f"{100 * totals['xz_c'] / totals['cm_c']:.0f} % of xz -9e's "
          f"{all_raw / totals['xz_c'] / 1e6:.3f} MB/s; decompresses at "
          f"{all_raw / totals['cm_d'] / 1e6:.3f} MB/s, "
          f"{100 * totals['cm_c'] / totals['cm_d']:.0f} % of its compression speed")
    print(f"round trips exact on all {len(rows)} files; {damaged} of {tried} containers with "
          "a flipped bit refused with a ContainerError, none gave other bytes")
    print_small_file(cm, files()[-1][1][:6000], 1)


def print_small_file(compressor: Compressor, small: bytes, unit: int) -> None:
    """A 6,000-byte file's container, and what it costs beyond the coded stream (`unit`:
    the payload's size unit, 4 for the range coder's words)."""
    from gencomp.codecs.predictive import parse_payload

    payload = compressor.compress(small)
    container = pack(compressor, small)
    _, streams = parse_payload(payload, compressor.name, 1 << 40, unit)
    framing = len(payload) - sum(len(stream) for stream in streams)
    print(f"a 6,000-byte file, {compressor.name}: container {len(container):,} bytes, of "
          f"which payload {len(payload):,}; framing {len(container) - len(payload)} "
          f"(container) + {framing} (payload) bytes over the coded stream")


def bench_transformer(workers: int, stride: int | None, limit: int | None) -> None:
    with open(ENWIK8, "rb") as handle:
        data = handle.read()
    tail = data[len(data) - round(len(data) * HELD_OUT_FRACTION):]
    tail = tail[:limit] if limit else tail
    runtime = {"workers": workers} if workers > 1 else {}
    print(f"\nTransformer on the held-out tail of the enwik8 sample ({len(tail):,} bytes; "
          "ideal code lengths over the raw size, as the model card measures)")
    windows = {"stride": stride} if stride else {}
    online = {"online": True}  # what `gencomp compress` sets
    half = len(tail) // 2
    for name, label, params, part in (
            ("transformer", "chunked 2048 (the paper's)", {"chunk_size": 2048}, None),
            ("transformer", "streaming, windows", windows, None),
            ("transformer", "streaming, online head (compress)", online, None),
            ("transformer", "  first half, windows", windows, slice(0, half)),
            ("transformer", "  first half, online head", online, slice(0, half)),
            ("transformer", "  second half, windows", windows, slice(half, None)),
            ("transformer", "  second half, online head", online, slice(half, None)),
            ("transformer", "streaming, windows mixed with cm", {**windows, "mix": "cm"},
             None),
            ("cm", "cm alone (streaming)", {}, None)):
        compressor = get_compressor(name, **params, **runtime)
        data = tail if part is None else tail[part]
        began = time.perf_counter()
        bits = compressor.code_length_bits(data)
        seconds = time.perf_counter() - began
        window = f", stride {compressor.stride}" if getattr(compressor, "stride", None) else ""
        print(f"  {label + window:<40} {100 * bits / 8 / len(data):7.3f} %   "
              f"({seconds:.0f} s, {len(data) / seconds / 1e3:.1f} KB/s)", flush=True)
    print_small_file(get_compressor("transformer", **online), tail[:6000], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="cm and Transformer workers")
    parser.add_argument("--transformer", action="store_true",
                        help="also the Transformer's chunked and streaming rates")
    parser.add_argument("--stride", type=int, default=None,
                        help="the Transformer's stride when streaming (default: half its "
                             "context)")
    parser.add_argument("--transformer-bytes", type=int, default=None,
                        help="only the first N bytes of the held-out tail (quick look)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; times are wall-clock on this machine, same run\n")
    bench_files(args.workers)
    if args.transformer:
        bench_transformer(args.workers, args.stride, args.transformer_bytes)


if __name__ == "__main__":
    main()
