"""Fuzzing every decoder: hostile input must end in a GencompError or the exact original.

    python -m tests.fuzz --cases 100000 [--seed S] [--codec NAME] [--target NAME]

CI runs a few thousand cases through tests/test_fuzz.py; this entry point is the long run.

Each case takes a real payload (enwik8 text, an ImageNet patch, LibriSpeech audio, random
bytes, zeros, encoded by one of the registered compressors), damages it with a few seeded
mutations and decodes it, with the limit a caller would pass (the original length). The
targets:

- `container`: the whole .gcz file is damaged; the CRC-32 should catch almost everything.
- `container-resealed`: the payload or the binary header is damaged and the CRC-32 is
  rebuilt around it, so the header parser and the codec decoders really run and the
  digest of the original is what stands between them and a wrong output.
- `container-v1-resealed`: the same for version-1 containers (a JSON header), still read.
- `container-params`: the container's parameters are mutated (other types, values out of
  range or at their limits, unknown keys, runtime keys such as `workers`), on real
  containers and on hostile model containers whose payloads declare model tables or
  caches of gigabytes. Besides its outcome, each case is watched: it must start no child
  process and grow resident memory by at most `MEMORY_GROWTH_LIMIT`.
- one target per compressor: its raw payload, `decompress(payload, max_output_bytes)`.

A case passes if it raises a GencompError, or returns the exact original bytes, or the
damage happened to make another valid payload (one that encoding the output gives). Raw
payloads of formats that carry no checksum of their output (zstd frames as we write them,
brotli, raw LZMA2) can decode damaged input to other bytes; the container's SHA-256
catches that, so for them a raw case must only stay within the limit.
Anything else fails: another exception (a bug), a case over its time budget (a hang), a
MemoryError under the long run's address-space limit (unbounded memory).

Case i of a target is reproducible alone: a failure prints the command that reruns it.
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import hashlib
import json
import os
import random
import resource
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from gencomp import arithmetic, varints
from gencomp.compressor import Compressor, available_compressors, compressor_spec, get_compressor
from gencomp.container import DIGEST_BYTES, MAGIC, frame, pack, read_header, seal, unpack
from gencomp.errors import GencompError
from tests.conftest import shared_data_dir

#: Parameter sets beyond the defaults whose payloads take other decoder paths.
VARIANTS: dict[str, list[dict]] = {
    "png": [{"width": 64}],
    "lzma2": [{"container": "raw"}],
    "flac": [{"sample_bits": 8}],
}

#: Compressors whose payload format verifies the decoded bytes itself: gzip (CRC-32 and
#: length), bz2 (block and stream CRCs), FLAC (the STREAMINFO MD5), PNG (every chunk's
#: CRC-32); so do LZMA2 in its .xz container (CRC-64) and the model compressors (a CRC-32
#: of the original), see `_self_checking`.
SELF_CHECKING = {"gzip", "bz2", "flac", "png"}

#: Interesting values for integer fields: lengths at type and limit boundaries.
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 2**31 - 1, 2**31, 2**32 - 1,
               2**32, 2**40, 2**63 - 1, 2**64 - 1]

#: Header edits for the resealed container: values a hostile file could declare.
HEADER_VALUES = [2**40, 2**64, -1, 0, 1.5, "1", None, [], {}, float("inf"), "x" * 200, True]
#: Parameter values a hostile container could give: other types, and numbers at and past
#: the limits of what parameters accept (orders, table bits, chunk and batch sizes).
PARAM_VALUES = [*HEADER_VALUES, 7, 8, 20, 21, 64, 256, 257, 2**20, 2**20 + 1, 2**31, -2**63,
                "cuda", "meta", "torch", "kernels", "auto", "raw", "\x1b[31m", [1] * 50]
#: Keys a hostile container could add: runtime parameters it may not choose, and others.
EXTRA_PARAM_KEYS = ["workers", "device", "batch_size", "chunk_size", "max_memory", "",
                    "\x1b[2J", "x" * 100, "__class__"]
#: How much a `container-params` case may grow resident memory (its decoders need at most
#: a few MiB for inputs this small; a model table past its budget would need gigabytes).
MEMORY_GROWTH_LIMIT = 256 << 20


class CaseTimeout(BaseException):
    """Raised by the per-case alarm. A BaseException, so that no decoder's `except
    Exception` can turn a hang into an ordinary error."""


@dataclass(frozen=True)
class Seed:
    """An encoded input a case starts from, and the bytes it must decode to."""

    compressor: Compressor
    original: bytes
    encoded: bytes


@dataclass
class Target:
    name: str
    seeds: list[Seed]
    damage: Callable[[random.Random, Seed], bytes]
    decode: Callable[[Seed, bytes], bytes]
    encode: Callable[[Seed, bytes], bytes]
    #: Whether a successful decode must give the original (else: at most its length).
    exact: Callable[[Seed], bool]
    budget_seconds: float = 2.0
    #: The `python -m tests.fuzz` options that rebuild these seeds.
    options: str = ""
    #: Whether each case is watched for child processes and memory (`ResourceWatch`).
    watch_resources: bool = False


@dataclass
class Failure:
    target: Target
    index: int
    problem: str

    def reproduce(self, seed: int) -> str:
        return (f"python -m tests.fuzz --seed {seed} {self.target.options} "
                f"--target {self.target.name} --start {self.index} --cases 1")


@dataclass
class FuzzReport:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    outcomes: dict[str, Counter] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        return (f"fuzz: {self.cases} cases (seed {self.seed}) in {self.seconds:.1f} s: "
                f"{len(self.failures)} failures")


# ---------------------------------------------------------------- real sample inputs


def text_sample(rng: random.Random, size: int) -> bytes:
    path = shared_data_dir() / "text" / "enwik8_first_4154400_bytes"
    with path.open("rb") as handle:
        handle.seek(rng.randrange(path.stat().st_size - size))
        return handle.read(size)


def image_sample(rng: random.Random, size: int) -> bytes:
    """Grayscale (mean of RGB) pixels of an ImageNet image, rows of 64, as the paper cuts."""
    paths = sorted((shared_data_dir() / "imagenet").glob("*.JPEG"))
    with Image.open(rng.choice(paths)) as image:
        gray = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=2).astype(np.uint8)
    rows = -(-size // 64)
    top = rng.randrange(gray.shape[0] - rows)
    left = rng.randrange(gray.shape[1] - 64)
    return gray[top : top + rows, left : left + 64].tobytes()[:size]


def audio_sample(rng: random.Random, size: int) -> bytes:
    """8-bit unsigned LibriSpeech samples (high byte + 128), as the paper cuts."""
    paths = sorted((shared_data_dir() / "librispeech").rglob("*.flac"))
    samples, _ = soundfile.read(rng.choice(paths), dtype="int16")
    start = rng.randrange(len(samples) - size)
    return ((samples[start : start + size] >> 8) + 128).astype(np.uint8).tobytes()


def samples(rng: random.Random, max_size: int) -> list[bytes]:
    """One input of each kind, sizes up to `max_size`, plus the degenerate ones."""
    def size() -> int:
        return rng.randrange(max(1, max_size // 10), max_size + 1)

    return [
        text_sample(rng, size()),
        image_sample(rng, size()),
        audio_sample(rng, size()),
        rng.randbytes(size()),
        bytes(size()),
        b"",
        b"\x00",
    ]


# ---------------------------------------------------------------- mutations


def _position(rng: random.Random, data: bytes | bytearray) -> int:
    return rng.randrange(len(data) + 1)


def mutate_once(rng: random.Random, data: bytearray) -> None:
    """Apply one random damage to `data` in place."""
    kind = rng.randrange(10)
    if data and kind == 0:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif data and kind == 1:
        data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:
        value = rng.choice(INTERESTING)
        width = rng.choice([1, 2, 4, 8])
        encoded = (value % (1 << (8 * width))).to_bytes(width, rng.choice(["little", "big"]))
        start = rng.randrange(max(1, len(data)))
        data[start : start + width] = encoded
    elif kind == 3:
        at = _position(rng, data)
        data[at:at] = rng.randbytes(rng.randrange(1, 9))
    elif data and kind == 4:
        start = rng.randrange(len(data))
        del data[start : start + rng.randrange(1, 17)]
    elif data and kind == 5:
        del data[rng.randrange(len(data)) :]
    elif kind == 6:
        data.extend(rng.choice([rng.randbytes(rng.randrange(1, 65)), bytes(rng.randrange(1, 65))]))
    elif kind == 7:
        data[: rng.randrange(1, 65)] = rng.randbytes(rng.randrange(1, 65))
    elif data and kind == 8:
        start = rng.randrange(len(data))
        at = _position(rng, data)
        data[at:at] = data[start : start + rng.randrange(1, 33)]
    elif data:
        start = rng.randrange(len(data))
        span = rng.randrange(1, 17)
        data[start : start + span] = bytes(reversed(data[start : start + span]))


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1 to 4 stacked damages; never returns the input unchanged."""
    damaged = bytearray(data)
    while True:
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
            mutate_once(rng, damaged)
        if damaged != data:
            return bytes(damaged)


def split_container(container: bytes) -> tuple[bytes, bytes]:
    """(binary header bytes, payload) of a well-formed version-2 container: the header is
    everything between the version byte and the payload."""
    _, payload = read_header(container)
    return container[len(MAGIC) + 1 : len(container) - 4 - len(payload)], payload


def reseal(header: bytes, payload: bytes) -> bytes:
    """A version-2 container of these header bytes and payload, with a valid CRC-32."""
    return seal(MAGIC + b"\x02" + header + payload)


def damage_header(rng: random.Random, header: bytes, payload: bytes) -> bytes:
    """Damage the header: as bytes, or by giving a field a hostile value."""
    if rng.random() < 0.5:
        return reseal(mutate(rng, header), payload)
    fields = read_header(reseal(header, payload))[0]
    name, length, digest = fields.compressor, fields.original_length, fields.original_digest
    choice = rng.randrange(3)
    if choice == 0:
        name = rng.choice(available_compressors() + ["", "nonesuch", "x" * 255])
    elif choice == 1:
        length = rng.choice([value for value in INTERESTING if value < 2**64])
    else:
        digest = rng.randbytes(DIGEST_BYTES)
    return frame(name, fields.params, length, digest, payload)


def damage_resealed(rng: random.Random, seed: Seed) -> bytes:
    header, payload = split_container(seed.encoded)
    if rng.random() < 0.75:
        return reseal(header, mutate(rng, payload))
    return damage_header(rng, header, payload)


# Version 1 (a JSON header), which is still read: its fuzz targets build such containers.

def frame_v1(header: bytes, payload: bytes) -> bytes:
    """A version-1 container of a JSON header and a payload, with a valid CRC-32."""
    body = b"".join([struct.pack("<4sBI", MAGIC, 1, len(header)), header,
                     struct.pack("<Q", len(payload)), payload])
    return body + struct.pack("<I", zlib.crc32(body))


def pack_v1(compressor: Compressor, data: bytes) -> bytes:
    """`data` in a version-1 container, as gencomp wrote them before version 2."""
    header = {"compressor": compressor.name, "params": compressor.params,
              "original_length": len(data), "original_sha256": hashlib.sha256(data).hexdigest()}
    return frame_v1(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(),
                    compressor.compress(data))


def split_container_v1(container: bytes) -> tuple[bytes, bytes]:
    """(JSON header bytes, payload) of a well-formed version-1 container."""
    (header_length,) = struct.unpack_from("<I", container, 5)
    header = container[9 : 9 + header_length]
    return header, container[9 + header_length + 8 : -4]


def damage_json_header(rng: random.Random, header: bytes) -> bytes:
    """Damage a version-1 JSON header: as bytes, or by setting a field to a hostile value."""
    if rng.random() < 0.5:
        return mutate(rng, header)
    fields = json.loads(header)
    key = rng.choice(["compressor", "params", "original_length", "original_sha256"])
    if key == "params" and fields["params"] and rng.random() < 0.7:
        fields["params"][rng.choice(sorted(fields["params"]))] = rng.choice(HEADER_VALUES)
    elif key == "compressor" and rng.random() < 0.5:
        fields[key] = rng.choice(available_compressors() + ["", "nonesuch"])
    else:
        fields[key] = rng.choice(HEADER_VALUES)
    return json.dumps(fields).encode()


def damage_resealed_v1(rng: random.Random, seed: Seed) -> bytes:
    header, payload = split_container_v1(seed.encoded)
    if rng.random() < 0.75:
        payload = mutate(rng, payload)
    else:
        header = damage_json_header(rng, header)
    return frame_v1(header, payload)


# Parameters: a container's parameters are data; no value may make decoding misbehave.

def damage_params(rng: random.Random, seed: Seed) -> bytes:
    """1 to 3 edits of the container's parameters: a parameter the compressor takes given
    a hostile value, a key added (runtime ones included), or a recorded one removed."""
    header, payload = read_header(seed.encoded)
    params = dict(header.params)
    known = sorted(compressor_spec(header.compressor).defaults)
    for _ in range(rng.choice([1, 1, 2, 3])):
        choice = rng.randrange(4)
        if choice <= 1:
            params[rng.choice(known)] = rng.choice(PARAM_VALUES)
        elif choice == 2:
            params[rng.choice(EXTRA_PARAM_KEYS)] = rng.choice(PARAM_VALUES)
        elif params:
            del params[rng.choice(sorted(params))]
    return frame(header.compressor, params, header.original_length, header.original_digest,
                 payload)


def version_1_model_payload(name: str, fingerprint: str, data: bytes, chunk_size: int,
                            group: int) -> bytes:
    """A model payload in version 1 of `gencomp.codecs.predictive`'s format (still read, and
    the only one the first cm model decodes from), as a hostile encoder writes it: chunks
    coded under uniform distributions, whatever model and group the header names."""
    header = struct.pack("<3sBIIQ", b"GCP", 1, chunk_size, group, len(data))
    for text in (name.encode("utf-8"), fingerprint.encode("ascii")):
        header += bytes([len(text)]) + text
    chunks = [data[start:start + chunk_size] for start in range(0, len(data), chunk_size)]
    streams = [arithmetic.encode(np.frombuffer(chunk, dtype=np.uint8),
                                 np.full((len(chunk), 256), 1 / 256)) for chunk in chunks]
    return b"".join([header, struct.pack("<I", zlib.crc32(data, zlib.crc32(header))),
                     *(varints.encode(len(stream)) for stream in streams),
                     *map(arithmetic.words_to_bytes, streams)])


@dataclass(frozen=True)
class HostileModel:
    """A model container whose payload makes the real decoder size its state past the
    model memory budget: `group` sequences of a model that `params` make large."""

    compressor: str
    params: dict[str, Any]
    data: bytes
    chunk_size: int
    group: int
    #: The real model's fingerprint (the payload must name it for the decoder to accept it).
    fingerprint: Callable[[], str]

    def container(self) -> bytes:
        payload = version_1_model_payload(self.compressor, self.fingerprint(), self.data,
                                          self.chunk_size, self.group)
        return frame(self.compressor, self.params, len(self.data),
                     hashlib.sha256(self.data).digest()[:DIGEST_BYTES], payload)


def _legacy_cm_fingerprint(order: int, table_bits: int) -> str:
    from predictors.cm_legacy import LegacyContextMixingPredictor

    return LegacyContextMixingPredictor(order=order, table_bits=table_bits).fingerprint


#: Issue 20's reports, on the first cm model (which `cm` files of version 1 name, and
#: which steps a batch): tables of 40 GiB (1-byte chunks, a group of 256) and 5 GiB (the
#: 473-byte file that reached 4.4 GB resident); and the Transformer's torch-engine cache
#: for a group of 256 sequences (1 GiB).
HOSTILE_MODELS = {
    "cm-40GiB-of-tables": HostileModel(
        "cm", {"order": 7, "table_bits": 20}, bytes(256), 1, 256,
        lambda: _legacy_cm_fingerprint(7, 20)),
    "cm-5GiB-of-tables": HostileModel(
        "cm", {"order": 7, "table_bits": 20}, bytes(range(256)) * 256, 2048, 32,
        lambda: _legacy_cm_fingerprint(7, 20)),
    "transformer-1GiB-cache": HostileModel(
        "transformer", {"engine": "torch"}, bytes(range(256)) * 2, 2, 256,
        lambda: get_compressor("transformer", engine="torch").predictor.fingerprint),
}


def model_param_seeds(codecs: list[str] | None) -> list[Seed]:
    """Model containers for the parameter target besides the ordinary ones: one of several
    groups coded by worker processes (the Transformer's torch engine: a container that
    could choose its workers would start them), and the `HOSTILE_MODELS`."""
    names = codecs or available_compressors()
    seeds = []
    if "transformer" in names:
        grouped = get_compressor("transformer", engine="torch", chunk_size=16, batch_size=1)
        data = b"four groups of sixteen bytes or fewer, each its own job"
        seeds.append(Seed(grouped, data, pack(grouped, data)))
    for hostile in HOSTILE_MODELS.values():
        if hostile.compressor in names:
            seeds.append(Seed(get_compressor(hostile.compressor), hostile.data,
                              hostile.container()))
    return seeds


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(field: str) -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith(field + ":"))


def _children() -> set[int]:
    """Our child processes, zombies included."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


class ResourceWatch:
    """What a case may not do: start a process (one still running, or one that ran and was
    waited for, which adds to our children's CPU time), or grow resident memory by more
    than `MEMORY_GROWTH_LIMIT` at its peak (Linux's peak counter is reset at the start)."""

    def __init__(self) -> None:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # peak resident memory := current
        self.resident_kib = _status_kib("VmRSS")
        self.children = _children()
        self.children_cpu = os.times()[2:4]

    def problem(self) -> str | None:
        grown = (_status_kib("VmHWM") - self.resident_kib) << 10
        if grown > MEMORY_GROWTH_LIMIT:
            return f"resident memory grew by {grown >> 20} MiB"
        if _children() - self.children or os.times()[2:4] != self.children_cpu:
            return "started a child process"
        return None


# ---------------------------------------------------------------- targets and cases


def compressors(codecs: list[str] | None) -> list[Compressor]:
    names = codecs or available_compressors()
    return [get_compressor(name, **params)
            for name in names for params in [{}] + VARIANTS.get(name, [])]


@functools.cache
def _default_params(name: str) -> dict:
    return get_compressor(name).params


def target_name(compressor: Compressor) -> str:
    """The compressor's name plus the parameters that differ from its defaults."""
    defaults = _default_params(compressor.name)
    return compressor.name + "".join(f",{key}={value}" for key, value in compressor.params.items()
                                     if defaults.get(key) != value)


def _decode_time(compressor: Compressor, seeds: list[Seed]) -> float:
    started = time.perf_counter()
    for seed in seeds:
        compressor.decompress(seed.encoded, max_output_bytes=len(seed.original))
    return time.perf_counter() - started


def _self_checking(seed: Seed) -> bool:
    params = seed.compressor.params
    return (seed.compressor.name in SELF_CHECKING or seed.compressor.predictor is not None
            or (seed.compressor.name == "lzma2" and params.get("container") == "xz"))


def build_targets(seed: int = 0, codecs: list[str] | None = None, max_size: int = 2000,
                  slow_max_size: int = 48, rounds: int = 1) -> list[Target]:
    """The container targets and one raw target per compressor, seeded from real data.

    `rounds` sets of real inputs per compressor; model compressors (slow per byte) get
    shorter ones, up to `slow_max_size` bytes. Each target's time budget is 50 times its
    slowest clean decode (at least 2 s), so a case over it is a hang, not a slow machine."""
    options = f"--max-size {max_size} --rounds {rounds}" + "".join(
        f" --codec {name}" for name in codecs or [])
    raw_targets: list[Target] = []
    container_seeds: list[Seed] = []
    v1_seeds: list[Seed] = []
    for compressor in compressors(codecs):
        is_model = compressor.predictor is not None
        rng = random.Random(f"fuzz-samples:{seed}:{target_name(compressor)}")
        inputs = [data for _ in range(rounds)
                  for data in samples(rng, slow_max_size if is_model else max_size)]
        seeds = [Seed(compressor, data, compressor.compress(data)) for data in inputs]
        worst = max(_decode_time(compressor, [one]) for one in seeds)
        raw_targets.append(Target(
            name=target_name(compressor),
            seeds=seeds,
            damage=lambda rng, seed: mutate(rng, seed.encoded),
            decode=lambda seed, damaged: seed.compressor.decompress(
                damaged, max_output_bytes=len(seed.original)),
            encode=lambda seed, output: seed.compressor.compress(output),
            exact=_self_checking,
            budget_seconds=max(2.0, 50 * worst),
            options=options,
        ))
        container_seeds += [Seed(compressor, one.original, pack(compressor, one.original))
                            for one in seeds]
        v1_seeds += [Seed(compressor, one.original, pack_v1(compressor, one.original))
                     for one in seeds]
    budget = max(target.budget_seconds for target in raw_targets)
    # The few model seeds of the parameter target, repeated to be a quarter of its cases.
    model_seeds = model_param_seeds(codecs)
    model_seeds *= max(1, len(container_seeds) // (3 * max(1, len(model_seeds))))

    def unpack_seed(seed: Seed, damaged: bytes) -> bytes:
        # A limit like the CLI's, but 1 MiB rather than 16 GiB: a damaged header may declare
        # any length up to it, and a model decodes a byte at a time.
        return unpack(damaged, max_output_bytes=max(len(seed.original), 1 << 20))

    def pack_seed(seed: Seed, output: bytes) -> bytes:
        return pack(seed.compressor, output)

    return [
        Target("container", container_seeds, lambda rng, seed: mutate(rng, seed.encoded),
               unpack_seed, pack_seed, lambda seed: True, budget, options),
        Target("container-resealed", container_seeds, damage_resealed,
               unpack_seed, pack_seed, lambda seed: True, budget, options),
        Target("container-v1-resealed", v1_seeds, damage_resealed_v1,
               unpack_seed, lambda seed, output: pack_v1(seed.compressor, output),
               lambda seed: True, budget, options),
        Target("container-params", container_seeds + model_seeds, damage_params,
               unpack_seed, pack_seed, lambda seed: True, budget, options,
               watch_resources=True),
        *raw_targets,
    ]


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout if the block runs longer than `seconds` (main thread only)."""
    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(target: Target, seed: int, index: int) -> tuple[str, str | None]:
    """Run case `index` of `target`: (outcome, problem or None if it passed)."""
    rng = random.Random(f"fuzz:{seed}:{target.name}:{index}")
    start = rng.choice(target.seeds)
    damaged = target.damage(rng, start)
    watch = ResourceWatch() if target.watch_resources else None
    outcome, problem = _decode_case(target, start, damaged)
    if watch is not None and problem is None and (overuse := watch.problem()) is not None:
        return "resources", overuse
    return outcome, problem


def _decode_case(target: Target, start: Seed, damaged: bytes) -> tuple[str, str | None]:
    try:
        with time_budget(target.budget_seconds):
            output = target.decode(start, damaged)
    except GencompError as error:
        return type(error).__name__, None
    except CaseTimeout:
        return "timeout", f"over its {target.budget_seconds:.1f} s budget (hang?)"
    except Exception as error:  # anything but a GencompError is the bug we are hunting
        return "crash", f"{type(error).__name__}: {error}"[:300]
    if output == start.original:
        return "exact", None
    if not isinstance(output, bytes):
        return "wrong", f"returned {type(output).__name__}, not bytes"
    if target.encode(start, output) == damaged:  # e.g. a PNG payload cut to b"", empty data's
        return "another-valid-payload", None
    if target.exact(start):
        return "wrong", f"decoded {len(output)} other bytes instead of the original"
    if len(output) > len(start.original):
        return "wrong", f"decoded {len(output)} bytes, over the limit {len(start.original)}"
    return "other-bytes", None


def fuzz(targets: list[Target], cases: int, seed: int = 0, start: int = 0,
         progress: Callable[[FuzzReport], None] | None = None,
         watchdog: bool = False) -> FuzzReport:
    """Run `cases` cases, spread round-robin over the targets.

    The alarm cannot stop a hang inside C code (it fires only when control returns to
    Python); with `watchdog`, such a case dumps every thread's stack and exits instead."""
    report = FuzzReport(seed=seed)
    started = armed = time.perf_counter()
    watchdog_seconds = 3 * max(target.budget_seconds for target in targets) + 10
    for case in range(start, start + cases):
        target = targets[case % len(targets)]
        index = case // len(targets)
        if watchdog and (case == start or time.perf_counter() - armed > 1):
            armed = time.perf_counter()  # re-arming each case would cost more than a case
            faulthandler.dump_traceback_later(watchdog_seconds, exit=True)
        outcome, problem = run_case(target, seed, index)
        report.outcomes.setdefault(target.name, Counter())[outcome] += 1
        if problem is not None:
            report.failures.append(Failure(target, index, problem))
        report.cases += 1
        if progress is not None and report.cases % 10000 == 0:
            report.seconds = time.perf_counter() - started
            progress(report)
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def memory_limit(extra_bytes: int) -> Iterator[None]:
    """Cap the address space at what is mapped now plus `extra_bytes` while the block runs,
    so unbounded allocation surfaces as a MemoryError (a failure) instead of swapping."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, ((_status_kib("VmSize") << 10) + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--codec", action="append", help="only this compressor (repeatable)")
    parser.add_argument("--target", action="append", help="only this target (repeatable)")
    parser.add_argument("--max-size", type=int, default=2000, help="largest sample input")
    parser.add_argument("--rounds", type=int, default=4, help="sets of sample inputs")
    parser.add_argument("--memory-mb", type=int, default=2048,
                        help="address space allowed beyond the start-up mapping")
    args = parser.parse_args(argv)

    targets = build_targets(args.seed, args.codec, args.max_size, rounds=args.rounds)
    if args.target:
        unknown = set(args.target) - {target.name for target in targets}
        if unknown:
            parser.error(f"unknown target(s) {sorted(unknown)}; have "
                         f"{[target.name for target in targets]}")
        targets = [target for target in targets if target.name in args.target]
    print(f"targets: {', '.join(target.name for target in targets)}", file=sys.stderr)
    with memory_limit(args.memory_mb << 20):
        report = fuzz(targets, args.cases, args.seed, args.start, watchdog=True,
                      progress=lambda report: print(f"  ... {report.summary()}",
                                                    file=sys.stderr))
    faulthandler.cancel_dump_traceback_later()
    for name, outcomes in report.outcomes.items():
        print(f"{name:28s} {dict(sorted(outcomes.items()))}")
    for failure in report.failures[:50]:
        print(f"FAIL {failure.target.name} case {failure.index}: {failure.problem}\n"
              f"     {failure.reproduce(args.seed)}")
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
