"""Model compressors: a next-byte predictor plus an arithmetic coder (the paper's Sec. 2).

Data is cut into independent chunks (2048 bytes, as in the paper) and the predictor runs
on groups of `batch_size` chunks as one batch. Encoder, decoder and `code_length_bits` all
walk a group through the same `start` / `step` calls with the same inputs, so they see the
same probabilities bit for bit: the decoder steps exactly the groups the encoder stepped
(their size is in the payload), and a last chunk shorter than the others is padded with
zero bytes past its end on both sides.

Payload (integers little-endian; "varint" is unsigned LEB128):

    magic "GCP"     3 bytes
    version         1 byte   (1)
    chunk_size      u32
    group_size      u32      chunks stepped together
    length          u64      bytes of original data
    predictor       u8 length + UTF-8 name
    fingerprint     u8 length + ASCII digest of the predictor's config and weights
    crc32           u32      of all the above followed by the original data: damage that
                             still decodes (to other bytes, or under other settings) is caught
    word counts     one varint per chunk: the length of its coded stream in 32-bit words
    streams         each chunk's range-coder words (u32), one after the other

A chunk's stream is complete in itself, so chunks decode independently, and groups can be
coded in separate processes (`workers`): each group is the same batch there, so the bytes
do not depend on the number of workers. A `batch_independent` predictor (the Transformer's
CPU kernels) needs no batch at all: the encoder scores each chunk whole
(`sequence_distributions`, bit-identical to stepping it), the decoder steps one chunk at a
time, whose model state then stays in the CPU's cache, and workers are threads. The decoder
refuses a payload from another predictor or other weights (ModelMismatchError) and never
trusts a declared size before checking it against the caller's limit and the payload's
own length.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple

import numpy as np

from gencomp import arithmetic
from gencomp.compressor import (
    Compressor,
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
from gencomp.processes import map_in_order
from predictors.base import Predictor

MAGIC = b"GCP"
VERSION = 1
DEFAULT_CHUNK_SIZE = CHUNK_SIZE
DEFAULT_BATCH_SIZE = 64
MAX_CHUNK_SIZE = 1 << 20
#: Bounds the memory a payload can make the decoder allocate for one batch.
MAX_BATCH_SIZE = 256
MAX_WORKERS = 256
#: Encoder rows buffered per chunk before they are handed to the coder in one call.
ENCODE_BLOCK = 64

#: When set, told (chunks coded, chunks in all) as each job of `compress` or `decompress`
#: finishes: `gencomp compress` draws its bar with it. A context variable, so that coding
#: takes no progress parameter and knows nothing of terminals.
coding_progress: ContextVar[Callable[[int, int], None] | None] = ContextVar(
    "coding_progress", default=None)

_FIXED = struct.Struct("<3sBIIQ")
_CRC = struct.Struct("<I")


class ParsedPayload(NamedTuple):
    chunk_size: int
    group_size: int
    length: int
    header_crc: int        # CRC-32 of the header, to be continued over the decoded data
    crc: int               # the recorded CRC-32 of header and data
    streams: list[np.ndarray]


class PredictiveCompressor(Compressor):
    """A predictor turned into a lossless compressor by arithmetic coding.

    `name` and `predictor_params` are what the registry needs to rebuild it
    (`get_compressor(name, **params)`); they default to the predictor's name and config.
    Passing `fingerprint` (as a container does) checks that the predictor is the model the
    data was compressed with. `workers` > 1 codes that many jobs at once: groups of
    `batch_size` chunks in processes that each rebuild the compressor from the registry,
    or, for a `batch_independent` predictor, single chunks in threads sharing this one. It
    is not a parameter of the bytes, so it is not in `params`.
    """

    def __init__(self, predictor: Predictor, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, name: str | None = None,
                 predictor_params: dict[str, Any] | None = None,
                 fingerprint: str | None = None, workers: int = 1) -> None:
        self.predictor = predictor
        self.chunk_size = check_int_range(chunk_size, 1, MAX_CHUNK_SIZE, "chunk_size")
        self.batch_size = check_int_range(batch_size, 1, MAX_BATCH_SIZE, "batch_size")
        self.workers = check_int_range(workers, 1, MAX_WORKERS, "workers")
        if predictor.context_length is not None and self.chunk_size > predictor.context_length:
            raise ValueError(f"chunk_size {chunk_size} is longer than the model's context of "
                             f"{predictor.context_length} bytes")
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
                "batch_size": self.batch_size, "fingerprint": self.predictor.fingerprint}

    @property
    def num_parameters(self) -> int:
        return self.predictor.num_parameters

    # --- the one computation -----------------------------------------------------------

    def _chunks(self, data: bytes) -> list[bytes]:
        return [data[start:start + self.chunk_size]
                for start in range(0, len(data), self.chunk_size)]

    def _groups(self, chunks: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
        for start in range(0, len(chunks), self.batch_size):
            yield chunks[start:start + self.batch_size]

    def _walk(self, group: Sequence[bytes]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Step the predictor through a group of chunks as one batch: yield, for each
        position, the (batch, 256) distributions and the (batch,) bytes there (zero past a
        chunk's end). The decoder reproduces exactly these calls."""
        longest = max(len(chunk) for chunk in group)
        symbols = np.zeros((len(group), longest), dtype=np.uint8)
        for row, chunk in enumerate(group):
            symbols[row, : len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        state, probabilities = self.predictor.start(len(group))
        for position in range(longest):
            yield probabilities, symbols[:, position]
            if position + 1 < longest:
                probabilities = self.predictor.step(state, symbols[:, position])

    def _chunk_log2_probs(self, chunks: Sequence[bytes]) -> Iterator[np.ndarray]:
        """log2 p of every byte of every chunk, chunk by chunk, grouped as the coder does
        (`symbol_log2_probs` steps a group exactly as `_walk` does)."""
        for group in self._groups(chunks):
            yield from self.predictor.symbol_log2_probs(group)

    @property
    def context_window(self) -> int | None:
        limits = [self.predictor.context_length, self.chunk_size]
        return min(limit for limit in limits if limit)

    # --- code lengths ------------------------------------------------------------------

    #: The ideal code length is this codec's only unit, and exact.
    length_units = ("bits",)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        """Σ −log2 p over the chunks: the ideal code length (the payload adds the coder's
        final words and the framing)."""
        return math.fsum(-math.fsum(chunk) for chunk in self._chunk_log2_probs(self._chunks(data)))

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """ℓ(context·c) − ℓ(context), exactly as `code_length_bits` cuts context·c.

        Chunks that lie wholly inside the context are the same on both sides and cancel;
        what remains is the context's last, partial chunk (the `tail`, possibly empty)
        continued by c, and chunked again if c runs past a chunk boundary. So the
        continuation is modelled the way the chunked setting would code it: after the
        tail, not after the whole context. One-byte candidates (what samplers ask) always
        fit in the tail's chunk and need a single distribution.
        """
        tail = context[len(context) - len(context) % self.chunk_size:]
        if all(len(candidate) == 1 for candidate in candidates):
            log2_probs = np.log2(self._next_distribution(tail))
            return np.array([-log2_probs[candidate[0]] for candidate in candidates])
        sequences = [tail, *(tail + candidate for candidate in candidates)]
        chunks, owners = [], []
        for owner, sequence in enumerate(sequences):
            for chunk in self._chunks(sequence):
                chunks.append(chunk)
                owners.append(owner)
        bits = np.zeros(len(sequences))
        for owner, log2_probs in zip(owners, self._chunk_log2_probs(chunks), strict=True):
            bits[owner] += -math.fsum(log2_probs)
        return bits[1:] - bits[0]

    def _next_distribution(self, tail: bytes) -> np.ndarray:
        """The distribution of the byte after `tail` within its chunk, from the coder's own
        walk: over tail plus a placeholder byte, whose distribution is the last one yielded
        (the placeholder itself is never fed to the model)."""
        *_, (last, _) = self._walk([tail + b"\0"])
        return last[0]

    # --- coding ------------------------------------------------------------------------

    def _job_size(self, group_size: int) -> int:
        """Chunks per unit of work: a batch group, or one chunk when batches do not matter
        (so that work spreads evenly and an interrupt waits for one chunk at most)."""
        return 1 if self.predictor.batch_independent else group_size

    def compress(self, data: bytes) -> bytes:
        chunks = self._chunks(data)
        size = self._job_size(self.batch_size)
        jobs = [(chunks[start:start + size],) for start in range(0, len(chunks), size)]
        streams = [stream for group_streams in self._each_group("_encode_group", jobs)
                   for stream in group_streams]
        name = self.predictor.name.encode("utf-8")
        fingerprint = self.predictor.fingerprint.encode("ascii")
        header = b"".join([_FIXED.pack(MAGIC, VERSION, self.chunk_size, self.batch_size,
                                       len(data)),
                           bytes([len(name)]), name, bytes([len(fingerprint)]), fingerprint])
        counts = b"".join(_varint(len(stream)) for stream in streams)
        return b"".join([header, _CRC.pack(zlib.crc32(data, zlib.crc32(header))), counts,
                         *map(arithmetic.words_to_bytes, streams)])

    def _encode_group(self, group: Sequence[bytes]) -> list[np.ndarray]:
        """Code each chunk of a group; rows are buffered and coded a block at a time."""
        if self.predictor.batch_independent:
            return [arithmetic.encode(np.frombuffer(chunk, dtype=np.uint8),
                                      self.predictor.sequence_distributions(chunk))
                    for chunk in group]
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

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        limit = output_limit(max_output_bytes)
        parsed = self._parse(payload, limit)
        size, group = parsed.chunk_size, self._job_size(parsed.group_size)
        chunk_lengths = [min(size, parsed.length - start)
                         for start in range(0, parsed.length, size)]
        jobs = [(parsed.streams[start:start + group], chunk_lengths[start:start + group])
                for start in range(0, len(parsed.streams), group)]
        output = b"".join(self._each_group("_decode_group", jobs))
        if zlib.crc32(output, parsed.header_crc) != parsed.crc:
            raise ChecksumMismatchError(f"{self.name}: decoded data fails the payload's CRC-32 "
                                        "(corrupt payload)")
        return bytes(output)

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

    def _parse(self, payload: bytes, limit: int) -> ParsedPayload:
        """Check the payload's framing against this model and the limit; split streams."""
        if len(payload) < _FIXED.size:
            raise TruncatedError(f"{self.name}: payload is truncated (no header)")
        magic, version, chunk_size, group_size, length = _FIXED.unpack_from(payload)
        if magic != MAGIC:
            raise CorruptPayloadError(f"{self.name}: not a model-coded payload (bad magic)")
        if version != VERSION:
            raise CorruptPayloadError(f"{self.name}: unsupported payload version {version}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE or not 1 <= group_size <= MAX_BATCH_SIZE:
            raise CorruptPayloadError(f"{self.name}: payload declares chunk size {chunk_size}"
                                      f" and group size {group_size}, out of range")
        if length > limit:
            raise SizeLimitError(f"{self.name}: payload declares {length} bytes, over the "
                                 f"limit of {limit}")
        offset = _FIXED.size
        name, offset = _short_string(payload, offset, self.name)
        fingerprint, offset = _short_string(payload, offset, self.name)
        if name != self.predictor.name or fingerprint != self.predictor.fingerprint:
            raise ModelMismatchError(
                f"{self.name}: payload was made by predictor {name!r} with fingerprint "
                f"{fingerprint}; the loaded one is {self.predictor.name!r} with "
                f"{self.predictor.fingerprint} (other model, weights or settings)")
        if offset + _CRC.size > len(payload):
            raise TruncatedError(f"{self.name}: payload is truncated (in the header)")
        header_crc = zlib.crc32(payload[:offset])
        (crc,) = _CRC.unpack_from(payload, offset)
        offset += _CRC.size
        num_chunks = -(-length // chunk_size)
        if num_chunks > len(payload) - offset:  # every count takes at least one byte
            raise TruncatedError(f"{self.name}: payload is truncated (declares {num_chunks} "
                                 "chunks)")
        counts = []
        for _ in range(num_chunks):
            count, offset = _read_varint(payload, offset, self.name)
            counts.append(count)
        expected = offset + 4 * sum(counts)
        if len(payload) < expected:
            raise TruncatedError(f"{self.name}: payload is truncated ({len(payload)} of "
                                 f"{expected} bytes)")
        if len(payload) > expected:
            raise CorruptPayloadError(f"{self.name}: {len(payload) - expected} unexpected "
                                      "bytes after the payload")
        streams = []
        for count in counts:
            streams.append(arithmetic.bytes_to_words(payload[offset:offset + 4 * count]))
            offset += 4 * count
        return ParsedPayload(chunk_size, group_size, length, header_crc, crc, streams)


_WORKER_COMPRESSORS: dict[tuple[str, tuple[tuple[str, Any], ...]], PredictiveCompressor] = {}


def _in_worker(recipe: tuple[str, tuple[tuple[str, Any], ...]], method: str, *job: Any
               ) -> Any:
    """Run a group's job in a worker process, on the compressor `recipe` (registry name and
    params, fingerprint included, so a worker that loads other weights refuses to code)."""
    if recipe not in _WORKER_COMPRESSORS:
        name, params = recipe
        _WORKER_COMPRESSORS[recipe] = get_compressor(name, **dict(params))
    return getattr(_WORKER_COMPRESSORS[recipe], method)(*job)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(payload: bytes, offset: int, name: str) -> tuple[int, int]:
    value = 0
    for shift in range(0, 35, 7):
        if offset >= len(payload):
            raise TruncatedError(f"{name}: payload is truncated (in the chunk table)")
        byte = payload[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
    raise CorruptPayloadError(f"{name}: corrupt chunk table (overlong count)")


def _short_string(payload: bytes, offset: int, name: str) -> tuple[str, int]:
    if offset >= len(payload) or offset + 1 + payload[offset] > len(payload):
        raise TruncatedError(f"{name}: payload is truncated (in the header)")
    end = offset + 1 + payload[offset]
    try:
        return payload[offset + 1:end].decode("utf-8"), end
    except UnicodeDecodeError as error:
        raise CorruptPayloadError(f"{name}: corrupt payload header") from error


# --- registered model compressors -------------------------------------------------------


#: What the container of a model compressor leaves out: how coding runs, and what the
#: payload records itself (its chunk and group sizes, the model's fingerprint).
MODEL_PAYLOAD_PARAMS = ("chunk_size", "batch_size", "fingerprint")


@register("cm", "adaptive context mixing (paq-style, learned online from each chunk) "
          "+ arithmetic coding", is_model=True, runtime_params=("workers",),
          payload_params=MODEL_PAYLOAD_PARAMS)
def context_mixing(order: int = 4, table_bits: int = 13,
                   chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                   fingerprint: str | None = None, workers: int = 1) -> PredictiveCompressor:
    from predictors.cm import ContextMixingPredictor

    return PredictiveCompressor(ContextMixingPredictor(order=order, table_bits=table_bits),
                                chunk_size, batch_size, name="cm", fingerprint=fingerprint,
                                workers=workers)


@register("transformer", "the paper's byte-level Transformer (pretrained, shipped weights) "
          "+ arithmetic coding", is_model=True, runtime_params=("workers", "device"),
          payload_params=MODEL_PAYLOAD_PARAMS)
def transformer(size: str = "200k", checkpoint: str | None = None, device: str = "cpu",
                engine: str = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE,
                batch_size: int = DEFAULT_BATCH_SIZE, fingerprint: str | None = None,
                workers: int = 1) -> PredictiveCompressor:
    """`engine` "auto" picks the CPU kernels on the CPU; when decoding (`fingerprint`
    given) it picks the engine that made the payload, so payloads coded before the
    kernels existed (torch engine) still decode."""
    # imports torch: only when asked
    from predictors.transformer import TransformerPredictor, load_pretrained

    predictor = load_pretrained(size, checkpoint, device, engine)
    if engine == "auto" and fingerprint not in (None, predictor.fingerprint):
        torch_engine = TransformerPredictor(predictor.model, device, engine="torch",
                                            held_out_rate_percent=predictor.held_out_rate_percent)
        if torch_engine.fingerprint == fingerprint:
            predictor = torch_engine
    return PredictiveCompressor(predictor, chunk_size, batch_size, name="transformer",
                                predictor_params={"size": size, "checkpoint": checkpoint,
                                                  "device": device,
                                                  "engine": predictor.engine},
                                fingerprint=fingerprint, workers=workers)
