"""FLAC: bytes as 8-bit unsigned mono samples at 16 kHz, compressed by libsndfile.

Two sample widths. The default, `sample_bits=16`, is the paper's way: its ffmpeg path wrote
each 8-bit sample widened to 16 bits ((b − 128) << 8). FLAC notices the 8 always-zero low
bits ("wasted bits") and codes them almost for free, so this reproduces the paper's Table 1
FLAC rows. `sample_bits=8` writes native signed 8-bit FLAC (PCM_S8): a few bytes smaller
headers, the same predictor.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile

from gencomp.compressor import Compressor, register
from gencomp.errors import CorruptPayloadError, SizeLimitError, TruncatedError

_SUBTYPES = {16: "PCM_16", 8: "PCM_S8"}


@register("flac", "FLAC (libsndfile): bytes as 8-bit 16 kHz mono audio")
class FlacCompressor(Compressor):
    name = "flac"

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

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8
        with io.BytesIO() as buffer:
            soundfile.write(buffer, samples, self.sample_rate, format="FLAC",
                            subtype=_SUBTYPES[self.sample_bits])
            return buffer.getvalue()

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        if not payload:
            return b""
        try:
            with soundfile.SoundFile(io.BytesIO(payload)) as audio:
                if audio.format != "FLAC" or audio.channels != 1:
                    raise CorruptPayloadError("flac: expected mono FLAC")
                declared = audio.frames
                if max_output_bytes is not None and declared > max_output_bytes:
                    raise SizeLimitError(f"flac: {declared} samples are over the limit")
                samples = audio.read(dtype="int16")
        except (SizeLimitError, CorruptPayloadError):
            raise
        except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
            raise CorruptPayloadError(f"flac: corrupt payload ({error})") from error
        if len(samples) != declared:
            raise TruncatedError(f"flac: {len(samples)} of {declared} samples decoded")
        if np.any(samples & 0xFF):
            raise CorruptPayloadError("flac: samples are not 8-bit values")
        return ((samples >> 8) + 128).astype(np.uint8).tobytes()
