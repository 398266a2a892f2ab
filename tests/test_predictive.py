"""Model compressors (predictor + arithmetic coder): exact round trips by construction,
refused foreign or damaged payloads, and code lengths that agree with each other."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gencomp import get_compressor
from gencomp.cli import main
from gencomp.codecs.predictive import PredictiveCompressor
from gencomp.datasets import DataLocations, load_chunks
from gencomp.errors import (
    ContainerError,
    ModelMismatchError,
    SizeLimitError,
    TruncatedError,
)
from predictors.base import Predictor, State
from predictors.cm import ContextMixingPredictor


class RecordingPredictor(Predictor):
    """Passes calls through to a predictor and keeps a copy of every distribution."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.name = inner.name
        self.outputs: list[np.ndarray] = []

    @property
    def config(self) -> dict[str, Any]:
        return self.inner.config

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def start(self, batch_size: int) -> tuple[State, np.ndarray]:
        state, probabilities = self.inner.start(batch_size)
        self.outputs.append(probabilities.copy())
        return state, probabilities

    def step(self, state: State, symbols: np.ndarray) -> np.ndarray:
        probabilities = self.inner.step(state, symbols)
        self.outputs.append(probabilities.copy())
        return probabilities


@pytest.fixture(scope="module")
def modality_chunks(data_dir: Path) -> dict[str, bytes]:
    """Three 256-byte chunks of each data set, preprocessed as the paper does."""
    locations = DataLocations(data_dir=data_dir)
    samples = {name: b"".join(load_chunks(name, locations, 1))[:768]
               for name in ("text", "image", "audio")}
    samples["random"] = np.random.default_rng(0).bytes(768)
    return samples


@pytest.mark.parametrize("modality", ["text", "image", "audio", "random"])
def test_round_trip_real_data(modality_chunks: dict[str, bytes], modality: str) -> None:
    compressor = get_compressor("cm", chunk_size=256)
    data = modality_chunks[modality]
    payload = compressor.compress(data)
    assert compressor.decompress(payload) == data
    if modality != "random":
        assert len(payload) < 0.85 * len(data)
    else:
        assert len(payload) < 1.03 * len(data) + 64


def test_decoder_sees_the_encoders_probabilities(enwik8_megabyte: bytes) -> None:
    """The one computation: the decoder's `start`/`step` outputs equal the encoder's bit
    for bit. Default chunk size, several chunks decoded as one batch, a short last one."""
    data = enwik8_megabyte[:2 * 2048 + 100]
    recorder = RecordingPredictor(ContextMixingPredictor())
    compressor = PredictiveCompressor(recorder)
    payload = compressor.compress(data)
    encoder_outputs, recorder.outputs = recorder.outputs, []
    assert compressor.decompress(payload) == data
    assert len(recorder.outputs) == len(encoder_outputs) == 2048
    assert all(np.array_equal(decoded, encoded)
               for decoded, encoded in zip(recorder.outputs, encoder_outputs, strict=True))
    assert encoder_outputs[0].shape == (3, 256)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 5 * 64 + 17])
def test_lengths_and_groups(enwik8_megabyte: bytes, length: int) -> None:
    """Empty, one byte, chunk boundaries, and more chunks than one group holds."""
    compressor = get_compressor("cm", chunk_size=64, batch_size=2)
    data = enwik8_megabyte[1000:1000 + length]
    assert compressor.decompress(compressor.compress(data)) == data


def test_params_rebuild_the_compressor(enwik8_megabyte: bytes) -> None:
    compressor = get_compressor("cm", order=3, chunk_size=128)
    data = enwik8_megabyte[:300]
    rebuilt = get_compressor("cm", **compressor.params)
    assert rebuilt.params == compressor.params
    assert rebuilt.decompress(compressor.compress(data)) == data
    assert compressor.num_parameters == 0 and compressor.predictor is not None


def test_other_model_is_refused(enwik8_megabyte: bytes) -> None:
    payload = get_compressor("cm", order=4, chunk_size=64).compress(enwik8_megabyte[:200])
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        get_compressor("cm", order=3, chunk_size=64).decompress(payload)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        get_compressor("cm", fingerprint="0123456789abcdef")


def test_code_length_is_the_ideal_length_of_the_payload(enwik8_megabyte: bytes) -> None:
    compressor = get_compressor("cm", chunk_size=128)
    data = enwik8_megabyte[:3 * 128 + 50]
    ideal = compressor.code_length_bits(data)
    header = len(compressor.compress(b""))
    actual = 8 * (len(compressor.compress(data)) - header)
    # each chunk's stream ends on a whole 32-bit word and has a 1-byte word count
    assert ideal <= actual <= ideal + 4 * (32 + 8)
    assert compressor.code_length_bits(b"") == 0.0


@pytest.mark.parametrize("context_length", [0, 40, 63, 64, 150])
def test_continuation_bits_equal_code_length_differences(enwik8_megabyte: bytes,
                                                         context_length: int) -> None:
    compressor = get_compressor("cm", chunk_size=64)
    context = enwik8_megabyte[:context_length]
    base = compressor.code_length_bits(context)
    single = [b"e", b" ", b"\x00", b"\xff"]
    crossing = [b"ab", b"the quick brown fox jumps over the lazy dog " * 2]
    for candidates in (single, crossing):
        fast = compressor.continuation_bits(context, candidates)
        slow = [compressor.code_length_bits(context + candidate) - base
                for candidate in candidates]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def test_single_byte_continuations_form_a_distribution(enwik8_megabyte: bytes) -> None:
    compressor = get_compressor("cm", chunk_size=64)
    bits = compressor.continuation_bits(enwik8_megabyte[:100], [bytes([b]) for b in range(256)])
    assert abs(np.exp2(-bits).sum() - 1.0) < 1e-9


@pytest.fixture(scope="module")
def small_payload(enwik8_megabyte: bytes) -> tuple[bytes, bytes]:
    data = enwik8_megabyte[:150]
    return data, get_compressor("cm", chunk_size=64).compress(data)


def test_bit_flips_are_detected(small_payload: tuple[bytes, bytes]) -> None:
    """Damage anywhere (header, chunk table, coded words) raises a ContainerError; never
    wrong bytes."""
    data, payload = small_payload
    compressor = get_compressor("cm", chunk_size=64)
    rng = np.random.default_rng(0)
    positions = sorted(set(range(0, 50, 3)) | set(rng.integers(0, len(payload), 12).tolist()))
    for position in positions:
        damaged = bytearray(payload)
        damaged[position] ^= 1 << int(rng.integers(8))
        with pytest.raises(ContainerError):
            compressor.decompress(bytes(damaged))


def test_truncation_is_detected(small_payload: tuple[bytes, bytes]) -> None:
    data, payload = small_payload
    compressor = get_compressor("cm", chunk_size=64)
    for length in (0, 5, 20, 30, len(payload) // 2, len(payload) - 1):
        with pytest.raises(TruncatedError):
            compressor.decompress(payload[:length])
    with pytest.raises(ContainerError):
        compressor.decompress(payload + b"\0")


def test_declared_sizes_are_checked_before_work(small_payload: tuple[bytes, bytes]) -> None:
    data, payload = small_payload
    compressor = get_compressor("cm", chunk_size=64)
    with pytest.raises(SizeLimitError):
        compressor.decompress(payload, max_output_bytes=len(data) - 1)
    assert compressor.decompress(payload, max_output_bytes=len(data)) == data
    huge = bytearray(payload)
    struct.pack_into("<Q", huge, 12, 1 << 40)  # the declared length
    with pytest.raises(TruncatedError):  # 2**34 chunk counts cannot fit in the payload
        compressor.decompress(bytes(huge), max_output_bytes=1 << 41)


def test_cli_round_trip(tmp_path: Path, enwik8_megabyte: bytes) -> None:
    original = tmp_path / "text.bin"
    original.write_bytes(enwik8_megabyte[:2500])
    packed, restored = tmp_path / "text.gcz", tmp_path / "restored.bin"
    assert main(["compress", "-c", "cm", str(original), "-o", str(packed)]) == 0
    assert main(["decompress", str(packed), "-o", str(restored)]) == 0
    assert restored.read_bytes() == original.read_bytes()
    assert packed.stat().st_size < 0.6 * original.stat().st_size


def test_chunk_size_longer_than_the_model_context_is_a_usage_error() -> None:
    from gencomp import get_compressor
    from gencomp.errors import UsageError

    with pytest.raises(UsageError, match="context of 2048"):
        get_compressor("transformer", chunk_size=4096)


@pytest.mark.parametrize("name", ["cm", "transformer"])  # worker processes; threads
def test_workers_give_the_same_bytes(name: str, enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:1700]  # four chunks of 512 bytes (the last one short)
    one = get_compressor(name, chunk_size=512, batch_size=2)
    two = get_compressor(name, chunk_size=512, batch_size=2, workers=2)
    payload = one.compress(data)
    assert two.compress(data) == payload
    assert two.decompress(payload) == data
    assert "workers" not in two.params  # how coding runs is not a parameter of the bytes


def test_workers_need_a_registered_compressor() -> None:
    with pytest.raises(ValueError, match="registered"):
        PredictiveCompressor(ContextMixingPredictor(), name="unregistered", workers=2)


def test_cli_workers(tmp_path: Path, enwik8_megabyte: bytes, capsys: pytest.CaptureFixture
                     ) -> None:
    original = tmp_path / "text.bin"
    original.write_bytes(enwik8_megabyte[:1200])
    packed, restored = tmp_path / "text.gcz", tmp_path / "restored.bin"
    assert main(["compress", "-c", "cm", "--param", "chunk_size=512", "--param", "batch_size=1",
                 "--workers", "2", str(original), "-o", str(packed)]) == 0
    assert main(["decompress", "--workers", "2", str(packed), "-o", str(restored)]) == 0
    assert restored.read_bytes() == original.read_bytes()
    capsys.readouterr()
    for arguments in (["compress", "-c", "gzip", "--workers", "2"],
                      ["compress", "-c", "cm", "--workers", "0"]):
        refused = tmp_path / "refused.gcz"
        assert main([*arguments, str(original), "-o", str(refused)]) == 2
        assert not refused.exists()
        error = capsys.readouterr().err.strip()
        assert "--workers" in error and "\n" not in error
