"""Model compressors: a next-byte predictor plus an arithmetic coder (the paper's Sec. 2).

Two ways to cut the data, one computation each way for the encoder, the decoder and
`code_length_bits`, so that they see the same probabilities bit for bit:

- **Chunked** (`chunk_size` 2048, the paper's evaluation, what `compress-bench` measures):
  independent chunks, each coded from a fresh model.
- **Streaming** (`chunk_size` None, the default for files): the whole input is one chunk,
  or large chunks that only exist so that workers can share them. A model that learns
  online (`cm`) learns across the whole chunk; a model with a bounded context (the
  Transformer) slides over it in windows of its context length that overlap: each window
  after the first codes the next `stride` bytes after the context_length − stride bytes
  before them (with stride 1024 and a 2048-byte context, every byte is coded after at
  least 1024 bytes of context). Optionally (`mix`) the windows' distributions are mixed
  with those of a model that learns the whole chunk online (`cm`): a Bayesian mixture
  with fixed share, so that whichever predicted the recent bytes better leads. A
  predictor may also come with an `online` variant that codes a stream itself (the
  Transformer's, `predictors.online_head`: the same windows read by an output layer that
  learns across the stream); asked for (`stream_online`), it replaces the windows, and
  its payloads are the streams without a stride.

`PredictiveCompressor` codes a predictor's 256-way distributions with the range coder
(`gencomp.arithmetic`); chunks are stepped in groups of `batch_size` as one batch, and a
decoder steps exactly the groups the encoder stepped (their size is in the payload); a
last chunk shorter than the others is padded with zeros past its end on both sides. A
`batch_independent` predictor (the Transformer's CPU kernels) needs no batch at all: the
encoder scores each window whole (`sequence_distributions`, bit-identical to stepping
it), the decoder steps it. `ContextMixingCompressor` (`cm`) codes its model's bits with
a binary arithmetic coder instead (`gencomp.codecs.cm_coder`).

Payload, version 3 (written; "varint" is unsigned LEB128, `gencomp.varints`):

    magic "GCP"     3 bytes
    version         1 byte   (3)
    length          varint   bytes of original data
    chunk_size      varint   0: the whole input is one chunk
    group_size      varint   chunks stepped together
    stride          varint   bytes each later window of a chunk codes (0: no windows)
    fingerprint     8 bytes  the first 64 bits of the predictor's digest (its config and
                             weights; with a mixture, of both models): a payload decodes
                             only with the same model
    crc32           u32      of all the above followed by the original data: damage that
                             still decodes (to other bytes, or under other settings) is caught
    stream sizes    a varint per chunk: its coded stream's length (32-bit words of the
                    range coder; bytes of the binary coder)
    streams         each chunk's coded stream, one after the other

A 6 KB file thus pays 23 bytes of framing, whichever the model. Version 2 is version 3
with the predictor's name (u8 length + UTF-8) after the fingerprint, which names only what
the fingerprint already pins; version 1 (fixed-width sizes, the full fingerprint as text)
is also still read.

A chunk's stream is complete in itself, so chunks decode independently and can be coded
by several workers at once: groups of chunks in processes, or single chunks in threads
for predictors whose kernels release the GIL (the bytes do not depend on the number of
workers). The decoder refuses a payload from another predictor or other weights
(ModelMismatchError) and never trusts a declared size before checking it against the
caller's limit and the payload's own length.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gencomp import arithmetic, varints
from gencomp.compressor import (
    DECODE_PIECE_BYTES,
    Compressor,
    SlidingWindow,
    available_compressors,
    check_int_range,
    get_compressor,
    output_limit,
    register,
)
from gencomp.constants import CHUNK_SIZE
from gencomp.errors import (
    ChecksumMismatchError,
    CorruptPayloadError,
    ModelMismatchError,
    SizeLimitError,
    TruncatedError,
)
from gencomp.preprocessing import closest_factors
from gencomp.processes import map_in_order
from predictors.base import Predictor

MAGIC = b"GCP"
VERSION = 3
DEFAULT_CHUNK_SIZE = CHUNK_SIZE
DEFAULT_BATCH_SIZE = 64
#: Bytes one chunk may hold (a streaming chunk is held in memory while it is coded).
MAX_CHUNK_SIZE = 1 << 32
#: Version 1 payloads declared at most this (their chunks were the paper's).
MAX_CHUNK_SIZE_V1 = 1 << 20
#: Bounds the memory a payload can make the decoder allocate for one batch.
MAX_BATCH_SIZE = 256
MAX_WORKERS = 256
#: Encoder rows buffered per chunk before they are handed to the coder in one call.
ENCODE_BLOCK = 64
#: Bytes of the predictor's fingerprint a version-2 payload records.
FINGERPRINT_BYTES = 8
#: Fixed share of a mixture: after each byte this part of the weight goes back to an even
#: split (Herbster and Warmuth), so that the lead can change quickly. A binary fraction:
#: every machine computes the same weights.
MIX_SHARE = 0.125
#: The Transformer's default stride when streaming: half its context.
DEFAULT_STRIDE = 1024

#: When set, told (chunks coded, chunks in all) as each job of `compress` or `decompress`
#: finishes: `gencomp compress` draws its bar with it. A context variable, so that coding
#: takes no progress parameter and knows nothing of terminals.
coding_progress: ContextVar[Callable[[int, int], None] | None] = ContextVar(
    "coding_progress", default=None)

_FIXED_V1 = struct.Struct("<3sBIIQ")
_CRC = struct.Struct("<I")


# --- payload framing (both model compressors) --------------------------------------------


class PayloadHeader(NamedTuple):
    """What a payload says about itself."""

    version: int
    length: int
    chunk_size: int | None  # None: the whole input is one chunk
    group_size: int
    stride: int | None      # None: no windows
    fingerprint: str        # hex digits: the whole digest (version 1) or its first 16
    name: str | None        # the predictor's name (versions 1 and 2 record it)
    header_crc: int         # CRC-32 of the header, to be continued over the decoded data
    crc: int                # the recorded CRC-32 of header and data


def chunk_lengths(length: int, chunk_size: int | None) -> list[int]:
    """The lengths of the chunks `length` bytes are cut into."""
    if chunk_size is None:
        return [length] if length else []
    return [min(chunk_size, length - start) for start in range(0, length, chunk_size)]


def pack_payload(model: tuple[str, str], data: bytes, chunk_size: int | None, group_size: int,
                 stride: int | None, streams: Sequence[bytes], unit: int) -> bytes:
    """A version-3 payload of `data` coded as `streams`, one per chunk, whose sizes are
    recorded in `unit`s of bytes (4: the range coder's words), by `model` (predictor name,
    fingerprint: only the fingerprint is recorded)."""
    header = b"".join([MAGIC, bytes([VERSION]), varints.encode(len(data)),
                       varints.encode(chunk_size or 0), varints.encode(group_size),
                       varints.encode(stride or 0), _fingerprint_bytes(model[1])])
    sizes = b"".join(varints.encode(len(stream) // unit) for stream in streams)
    return b"".join([header, _CRC.pack(zlib.crc32(data, zlib.crc32(header))), sizes, *streams])


def parse_payload(payload: bytes, owner: str, limit: int, unit: int
                  ) -> tuple[PayloadHeader, list[bytes]]:
    """Check a payload's framing and declared sizes (against `limit` and its own length);
    return its header and its chunks' streams."""
    if len(payload) < len(MAGIC) + 1:
        raise TruncatedError(f"{owner}: payload is truncated (no header)")
    if payload[:len(MAGIC)] != MAGIC:
        raise CorruptPayloadError(f"{owner}: not a model-coded payload (bad magic)")
    version = payload[len(MAGIC)]
    if version == 1:
        return _parse_version1(payload, owner, limit)
    if version not in (2, VERSION):
        raise CorruptPayloadError(f"{owner}: unsupported payload version {version}")
    what = f"{owner}: payload header"
    offset = len(MAGIC) + 1
    fields = []
    for _ in range(4):  # length, chunk size, group size, stride
        value, offset = varints.decode(payload, offset, what)
        fields.append(value)
    length, chunk_size, group_size, stride = fields
    if length > limit:
        raise SizeLimitError(f"{owner}: payload declares {length} bytes, over the limit of "
                             f"{limit}")
    if chunk_size > MAX_CHUNK_SIZE or stride > MAX_CHUNK_SIZE \
            or not 1 <= group_size <= MAX_BATCH_SIZE:
        raise CorruptPayloadError(f"{owner}: payload declares chunk size {chunk_size}, group "
                                  f"size {group_size} and stride {stride}, out of range")
    if offset + FINGERPRINT_BYTES > len(payload):
        raise TruncatedError(f"{what} is truncated")
    fingerprint = payload[offset:offset + FINGERPRINT_BYTES].hex()
    name, offset = None, offset + FINGERPRINT_BYTES
    if version == 2:
        name, offset = _short_string(payload, offset, owner)
    if offset + _CRC.size > len(payload):
        raise TruncatedError(f"{what} is truncated")
    header_crc = zlib.crc32(payload[:offset])
    (crc,) = _CRC.unpack_from(payload, offset)
    offset += _CRC.size
    num_chunks = (1 if length else 0) if chunk_size == 0 else -(-length // chunk_size)
    if num_chunks > len(payload) - offset:  # every size takes a byte at least
        raise TruncatedError(f"{owner}: payload is truncated (declares {num_chunks} chunks)")
    sizes = []
    for _ in range(num_chunks):
        size, offset = varints.decode(payload, offset, f"{owner}: payload's stream sizes",
                                      max_bits=40)
        sizes.append(size * unit)
    expected = offset + sum(sizes)
    if len(payload) < expected:
        raise TruncatedError(f"{owner}: payload is truncated ({len(payload)} of {expected} "
                             "bytes)")
    if len(payload) > expected:
        raise CorruptPayloadError(f"{owner}: {len(payload) - expected} unexpected bytes "
                                  "after the payload")
    streams = []
    for size in sizes:
        streams.append(payload[offset:offset + size])
        offset += size
    header = PayloadHeader(version, length, chunk_size or None, group_size, stride or None,
                           fingerprint, name, header_crc, crc)
    return header, streams


def _parse_version1(payload: bytes, owner: str, limit: int) -> tuple[PayloadHeader, list[bytes]]:
    """Version 1: fixed-width sizes, the fingerprint in full, every stream's word count."""
    if len(payload) < _FIXED_V1.size:
        raise TruncatedError(f"{owner}: payload is truncated (no header)")
    _, version, chunk_size, group_size, length = _FIXED_V1.unpack_from(payload)
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE_V1 or not 1 <= group_size <= MAX_BATCH_SIZE:
        raise CorruptPayloadError(f"{owner}: payload declares chunk size {chunk_size} and "
                                  f"group size {group_size}, out of range")
    if length > limit:
        raise SizeLimitError(f"{owner}: payload declares {length} bytes, over the limit of "
                             f"{limit}")
    name, offset = _short_string(payload, _FIXED_V1.size, owner)
    fingerprint, offset = _short_string(payload, offset, owner)
    if offset + _CRC.size > len(payload):
        raise TruncatedError(f"{owner}: payload is truncated (in the header)")
    header_crc = zlib.crc32(payload[:offset])
    (crc,) = _CRC.unpack_from(payload, offset)
    offset += _CRC.size
    num_chunks = -(-length // chunk_size)
    if num_chunks > len(payload) - offset:  # every count takes at least one byte
        raise TruncatedError(f"{owner}: payload is truncated (declares {num_chunks} chunks)")
    counts = []
    for _ in range(num_chunks):
        count, offset = varints.decode(payload, offset, f"{owner}: payload's chunk table",
                                       max_bits=35)
        counts.append(count)
    expected = offset + 4 * sum(counts)
    if len(payload) < expected:
        raise TruncatedError(f"{owner}: payload is truncated ({len(payload)} of {expected} "
                             "bytes)")
    if len(payload) > expected:
        raise CorruptPayloadError(f"{owner}: {len(payload) - expected} unexpected bytes "
                                  "after the payload")
    streams = []
    for count in counts:
        streams.append(payload[offset:offset + 4 * count])
        offset += 4 * count
    return PayloadHeader(version, length, chunk_size, group_size, None, fingerprint, name,
                         header_crc, crc), streams


def _as_recorded(header: PayloadHeader, fingerprint: str) -> str:
    """A fingerprint as the payload's version records it (whole, or its first bytes)."""
    return fingerprint if header.version == 1 else _fingerprint_bytes(fingerprint).hex()


def made_by(header: PayloadHeader, model: tuple[str, str]) -> bool:
    """Whether the payload records this model (predictor name, fingerprint)."""
    name, fingerprint = model
    return (header.name in (None, name)
            and header.fingerprint == _as_recorded(header, fingerprint))


def check_model(header: PayloadHeader, model: tuple[str, str], owner: str) -> None:
    """Refuse a payload that another model (predictor name, fingerprint) made
    (ModelMismatchError)."""
    name, fingerprint = model
    expected = _as_recorded(header, fingerprint)
    if not made_by(header, model):
        raise ModelMismatchError(
            f"{owner}: payload was made by {_made_by(header)} with fingerprint "
            f"{header.fingerprint}; the loaded one is {name!r} with {expected} "
            "(other model, weights or settings)")


def _made_by(header: PayloadHeader) -> str:
    return "a model" if header.name is None else f"predictor {header.name!r}"


def output_crc(output: bytes, header: PayloadHeader, crc: int | None = None) -> int:
    """The payload's CRC-32 of the output so far, `output` added (None: at the start)."""
    return zlib.crc32(output, header.header_crc if crc is None else crc)


def check_crc(crc: int, header: PayloadHeader, owner: str) -> None:
    """Refuse an output whose CRC-32 (`output_crc`) is not the payload's."""
    if crc != header.crc:
        raise ChecksumMismatchError(f"{owner}: decoded data fails the payload's CRC-32 "
                                    "(corrupt payload)")


def _fingerprint_bytes(fingerprint: str) -> bytes:
    return bytes.fromhex(fingerprint[:2 * FINGERPRINT_BYTES])


def _short_string(payload: bytes, offset: int, owner: str) -> tuple[str, int]:
    if offset >= len(payload) or offset + 1 + payload[offset] > len(payload):
        raise TruncatedError(f"{owner}: payload is truncated (in the header)")
    end = offset + 1 + payload[offset]
    try:
        return payload[offset + 1:end].decode("utf-8"), end
    except UnicodeDecodeError as error:
        raise CorruptPayloadError(f"{owner}: corrupt payload header") from error


# --- what both model compressors share -----------------------------------------------------


class ModelCompressor(Compressor):
    """A predictor and a coder: chunks, workers, and the ideal code length as the unit.
    Subclasses set `predictor`, `chunk_size` (None: one chunk) and `workers`."""

    predictor: Predictor
    chunk_size: int | None
    workers: int
    #: The ideal code length is a model compressor's only unit, and exact.
    length_units = ("bits",)

    @property
    def num_parameters(self) -> int:
        return self.predictor.num_parameters

    @property
    def context_window(self) -> int | None:
        limits = [self.predictor.context_length, self.chunk_size]
        return min((limit for limit in limits if limit), default=None)

    def _chunks(self, data: bytes) -> list[bytes]:
        if self.chunk_size is None:
            return [data] if data else []
        return [data[start:start + self.chunk_size]
                for start in range(0, len(data), self.chunk_size)]

    def _chunk_start(self, position: int) -> int:
        """Where the chunk holding byte `position` starts."""
        return 0 if self.chunk_size is None else position - position % self.chunk_size

    def _each_group(self, method: str, jobs: list[tuple[Any, ...]]) -> list[Any]:
        """`method` of this compressor on each job (a group's arguments), in order; spread
        over several workers when there are several jobs. A batch-independent predictor's
        kernels release the GIL, so its workers are threads sharing the loaded model;
        other predictors get processes, each loading its own."""
        report, total, done = coding_progress.get(), sum(len(job[0]) for job in jobs), [0]

        def finished(index: int) -> None:  # each job's first argument holds its chunks
            done[0] += len(jobs[index][0])
            if report is not None:
                report(done[0], total)

        if self.workers == 1 or len(jobs) < 2:
            results = []
            for index, job in enumerate(jobs):
                results.append(getattr(self, method)(*job))
                finished(index)
            return results
        if self.predictor.batch_independent:
            return map_in_order(getattr(self, method), jobs, self.workers, threads=True,
                                on_result=finished)
        recipe = (self.name, tuple(sorted(self.params.items())))
        return map_in_order(_in_worker, [(recipe, method, *job) for job in jobs], self.workers,
                            on_result=finished)


def _walk(predictor: Predictor, group: Sequence[bytes]
          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Step `predictor` through a group of chunks (or one window) as one batch: yield, for
    each position, the (batch, 256) distributions and the (batch,) bytes there (zero past a
    chunk's end). The decoder reproduces exactly these calls."""
    longest = max(len(chunk) for chunk in group)
    symbols = np.zeros((len(group), longest), dtype=np.uint8)
    for row, chunk in enumerate(group):
        symbols[row, : len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    state, probabilities = predictor.start(len(group))
    for position in range(longest):
        yield probabilities, symbols[:, position]
        if position + 1 < longest:
            probabilities = predictor.step(state, symbols[:, position])


class MixSpec(NamedTuple):
    """A companion model the Transformer's windows can be mixed with (`mix`)."""

    #: Whether it mixes in the paper's chunks too (else only with windows that slide).
    chunked: bool
    share: float
    #: The weights learn from the probabilities' 2^roots-th roots (`Mixture`).
    roots: int
    description: str


#: `mix` values. "cm" is the text-only cm of the first mixture: streaming only, with a
#: share that lets the lead change within a few bytes. "cm-signals" is cm with its numeric
#: models, in every mode: within a 2 KB chunk the better model rarely changes, and a
#: small share loses less to the worse one, in code length (on 30 chunks of each data
#: set, 1/512 against 1/32: text +0.5 point, images and speech −0.2) and in samples,
#: where a share of 1/64 still draws one byte in 128 from the model that does not fit.
#: Its weights learn from fourth roots of the probabilities: a sampled byte that only
#: the other model expected no longer hands it the lead (which then feeds on its own
#: samples: speech turned to noise), for 0.15 point on text.
MIXES = {
    "cm": MixSpec(False, MIX_SHARE, 0, "cm's text model, streaming windows only"),
    "cm-signals": MixSpec(True, 1 / 512, 2, "cm with its numeric models, every mode"),
}


def cm_predictor(chunk_size: int | None, signals: int, width: int | None = None
                 ) -> Predictor:
    """cm sized for chunks of `chunk_size` (None: a stream), with version `signals` of its
    numeric models (0: none; `predictors.cm.SIGNALS_VERSIONS`), which read images `width`
    wide, by default by the paper's rule for a chunk (the closest factors of its length,
    what PNG gets in compress-bench) or, streaming, at the period the record model
    detects."""
    from predictors.cm import ContextMixingPredictor, table_bits_for

    if width is None:
        width = closest_factors(chunk_size)[1] if chunk_size else 0
    return ContextMixingPredictor(table_bits_for(chunk_size), signals, width)


def mix_companion(mix: str | None, chunk_size: int | None, width: int | None = None,
                  signals: int | None = None) -> Predictor | None:
    """The model `mix` names, sized for chunks of `chunk_size` (`cm_predictor`); for
    "cm-signals", numeric models of version `signals` (default: the current one)."""
    if mix is None:
        return None
    from predictors.cm import SIGNALS_VERSION

    if mix != "cm-signals":
        return cm_predictor(chunk_size, 0, width)
    return cm_predictor(chunk_size, signals or SIGNALS_VERSION, width)


class Mixture:
    """Two next-byte models mixed, `weight` for the first: a Bayesian mixture (each weight
    grows with the probability its model gave the byte that came) with fixed `share`,
    tempered by taking `roots` square roots of those probabilities before the update
    (square roots: every machine rounds them alike, as it does + − × ÷)."""

    def __init__(self, share: float = MIX_SHARE, roots: int = 0) -> None:
        self.weight = 0.5
        self.share = share
        self.roots = roots

    def mix(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The mixed distribution (element for element the arithmetic of `learn`)."""
        return self.weight * first + (1.0 - self.weight) * second

    def learn(self, first: float, second: float) -> float:
        """Learn from the probabilities both models gave the byte that came; return the
        mixture's."""
        mixed = self.weight * first + (1.0 - self.weight) * second
        for _ in range(self.roots):  # with none, the update divides by `mixed` itself
            first, second = math.sqrt(first), math.sqrt(second)
        evidence = self.weight * first
        self.weight = ((1.0 - self.share) * (evidence / (evidence + (1.0 - self.weight) * second))
                       + self.share / 2)
        return mixed


@dataclass
class MixedState:
    """What `MixedModel` keeps per batch: each predictor's state and last distributions,
    and one mixture per sequence."""

    first_state: Any
    second_state: Any
    mixtures: list[Mixture]
    first: np.ndarray
    second: np.ndarray
    learning: bool = True


class MixedModel:
    """Two predictors' next-byte distributions mixed as `Mixture` mixes them in coding, as
    a `NextByteModel` (what the exact sampler steps): each step first lets the mixture
    learn from what both gave the byte that came (until `freeze`). A first predictor with
    a bounded context (the Transformer's window) slides (`SlidingWindow`) while the second
    and the mixture carry on, as streaming coding's windows do; so the mixture itself holds
    any length."""

    def __init__(self, first: Predictor, second: Predictor,
                 new_mixture: Callable[[], Mixture]) -> None:
        window = first.context_length
        self.first = first if window is None else SlidingWindow(first, window)
        self.second, self.new_mixture = second, new_mixture

    def start(self, batch_size: int) -> tuple[MixedState, np.ndarray]:
        first_state, first = self.first.start(batch_size)
        second_state, second = self.second.start(batch_size)
        state = MixedState(first_state, second_state,
                           [self.new_mixture() for _ in range(batch_size)], first, second)
        return state, self._mixed(state)

    def freeze(self, state: MixedState) -> None:
        """Both predictors and the mixture's weights stop learning."""
        self.first.freeze(state.first_state)
        self.second.freeze(state.second_state)
        state.learning = False

    def step(self, state: MixedState, symbols: np.ndarray) -> np.ndarray:
        symbols = np.asarray(symbols, dtype=np.uint8)
        if state.learning:
            for row, symbol in enumerate(symbols):
                state.mixtures[row].learn(state.first[row, symbol], state.second[row, symbol])
        state.first = self.first.step(state.first_state, symbols)
        state.second = self.second.step(state.second_state, symbols)
        return self._mixed(state)

    def prime(self, state: MixedState, context: np.ndarray) -> np.ndarray:
        if context.shape[1] == 0:
            raise ValueError("prime needs at least one context byte")
        for column in range(context.shape[1]):
            mixed = self.step(state, context[:, column])
        return mixed

    @staticmethod
    def _mixed(state: MixedState) -> np.ndarray:
        return np.stack([mixture.mix(state.first[row], state.second[row])
                         for row, mixture in enumerate(state.mixtures)])


class PredictiveCompressor(ModelCompressor):
    """A predictor turned into a lossless compressor by range coding its distributions.

    `chunk_size` None streams (module doc); a predictor with a bounded context then codes
    each chunk in windows, of which all but the first code `stride` bytes (default: half
    the context). `name` and `predictor_params` are what the registry needs to rebuild it
    (`get_compressor(name, **params)`); they default to the predictor's name and config.
    Passing `fingerprint` checks that the predictor is the model the data was compressed
    with. `mix` names a companion model mixed with the windows (MIXES); `companion`, if
    given, is mixed in its place (a wrapper that records what it predicts, say).
    `workers` > 1 codes that many jobs at once: groups of `batch_size` chunks in
    processes that each rebuild the compressor from the registry, or, for a
    `batch_independent` predictor, single chunks in threads sharing this one. It is not a
    parameter of the bytes, so it is not in `params`.
    """

    def __init__(self, predictor: Predictor, chunk_size: int | None = DEFAULT_CHUNK_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, name: str | None = None,
                 predictor_params: dict[str, Any] | None = None,
                 fingerprint: str | None = None, workers: int = 1,
                 stride: int | None = None, mix: str | None = None,
                 companion: Predictor | None = None, online: Predictor | None = None,
                 stream_online: bool = True) -> None:
        #: The predictor as given, and `online`, one that codes streams itself, learning
        #: across them: it replaces the windows of a stream when `stream_online` and
        #: neither `mix` nor `stride` asks for windows. (Its payloads decode either way.)
        self.windowed_predictor, self.online = predictor, online
        windows_context = predictor.context_length
        if online is not None and stream_online and mix is None and stride is None \
                and windows_context is not None \
                and (chunk_size is None or chunk_size > windows_context):
            predictor = online
        self.predictor = predictor
        self.chunk_size = (None if chunk_size is None
                           else check_int_range(chunk_size, 1, MAX_CHUNK_SIZE, "chunk_size"))
        self.batch_size = check_int_range(batch_size, 1, MAX_BATCH_SIZE, "batch_size")
        self.workers = check_int_range(workers, 1, MAX_WORKERS, "workers")
        context = predictor.context_length
        if mix is not None and mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)} or absent, got {mix!r}")
        #: The companion model mixed in (`mix`, see MIXES), or None.
        self.mix = mix if mix is not None and (
            MIXES[mix].chunked or self.chunk_size is None
            or context is not None and self.chunk_size > context) else None
        self.companion = (None if self.mix is None
                          else companion or mix_companion(self.mix, self.chunk_size))
        #: None unless chunks are coded in windows (they can outgrow the context; a
        #: mixture codes chunks as windows, one each when they fit).
        self.stride = None
        if context is not None and (self.chunk_size is None or self.chunk_size > context
                                    or self.companion is not None):
            self.stride = check_int_range(context // 2 if stride is None else stride, 1,
                                          context, "stride")
        self.name = name or predictor.name
        self.predictor_params = dict(predictor.config if predictor_params is None
                                     else predictor_params)
        if self.workers > 1 and self.name not in available_compressors():
            raise ValueError(f"workers > 1 needs a registered compressor, and {self.name!r} "
                             "is not one")
        if fingerprint is not None and fingerprint != predictor.fingerprint:
            raise ModelMismatchError(
                f"{self.name}: data was compressed with model fingerprint {fingerprint}, but "
                f"the loaded model has {predictor.fingerprint} (other weights or settings)")

    @property
    def params(self) -> dict[str, Any]:
        return {**self.predictor_params, "chunk_size": self.chunk_size,
                "batch_size": self.batch_size, "stride": self.stride,
                "mix": self.mix, **({} if self.online is None else
                                    {"online": self.predictor is self.online}),
                "fingerprint": self.predictor.fingerprint}

    def for_image(self, width: int) -> Compressor:
        """With cm's numeric models mixed in, the compressor whose companion reads images
        `width` wide; otherwise itself."""
        if self.mix != "cm-signals":
            return self
        return self._with_companion(self.chunk_size,
                                    mix_companion(self.mix, self.chunk_size, width))

    def _with_companion(self, chunk_size: int | None, companion: Predictor | None = None
                        ) -> PredictiveCompressor:
        """This compressor for chunks of `chunk_size`, its companion `companion` (default:
        the one `mix` names for that chunk size)."""
        return PredictiveCompressor(self.predictor, chunk_size, self.batch_size, self.name,
                                    self.predictor_params, workers=self.workers,
                                    stride=self.stride, mix=self.mix, companion=companion)

    def _with_older_companion(self, header: PayloadHeader) -> PredictiveCompressor | None:
        """This compressor with the earlier version of cm's numeric models that made the
        payload, if one did (their payloads decode)."""
        from predictors.cm import SIGNALS_VERSIONS

        for version in SIGNALS_VERSIONS[1:]:
            older = self._with_companion(self.chunk_size, mix_companion(
                self.mix, self.chunk_size, self.companion.width, version))
            if made_by(header, older.model):
                return older
        return None

    @property
    def context_window(self) -> int | None:
        """With a companion, the chunk: the mixture slides the Transformer's window itself
        (`MixedModel`), and its companion conditions on the whole chunk, as coding does."""
        if self.companion is None:
            return super().context_window
        return self.chunk_size

    @property
    def next_byte_model(self) -> Predictor | MixedModel:
        """The predictor, or with a companion the mixture of both."""
        if self.companion is None:
            return self.predictor
        return MixedModel(self.predictor, self.companion, self._mixture)

    def _mixture(self) -> Mixture:
        """A fresh mixture of the windows and the companion (unused without one)."""
        spec = MIXES[self.mix or "cm"]
        return Mixture(spec.share, spec.roots)

    @property
    def model(self) -> tuple[str, str]:
        """(name, fingerprint) of what codes the payloads: the predictor, and its
        companion when it has one."""
        fingerprint = self.predictor.fingerprint
        if self.companion is not None:
            described = f"{fingerprint}+{self.companion.name}:{self.companion.fingerprint}"
            if self.mix != "cm":  # the first mixture's share is implied
                described += f"@{MIXES[self.mix].share!r}^{MIXES[self.mix].roots}"
            fingerprint = hashlib.sha256(described.encode()).hexdigest()
        return self.predictor.name, fingerprint

    # --- the one computation -----------------------------------------------------------

    def _groups(self, chunks: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
        for start in range(0, len(chunks), self.batch_size):
            yield chunks[start:start + self.batch_size]

    def _windows(self, length: int, stride: int | None) -> list[tuple[int, int, int]]:
        """(first byte fed, first byte coded, end) of each window of a chunk of `length`
        bytes: the first window codes up to a context of bytes from an empty context,
        each later one `stride` more after the context − stride bytes before them."""
        context = self.predictor.context_length
        if stride is None or length <= context:
            return [(0, 0, length)]
        windows = [(0, 0, context)]
        for first in range(context, length, stride):
            windows.append((first - (context - stride), first, min(first + stride, length)))
        return windows

    def _window_of(self, position: int) -> tuple[int, int]:
        """(first byte fed, first byte coded) of the window that codes byte `position`."""
        origin = self._chunk_start(position)
        context, offset = self.predictor.context_length, position - origin
        if self.stride is None or offset < context:
            return origin, origin
        first = context + (offset - context) // self.stride * self.stride
        return origin + first - (context - self.stride), origin + first

    def _walk(self, group: Sequence[bytes]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return _walk(self.predictor, group)

    def _coded_log2_probs(self, chunks: Sequence[bytes]) -> Iterator[np.ndarray]:
        """log2 p of every coded byte, chunk by chunk (window by window when windowed),
        computed as the coder does: a group (or one window) steps exactly as `_walk`.
        With a companion, one array per chunk: the mixture's, from both models' log2 p
        of each byte (the companion's from its own code lengths, equal to its coded
        distributions to float rounding)."""
        if self.stride is None:
            for group in self._groups(chunks):
                yield from self.predictor.symbol_log2_probs(group)
            return
        for chunk in chunks:
            windows = [self.predictor.symbol_log2_probs([chunk[start:end]])[0][first - start:]
                       for start, first, end in self._windows(len(chunk), self.stride)]
            if self.companion is None:
                yield from windows
                continue
            mixture = self._mixture()
            yield np.log2([mixture.learn(first, second)
                           for first, second in zip(*self._component_probs(chunk, windows),
                                                    strict=True)])

    def _component_probs(self, chunk: bytes, windows: list[np.ndarray] | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities the windows and the companion give each byte of `chunk`
        (`windows`: the windows' log2 p, if already known)."""
        if windows is None:
            windows = [self.predictor.symbol_log2_probs([chunk[start:end]])[0][first - start:]
                       for start, first, end in self._windows(len(chunk), self.stride)]
        model = np.concatenate(windows) if windows else np.zeros(0)
        return np.exp2(model), np.exp2(self.companion.symbol_log2_probs([chunk])[0])

    # --- code lengths ------------------------------------------------------------------

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        """Σ −log2 p over the coded bytes: the ideal code length (the payload adds the
        coder's final words and the framing), whatever the unit asked."""
        return math.fsum(-math.fsum(log2_probs)
                         for log2_probs in self._coded_log2_probs(self._chunks(data)))

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """ℓ(context·c) − ℓ(context), exactly as `code_length_bits` cuts context·c.

        Chunks, and windows, that lie wholly before the window coding the byte after the
        context are the same on both sides and cancel; what remains is that window's part
        of the context (possibly empty, at a chunk boundary) continued by c, cut again
        where c runs past a window or chunk boundary. One-byte candidates (what samplers
        ask) need a single distribution: after the bytes that window feeds before them.
        """
        fed, coded = self._window_of(len(context))
        origin = self._chunk_start(len(context))
        if self.companion is not None:  # the mixture's weight depends on the whole chunk
            return self._mixed_continuation_bits(context[origin:], fed - origin, candidates)
        if all(len(candidate) == 1 for candidate in candidates):
            log2_probs = np.log2(self._next_distribution(context[fed:]))
            return np.array([-log2_probs[candidate[0]] for candidate in candidates])
        base = self._bits_from(context[origin:], coded - origin)
        return np.array([self._bits_from(context[origin:] + candidate, coded - origin) - base
                         for candidate in candidates])

    def _bits_from(self, data: bytes, position: int) -> float:
        """The code length of `data` (which starts a chunk) without the windows that end
        at or before byte `position`."""
        bits = []
        for index, chunk in enumerate(self._chunks(data)):
            origin = index * (self.chunk_size or 0)
            for start, first, end in self._windows(len(chunk), self.stride):
                if origin + end > position:
                    log2_probs = self.predictor.symbol_log2_probs([chunk[start:end]])[0]
                    bits.append(-math.fsum(log2_probs[first - start:]))
        return math.fsum(bits)

    def _mixed_continuation_bits(self, tail: bytes, fed: int, candidates: Sequence[bytes]
                                 ) -> np.ndarray:
        """continuation_bits with a companion, from the context's last chunk `tail`: a
        one-byte candidate costs what the mixture (its weight after the tail) gives it;
        longer ones, the code length of tail·c less that of the tail."""
        if all(len(candidate) == 1 for candidate in candidates):
            mixture = self._mixture()
            if tail:
                for first, second in zip(*self._component_probs(tail), strict=True):
                    mixture.learn(first, second)
            state, companion = self.companion.start(1)
            if tail:
                companion = self.companion.prime(state, np.frombuffer(tail, dtype=np.uint8)[None])
            row = mixture.mix(self._next_distribution(tail[fed:]), companion[0])
            return np.array([-math.log2(row[candidate[0]]) for candidate in candidates])
        base = self.code_length_bits(tail)
        return np.array([self.code_length_bits(tail + candidate) - base
                         for candidate in candidates])

    def _next_distribution(self, fed: bytes) -> np.ndarray:
        """The distribution of the byte after `fed` (a window's bytes so far), from the
        coder's own walk: over fed plus a placeholder byte, whose distribution is the last
        one yielded (the placeholder itself is never fed to the model)."""
        *_, (last, _) = self._walk([fed + b"\0"])
        return last[0]

    # --- coding ------------------------------------------------------------------------

    def _job_size(self, group_size: int) -> int:
        """Chunks per unit of work: a batch group, or one chunk when batches do not matter
        (so that work spreads evenly and an interrupt waits for one chunk at most)."""
        return 1 if self.predictor.batch_independent else group_size

    def compress(self, data: bytes) -> bytes:
        chunks = self._chunks(data)
        size = self._job_size(self.batch_size) if self.stride is None else 1
        jobs = [(chunks[start:start + size],) for start in range(0, len(chunks), size)]
        method = "_encode_group" if self.stride is None else "_encode_windows"
        streams = [stream for group_streams in self._each_group(method, jobs)
                   for stream in group_streams]
        group_size = self.batch_size if self.stride is None else 1
        return pack_payload(self.model, data, self.chunk_size, group_size, self.stride,
                            [arithmetic.words_to_bytes(stream) for stream in streams], 4)

    def _encode_group(self, group: Sequence[bytes]) -> list[np.ndarray]:
        """Code each chunk of a group; rows are buffered and coded a block at a time."""
        if self.predictor.batch_independent:
            return [self._encode_blocks(chunk) for chunk in group]
        encoders = [arithmetic.Encoder() for _ in group]
        lengths = [len(chunk) for chunk in group]
        block = np.zeros((len(group), ENCODE_BLOCK, 256))
        block_symbols = np.zeros((len(group), ENCODE_BLOCK), dtype=np.int64)
        start, longest = 0, max(lengths)
        for position, (probabilities, symbols) in enumerate(self._walk(group)):
            block[:, position - start] = probabilities
            block_symbols[:, position - start] = symbols
            if position - start + 1 == ENCODE_BLOCK or position + 1 == longest:
                for row, encoder in enumerate(encoders):
                    used = min(lengths[row] - start, position - start + 1)
                    if used > 0:
                        encoder.encode(block_symbols[row, :used], block[row, :used])
                start = position + 1
        return [encoder.words() for encoder in encoders]

    def _encode_blocks(self, chunk: bytes) -> np.ndarray:
        """One chunk of a `batch_independent` predictor, coded a block of rows at a time."""
        encoder, symbols, offset = arithmetic.Encoder(), np.frombuffer(chunk, np.uint8), 0
        for rows in self.predictor.distribution_blocks(chunk):
            encoder.encode(symbols[offset:offset + len(rows)], rows)
            offset += len(rows)
        return encoder.words()

    def _encode_windows(self, chunks: Sequence[bytes]) -> list[np.ndarray]:
        """Code each chunk window by window, into one stream per chunk; with a companion,
        each row mixed with the companion's distribution after the chunk's bytes before
        it (the companion steps through the chunk as `_walk` would)."""
        streams = []
        for chunk in chunks:
            encoder = arithmetic.Encoder()
            symbols = np.frombuffer(chunk, dtype=np.uint8)
            mixture = self._mixture()
            companion = (_walk(self.companion, [chunk]) if self.companion is not None
                         else None)
            for start, first, end in self._windows(len(chunk), self.stride):
                window = chunk[start:end]
                if self.predictor.batch_independent:
                    rows = self.predictor.sequence_distributions(window)
                else:
                    rows = np.concatenate([rows for rows, _ in self._walk([window])])
                rows = rows[first - start:]
                if companion is not None:
                    for row, symbol in zip(rows, symbols[first:end], strict=True):
                        other = next(companion)[0][0]
                        mixed = mixture.mix(row, other)
                        mixture.learn(row[symbol], other[symbol])
                        row[:] = mixed
                encoder.encode(symbols[first:end], rows)
            streams.append(encoder.words())
        return streams

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        header, streams = parse_payload(payload, self.name, output_limit(max_output_bytes), 4)
        if self.mix is not None and header.chunk_size != self.chunk_size:
            # The companion is sized for the payload's chunks (its fingerprint says so).
            return self._with_companion(header.chunk_size).decompress(payload,
                                                                      max_output_bytes)
        if self.mix == "cm-signals" and not made_by(header, self.model):
            older = self._with_older_companion(header)
            if older is not None:
                return older.decompress(payload, max_output_bytes)
        online = self._online_for(header)
        if online is not None:
            return online.decompress(payload, max_output_bytes)
        check_model(header, self.model, self.name)
        context = self.predictor.context_length
        windowed = context is not None and (header.chunk_size is None
                                            or header.chunk_size > context
                                            or self.companion is not None)
        if windowed != (header.stride is not None) or (windowed and header.stride > context):
            raise CorruptPayloadError(f"{self.name}: payload declares stride {header.stride} "
                                      f"for chunks of {header.chunk_size}, which this model's "
                                      f"context of {context} does not allow")
        lengths = chunk_lengths(header.length, header.chunk_size)
        words = [arithmetic.bytes_to_words(stream) for stream in streams]
        if windowed:
            jobs = [(words[index:index + 1], lengths[index:index + 1], header.stride)
                    for index in range(len(words))]
            output = b"".join(self._each_group("_decode_windows", jobs))
        else:
            group = self._job_size(header.group_size)
            jobs = [(words[start:start + group], lengths[start:start + group])
                    for start in range(0, len(words), group)]
            output = b"".join(self._each_group("_decode_group", jobs))
        check_crc(output_crc(output, header), header, self.name)
        return bytes(output)

    def _online_for(self, header: PayloadHeader) -> PredictiveCompressor | None:
        """The compressor that decodes `header`'s payload when it is not this one's kind:
        with an online predictor, a stream without windows is the online predictor's
        (its windows are its own), anything else the windowed one's."""
        if self.online is None:
            return None
        context = self.windowed_predictor.context_length
        online = header.stride is None and (header.chunk_size is None
                                            or header.chunk_size > context)
        if online == (self.predictor is self.online):
            return None
        return PredictiveCompressor(self.windowed_predictor, header.chunk_size,
                                    self.batch_size, self.name, self.predictor_params,
                                    workers=self.workers, stride=header.stride,
                                    online=self.online, stream_online=online)

    def _decode_group(self, streams: Sequence[np.ndarray], lengths: Sequence[int]) -> bytes:
        """Mirror of `_walk` + `_encode_group`: decode one byte per chunk, then step."""
        decoders = [arithmetic.Decoder(words) for words in streams]
        longest = max(lengths)
        symbols = np.zeros((len(streams), longest), dtype=np.uint8)
        state, probabilities = self.predictor.start(len(streams))
        for position in range(longest):
            for row, decoder in enumerate(decoders):
                if position < lengths[row]:
                    symbols[row, position] = decoder.decode(probabilities[row])
            if position + 1 < longest:
                probabilities = self.predictor.step(state, symbols[:, position])
        return b"".join(symbols[row, :length].tobytes() for row, length in enumerate(lengths))

    def _decode_windows(self, streams: Sequence[np.ndarray], lengths: Sequence[int],
                        stride: int) -> bytes:
        """Mirror of `_encode_windows`: each window fed (its first bytes) and decoded
        with the calls `_walk` makes for it."""
        chunks = []
        for words, length in zip(streams, lengths, strict=True):
            decoder = arithmetic.Decoder(words)
            chunk = np.zeros(length, dtype=np.uint8)
            mixture = self._mixture()
            if self.companion is not None:
                companion_state, other = self.companion.start(1)
            for start, first, end in self._windows(length, stride):
                state, probabilities = self.predictor.start(1)
                for position in range(start, end):
                    if position >= first:
                        row = probabilities[0]
                        if self.companion is None:
                            chunk[position] = decoder.decode(row)
                        else:
                            symbol = chunk[position] = decoder.decode(mixture.mix(row, other[0]))
                            mixture.learn(row[symbol], other[0][symbol])
                            if position + 1 < length:
                                other = self.companion.step(companion_state,
                                                            chunk[position:position + 1])
                    if position + 1 < end:
                        probabilities = self.predictor.step(state, chunk[position:position + 1])
            chunks.append(chunk.tobytes())
        return b"".join(chunks)


class ContextMixingCompressor(ModelCompressor):
    """`cm`: the context-mixing model (`predictors.cm`) and a binary arithmetic coder.

    `chunk_size` None learns across the whole input; an integer cuts it into independent
    chunks, each coded by a fresh model sized for it (2048: the paper's setting). Chunks
    are coded by `workers` threads (the kernels release the GIL). Payloads of the first
    cm model (version 1) decode with `legacy_order` and `legacy_table_bits`, the
    settings it had (`predictors.cm_legacy`).
    """

    name = "cm"

    def __init__(self, chunk_size: int | None = None, fingerprint: str | None = None,
                 workers: int = 1, legacy_order: int = 4, legacy_table_bits: int = 13,
                 signals: bool = True, width: int | None = None) -> None:
        from predictors.cm import SIGNALS_VERSION, SIGNALS_VERSIONS
        from predictors.cm_legacy import LegacyContextMixingPredictor

        self.chunk_size = (None if chunk_size is None
                           else check_int_range(chunk_size, 1, MAX_CHUNK_SIZE, "chunk_size"))
        self.workers = check_int_range(workers, 1, MAX_WORKERS, "workers")
        if not isinstance(signals, bool):
            raise ValueError(f"signals must be true or false, got {signals!r}")
        self.width = None if width is None else check_int_range(width, 1, 1 << 20, "width")
        self.predictor = self._predictor(self.chunk_size, SIGNALS_VERSION if signals else 0)
        self.legacy_predictor = LegacyContextMixingPredictor(legacy_order, legacy_table_bits)
        known = {self._predictor(self.chunk_size, version).fingerprint
                 for version in (0, *SIGNALS_VERSIONS)}
        if fingerprint not in {None, self.legacy_predictor.fingerprint, *known}:
            raise ModelMismatchError(
                f"cm: data was compressed with model fingerprint {fingerprint}, but this cm "
                f"has {self.predictor.fingerprint} (other settings, or another version)")

    def _predictor(self, chunk_size: int | None, signals: int) -> Predictor:
        """The model for chunks of `chunk_size` (None: a stream), with numeric models of
        version `signals` (0: none) reading images at `width` if given (`cm_predictor`)."""
        return cm_predictor(chunk_size, signals, self.width)

    @property
    def params(self) -> dict[str, Any]:
        legacy = self.legacy_predictor.config
        return {"chunk_size": self.chunk_size, "order": legacy["order"],
                "table_bits": legacy["table_bits"], "signals": bool(self.predictor.signals),
                "width": self.width, "fingerprint": self.predictor.fingerprint}

    def for_image(self, width: int) -> Compressor:
        """cm reading images at this row width (its numeric models need it)."""
        if not self.predictor.signals or width == self.width:
            return self
        return ContextMixingCompressor(self.chunk_size, workers=self.workers,
                                       legacy_order=self.legacy_predictor.config["order"],
                                       legacy_table_bits=self.legacy_predictor.config[
                                           "table_bits"], width=width)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        """Σ −log2 p over the bits: the ideal code length (the payload adds the coder's
        last byte and the framing), whatever the unit asked."""
        return math.fsum(math.fsum(self.predictor.code_lengths(chunk))
                         for chunk in self._chunks(data))

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """ℓ(context·c) − ℓ(context), exactly as `code_length_bits` cuts context·c: only
        the context's last chunk (the `tail`, possibly empty) matters; a one-byte
        candidate costs what the model, having learnt the tail, gives it."""
        tail = context[self._chunk_start(len(context)):]
        if all(len(candidate) == 1 for candidate in candidates):
            state, probabilities = self.predictor.start(1)
            if tail:
                probabilities = self.predictor.prime(
                    state, np.frombuffer(tail, dtype=np.uint8)[None, :])
            log2_probs = np.log2(probabilities[0])
            return np.array([-log2_probs[candidate[0]] for candidate in candidates])
        base = self.code_length_bits(tail)
        return np.array([self.code_length_bits(tail + candidate) - base
                         for candidate in candidates])

    def compress(self, data: bytes) -> bytes:
        jobs = [([chunk],) for chunk in self._chunks(data)]
        streams = [stream for job_streams in self._each_group("_encode_chunks", jobs)
                   for stream in job_streams]
        return pack_payload((self.predictor.name, self.predictor.fingerprint), data,
                            self.chunk_size, 1, None, streams, 1)

    def _encode_chunks(self, chunks: Sequence[bytes]) -> list[bytes]:
        from gencomp.codecs.cm_coder import encode_bytes

        streams = []
        for chunk in chunks:
            data = np.frombuffer(chunk, dtype=np.uint8)
            # Room for well compressible data first; the worst case (12 bits a bit) on a
            # second try, so that large chunks do not reserve twelve times their size.
            for capacity in (len(chunk) + len(chunk) // 8 + 64, 12 * len(chunk) + 64):
                out = np.empty(capacity, dtype=np.uint8)
                written = encode_bytes(self.predictor.new_model(len(chunk)), data, out)
                if written >= 0:
                    break
            streams.append(out[:written].tobytes())
        return streams

    def decompress_pieces(self, payload: bytes, max_output_bytes: int | None = None
                          ) -> Iterator[bytes]:
        """Decoded a piece at a time: a stream in pieces of DECODE_PIECE_BYTES (its model
        keeps its history, which the memory budget counts, but not a copy of the
        output), chunks coded by workers in batches of about that much."""
        from predictors.cm import SIGNALS_VERSIONS

        if payload[len(MAGIC):len(MAGIC) + 1] == b"\x01":  # the first cm model's
            legacy = PredictiveCompressor(self.legacy_predictor, name=self.name)
            yield legacy.decompress(payload, max_output_bytes)
            return
        header, streams = parse_payload(payload, self.name, output_limit(max_output_bytes), 1)
        # The text-only model's payloads, and every version of the numeric models', decode
        # alike.
        candidates = [self._predictor(header.chunk_size, version)
                      for version in (*SIGNALS_VERSIONS, 0)]
        predictor = next((candidate for candidate in candidates
                          if candidate.fingerprint.startswith(header.fingerprint)),
                         candidates[0])
        check_model(header, (predictor.name, predictor.fingerprint), self.name)
        lengths = chunk_lengths(header.length, header.chunk_size)
        crc = output_crc(b"", header)
        for piece in self._decoded_pieces(streams, lengths, predictor):
            crc = output_crc(piece, header, crc)
            yield piece
        check_crc(crc, header, self.name)

    def _decoded_pieces(self, streams: Sequence[bytes], lengths: Sequence[int],
                        predictor: Predictor) -> Iterator[bytes]:
        report = coding_progress.get()
        if self.workers > 1 and len(streams) > 1 and max(lengths) <= DECODE_PIECE_BYTES:
            per_batch = DECODE_PIECE_BYTES // max(lengths)
            for first in range(0, len(streams), per_batch):
                jobs = [(streams[index:index + 1], lengths[index:index + 1], predictor)
                        for index in range(first, min(first + per_batch, len(streams)))]
                token = coding_progress.set(
                    None if report is None else
                    lambda done, _, first=first: report(first + done, len(streams)))
                try:
                    piece = b"".join(self._each_group("_decode_chunks", jobs))
                finally:
                    coding_progress.reset(token)
                yield piece
            return
        for index, (stream, length) in enumerate(zip(streams, lengths, strict=True)):
            yield from self._chunk_pieces(stream, length, predictor)
            if report is not None:
                report(index + 1, len(streams))

    def _chunk_pieces(self, stream: bytes, length: int, predictor: Predictor
                      ) -> Iterator[bytes]:
        from gencomp.codecs.cm_coder import consumed_exactly, decode_bytes, start_decoding

        model = predictor.new_model(length)
        data, state = np.frombuffer(stream, dtype=np.uint8), start_decoding()
        for start in range(0, length, DECODE_PIECE_BYTES):
            out = np.empty(min(DECODE_PIECE_BYTES, length - start), dtype=np.uint8)
            decode_bytes(model, data, out, state)
            yield out.tobytes()
        if not consumed_exactly(state, data):
            raise CorruptPayloadError(f"{self.name}: a chunk's coded stream has the wrong "
                                      "length (corrupt payload)")

    def _decode_chunks(self, streams: Sequence[bytes], lengths: Sequence[int],
                       predictor: Predictor) -> bytes:
        return b"".join(piece for stream, length in zip(streams, lengths, strict=True)
                        for piece in self._chunk_pieces(stream, length, predictor))


_WORKER_COMPRESSORS: dict[tuple[str, tuple[tuple[str, Any], ...]], Compressor] = {}


def _in_worker(recipe: tuple[str, tuple[tuple[str, Any], ...]], method: str, *job: Any
               ) -> Any:
    """Run a group's job in a worker process, on the compressor `recipe` (registry name and
    params, fingerprint included, so a worker that loads other weights refuses to code)."""
    if recipe not in _WORKER_COMPRESSORS:
        name, params = recipe
        _WORKER_COMPRESSORS[recipe] = get_compressor(name, **dict(params))
    return getattr(_WORKER_COMPRESSORS[recipe], method)(*job)


# --- registered model compressors -------------------------------------------------------


#: What the container of a model compressor leaves out: what the payload records itself
#: (its chunk and group sizes, the Transformer's stride, the model's fingerprint).
MODEL_PAYLOAD_PARAMS = ("chunk_size", "batch_size", "stride", "fingerprint", "online")


@register("cm", "context mixing (lpaq-style: orders 0-6, words, sparse and record contexts, "
          "a match model, numeric models of pixels and audio samples, a mixer and APMs; "
          "compiled, integers only) + binary arithmetic "
          "coding. Learns across the whole file by default; chunk_size=2048 codes the "
          "paper's independent chunks (what compress-bench measures); order/table_bits "
          "only decode files of the first cm model", is_model=True,
          runtime_params=("workers",), payload_params=(*MODEL_PAYLOAD_PARAMS, "signals"))
def context_mixing(chunk_size: int | None = None, order: int = 4, table_bits: int = 13,
                   batch_size: int = DEFAULT_BATCH_SIZE, fingerprint: str | None = None,
                   workers: int = 1, signals: bool = True,
                   width: int | None = None) -> ContextMixingCompressor:
    """`order` and `table_bits` are the first cm model's settings, for its files;
    `batch_size` (its coder's group size) is recorded in those files themselves.
    `signals` adds the numeric models of images and audio (`predictors.cm_kernels`);
    payloads record which model coded them, so both kinds decode either way."""
    check_int_range(batch_size, 1, MAX_BATCH_SIZE, "batch_size")
    return ContextMixingCompressor(chunk_size, fingerprint=fingerprint, workers=workers,
                                   legacy_order=order, legacy_table_bits=table_bits,
                                   signals=signals, width=width)


@register("transformer", "the paper's byte-level Transformer (pretrained, shipped weights) "
          "+ arithmetic coding. Streams by default: every byte after at least 1024 bytes "
          "of context (windows of its 2048-byte context); online=true (what gencomp "
          "compress sets) lets its output layer learn across the file; mix=cm mixes the "
          "windows with cm, which learns the whole file; chunk_size=2048 codes the "
          "paper's independent chunks", is_model=True,
          runtime_params=("workers", "device"), payload_params=MODEL_PAYLOAD_PARAMS,
          file_params={"online": True})
def transformer(size: str = "200k", checkpoint: str | None = None, device: str = "cpu",
                engine: str = "auto", chunk_size: int | None = None,
                stride: int | None = None, mix: str | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE, fingerprint: str | None = None,
                workers: int = 1, online: bool = False) -> PredictiveCompressor:
    """`engine` "auto" picks the CPU kernels (kernels-f16) on the CPU; when decoding
    (`fingerprint` given) it picks the engine that made the payload, so payloads of the
    first kernels, and those coded before the kernels existed (torch engine), still
    decode. `mix` "cm" mixes the streaming windows
    with the context-mixing model (module doc). `online` (kernels engine): a stream is
    coded with an output layer that learns across it (`predictors.online_head`), unless
    `mix` or `stride` asks for the windows: what `gencomp compress` uses for files (it
    codes them 2 points smaller), not the default, which keeps the model as trained for
    samplers (`gencomp sample` drew fewer known words from the online head, which also
    learns from its own samples). Payloads of either kind decode either way."""
    if not isinstance(online, bool):
        raise ValueError(f"online must be true or false, got {online!r}")
    return _transformer("transformer", size, checkpoint, device, engine, chunk_size, stride,
                        mix, batch_size, fingerprint, workers, online)


@register("transformer-cm", "the shipped Transformer mixed with cm and its numeric models "
          "(mix=cm-signals) in every mode, the paper's 2 KB chunks included: one model "
          "compressor for text, images and audio", is_model=True,
          runtime_params=("workers", "device"), payload_params=MODEL_PAYLOAD_PARAMS)
def transformer_with_cm(size: str = "200k", checkpoint: str | None = None, device: str = "cpu",
                        engine: str = "auto", chunk_size: int | None = None,
                        stride: int | None = None, mix: str = "cm-signals",
                        batch_size: int = DEFAULT_BATCH_SIZE, fingerprint: str | None = None,
                        workers: int = 1) -> PredictiveCompressor:
    """`transformer` with mix=cm-signals, under a name of its own so that compress-bench
    and `gencomp list` show it beside the paper's text-trained row."""
    if mix != "cm-signals":
        raise ValueError(f"transformer-cm mixes cm-signals, not {mix!r} (see transformer)")
    return _transformer("transformer-cm", size, checkpoint, device, engine, chunk_size, stride,
                        mix, batch_size, fingerprint, workers, online=False)


def _online(predictor: Predictor, mix: str | None) -> Predictor | None:
    """The online-head predictor for a kernels engine's streams, None where none is used."""
    if not predictor.batch_independent or mix is not None:
        return None
    from predictors.online_head import OnlineHeadTransformer

    return OnlineHeadTransformer(predictor)


def _transformer(name: str, size: str, checkpoint: str | None, device: str, engine: str,
                 chunk_size: int | None, stride: int | None, mix: str | None,
                 batch_size: int, fingerprint: str | None, workers: int, online: bool
                 ) -> PredictiveCompressor:
    # imports torch: only when asked
    from predictors.transformer import (
        ENGINES,
        KERNEL_ENGINES,
        TransformerPredictor,
        load_pretrained,
    )

    predictor = load_pretrained(size, checkpoint, device, engine)
    online_predictor = _online(predictor, mix)
    known = {None, predictor.fingerprint, online_predictor and online_predictor.fingerprint}
    if engine == "auto" and fingerprint not in known:
        # a payload of another engine: the first kernels', or torch's from before them
        on_cpu = predictor.device == "cpu"
        for other in ENGINES:
            if other == predictor.engine or (other in KERNEL_ENGINES and not on_cpu):
                continue
            candidate = TransformerPredictor(predictor.tensors, device, engine=other,
                                             held_out_rate_percent=predictor.held_out_rate_percent)
            candidate_online = _online(candidate, mix)
            if fingerprint in {candidate.fingerprint,
                               candidate_online and candidate_online.fingerprint}:
                predictor, online_predictor = candidate, candidate_online
                break
    return PredictiveCompressor(predictor, chunk_size, batch_size, name=name,
                                predictor_params={"size": size, "checkpoint": checkpoint,
                                                  "device": device,
                                                  "engine": predictor.engine},
                                fingerprint=fingerprint, workers=workers, stride=stride,
                                mix=mix, online=online_predictor, stream_online=online)
