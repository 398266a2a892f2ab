"""FLAC: bytes as 8-bit unsigned mono samples at 16 kHz, compressed by libsndfile.

Two sample widths. The default, `sample_bits=16`, is the paper's way: its ffmpeg path wrote
each 8-bit sample widened to 16 bits ((b − 128) << 8). FLAC notices the 8 always-zero low
bits ("wasted bits") and codes them almost for free, so this reproduces the paper's Table 1
FLAC rows. `sample_bits=8` writes native signed 8-bit FLAC (PCM_S8): a few bytes smaller
headers, the same predictor.

Decoding trusts nothing in the payload: the STREAMINFO block is checked (mono, our sample
width and rate, a declared length within the limit) before libsndfile sees the bytes,
samples are read and handed on in blocks so memory does not follow the length, and the
decoded samples must match STREAMINFO's MD5 signature (libsndfile does not check it).

Scoring continuations is fast because FLAC codes fixed-size frames (4096 samples here)
independently, behind headers of fixed size: ℓ(context·c) − ℓ(context) is decided by the
context's last, partial frame alone.

Units. Exact bits: each frame's subframes end inside a byte that is padded with zeros
before the frame's CRC-16; `gencomp.codecs.flac_frames` walks the frames and finds where.
Metadata, frame headers and CRCs are counted whole.

Sampling audio (`for_audio`). Frames are coded independently, so the code length of a
sample that starts a new frame does not depend on anything before it: continued past a
frame boundary, FLAC's conditional distribution is that of a fresh stream, and samples
turn into hiss there. `FlacWindow` scores a continuation by the code length of one frame's
worth of samples ending with it (a sliding window of `frame_samples`), so every candidate
is predicted from the 4095 samples before it, as the chunked model compressors condition
on their chunk. In bytes that is the plain codec's file of the window, the paper's way;
in exact bits it is the subframe that codes the window with the linear predictor fitted
to the prompt (`gencomp.codecs.flac_predictor`, which says why the predictor is not refit).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from gencomp.codecs import flac_predictor
from gencomp.compressor import Compressor, output_limit, register
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError

_SUBTYPES = {16: "PCM_16", 8: "PCM_S8"}
_MAGIC = b"fLaC"
#: The first metadata block, STREAMINFO: a 4-byte block header (last-block flag, type 0,
#: length 34) and 34 bytes.
_STREAMINFO = slice(4, 42)
_STREAMINFO_HEADERS = (b"\x00\x00\x00\x22", b"\x80\x00\x00\x22")
_READ_BLOCK_SAMPLES = 1 << 16


@register("flac", "FLAC (libsndfile): bytes as 8-bit 16 kHz mono audio")
class FlacCompressor(Compressor):
    name = "flac"
    length_units = ("bytes", "bits")

    def __init__(self, sample_bits: int = 16, sample_rate: int = 16000) -> None:
        if sample_bits not in _SUBTYPES:
            raise ValueError(f"sample_bits must be 8 or 16, got {sample_bits!r}")
        if not isinstance(sample_rate, int) or not 1 <= sample_rate <= 655350:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        self.sample_bits = sample_bits
        self.sample_rate = sample_rate

    @property
    def params(self) -> dict[str, Any]:
        return {"sample_bits": self.sample_bits, "sample_rate": self.sample_rate}

    @cached_property
    def frame_samples(self) -> int | None:
        """Samples per frame, from STREAMINFO's minimum and maximum block size; None if the
        encoder does not use one fixed size."""
        streaminfo = self.compress(b"\x80")[_STREAMINFO]
        smallest, largest = (int.from_bytes(streaminfo[i:i + 2], "big") for i in (4, 6))
        return largest if smallest == largest else None

    def for_audio(self, prompt: bytes) -> FlacWindow:
        return FlacWindow(self.sample_bits, self.sample_rate, prompt)

    def payload_bits(self, payload: bytes) -> float:
        """The file less the zero bits that pad each frame before its CRC-16."""
        from gencomp.codecs import flac_frames  # numba kernels: loaded on the first exact count
        if not payload:
            return 0.0
        position = len(_MAGIC)
        while True:  # metadata blocks: a last-block flag, a type, a 24-bit length
            header = payload[position]
            position += 4 + int.from_bytes(payload[position + 1:position + 4], "big")
            if header & 0x80:
                break
        return 8.0 * len(payload) - flac_frames.padding_bits(payload[position:],
                                                             self.sample_bits)

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """Exact, by recompressing only the context's last frame: earlier frames are coded
        the same with or without a candidate, and header sizes do not depend on the length.
        When the context ends on a frame boundary, or a candidate would run into the next
        frame (whose header codes its frame number, in as many bytes as that number needs),
        it recompresses everything instead."""
        frame = self.frame_samples
        tail_length = len(context) % frame if frame else 0
        if tail_length == 0 or any(tail_length + len(candidate) > frame
                                   for candidate in candidates):
            return super().continuation_bits(context, candidates, unit)
        return super().continuation_bits(context[-tail_length:], candidates, unit)

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        import soundfile  # libsndfile: loaded by the first FLAC, not by every command

        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8
        with io.BytesIO() as buffer:
            soundfile.write(buffer, samples, self.sample_rate, format="FLAC",
                            subtype=_SUBTYPES[self.sample_bits])
            return buffer.getvalue()

    def decompress_pieces(self, payload: bytes, max_output_bytes: int | None = None
                          ) -> Iterator[bytes]:
        """The samples a block at a time; the MD5 is checked once the last is out (a
        caller keeps the pieces where they can be thrown away until then, as the .gcz
        container's own digest needs too)."""
        if not payload:
            return
        import soundfile

        limit = output_limit(max_output_bytes)
        declared, md5 = self._check_streaminfo(payload)
        if declared > limit:
            raise SizeLimitError(f"flac: {declared} samples are over the limit of {limit}")
        signature = hashlib.md5()
        decoded = 0
        try:
            with soundfile.SoundFile(io.BytesIO(payload)) as audio:
                while decoded < declared:
                    samples = audio.read(min(_READ_BLOCK_SAMPLES, declared - decoded),
                                         dtype="int16")
                    if not len(samples):
                        break
                    if np.any(samples & 0xFF):
                        raise CorruptPayloadError("flac: samples are not 8-bit values")
                    decoded += len(samples)
                    # STREAMINFO's MD5 is over the samples at their coded width, little-endian.
                    signature.update((samples >> 8).astype(np.int8) if self.sample_bits == 8
                                     else samples.astype("<i2"))
                    yield ((samples >> 8) + 128).astype(np.uint8).tobytes()
        except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
            raise CorruptPayloadError(f"flac: corrupt payload ({error})") from error
        if decoded != declared:
            raise TruncatedError(f"flac: {decoded} of {declared} samples decoded")
        if signature.digest() != md5:
            raise CorruptPayloadError("flac: decoded samples do not match the MD5 signature")

    def _check_streaminfo(self, payload: bytes) -> tuple[int, bytes]:
        """(declared sample count, MD5) from a STREAMINFO that matches what we write."""
        streaminfo = payload[_STREAMINFO]
        if not payload.startswith(_MAGIC) or streaminfo[:4] not in _STREAMINFO_HEADERS:
            raise CorruptPayloadError("flac: payload does not start with a FLAC STREAMINFO")
        fields = int.from_bytes(streaminfo[14:22], "big")
        sample_rate = fields >> 44
        channels = (fields >> 41 & 0x7) + 1
        sample_bits = (fields >> 36 & 0x1F) + 1
        declared = fields & (1 << 36) - 1
        if (channels, sample_bits, sample_rate) != (1, self.sample_bits, self.sample_rate):
            raise CorruptPayloadError(
                f"flac: expected mono {self.sample_bits}-bit audio at {self.sample_rate} Hz, "
                f"got {channels} channels of {sample_bits}-bit at {sample_rate} Hz")
        if declared == 0:
            raise CorruptPayloadError("flac: stream does not declare its length")
        return declared, streaminfo[22:38]


class FlacWindow(FlacCompressor):
    """FLAC for sampling audio after `prompt`: files are the plain codec's; the code length
    of a text is that of its last `frame_samples` samples, one frame (see the module doc):
    in bytes the plain codec's file, in bits the exact length of the FLAC subframe that
    codes them with `prompt_predictor`, fitted to the prompt's last frame, at the stream's
    full sample width with no wasted bits (why: `gencomp.codecs.flac_predictor`; native
    8-bit FLAC has no finer width, and its continuations drift). Frame headers and CRCs
    are left out: their size does not depend on the samples."""

    def __init__(self, sample_bits: int = 16, sample_rate: int = 16000, prompt: bytes = b""
                 ) -> None:
        super().__init__(sample_bits, sample_rate)
        self.prompt_predictor = flac_predictor.fit(
            self._samples(self._window(prompt)), sample_bits, wasted_bits=0,
            smallest_parameter=sample_bits - 8)

    def _samples(self, data: bytes) -> np.ndarray:
        """Bytes as the subframe's samples, signed, at the stream's full width."""
        return (np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 128) << (
            self.sample_bits - 8)

    def _window(self, data: bytes) -> bytes:
        return data[max(len(data) - (self.frame_samples or len(data)), 0):]

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        window = self._window(data)
        if self.length_unit(unit) == "bytes":
            return super().code_length_bits(window, unit)
        if not window:
            return 0.0
        return float(self.prompt_predictor.subframe_bits(self._samples(window),
                                                         self.sample_bits, wasted_bits=0))

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """In exact bits, candidates of one length at once: the window after a candidate
        is the context's last samples (`kept`) and the candidate, so its length is that of
        `kept` plus the Rice codes of the candidate's residuals. Otherwise, recompression
        of each window (the last-frame path of FlacCompressor assumes whole streams)."""
        lengths = {len(candidate) for candidate in candidates}
        window = self.frame_samples or len(context) + max(lengths, default=0)
        length = lengths.pop() if len(lengths) == 1 else 0
        kept = context[max(len(context) + length - window, 0):]
        if (self.length_unit(unit) == "bytes" or length == 0 or length >= window
                or len(kept) <= self.prompt_predictor.order):
            return Compressor.continuation_bits(self, context, candidates, unit)
        matrix = self._samples(b"".join(candidates)).reshape(len(candidates), length)
        base = self.code_length_bits(kept, unit) - self.code_length_bits(context, unit)
        return base + self.prompt_predictor.continuation_bits(self._samples(kept), matrix
                                                              ).astype(np.float64)
