"""Model compressors that range-code a predictor's distributions: exact round trips by
construction, chunked and streaming (windows that carry context), refused foreign or
damaged payloads, code lengths that agree with each other, and version-1 payloads still
read. The predictors: the first cm model (`predictors.cm_legacy`, batched) and small
real Transformers, on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gencomp import get_compressor
from gencomp.cli import main
from gencomp.codecs.predictive import Mixture, PredictiveCompressor, parse_payload
from gencomp.container import pack, read_header, unpack
from gencomp.datasets import DataLocations, load_chunks
from gencomp.errors import (
    ContainerError,
    ModelMismatchError,
    SizeLimitError,
    TruncatedError,
    UsageError,
)
from predictors.base import Predictor, State
from predictors.cm import ContextMixingPredictor, table_bits_for
from predictors.cm_legacy import LegacyContextMixingPredictor
from predictors.transformer import (
    TransformerConfig,
    TransformerModel,
    TransformerPredictor,
    save_checkpoint,
)

DATA = Path(__file__).parent / "data"
#: A Transformer that holds 24 bytes: windows after the first code `stride` bytes.
SMALL = TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2, context_length=24)


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

    @property
    def context_length(self) -> int | None:
        return self.inner.context_length

    def start(self, batch_size: int) -> tuple[State, np.ndarray]:
        state, probabilities = self.inner.start(batch_size)
        self.outputs.append(probabilities.copy())
        return state, probabilities

    def step(self, state: State, symbols: np.ndarray) -> np.ndarray:
        probabilities = self.inner.step(state, symbols)
        self.outputs.append(probabilities.copy())
        return probabilities


def legacy(chunk_size: int | None = 64, batch_size: int = 64) -> PredictiveCompressor:
    return PredictiveCompressor(LegacyContextMixingPredictor(), chunk_size, batch_size)


def small_transformer(engine: str) -> TransformerPredictor:
    torch.manual_seed(0)
    return TransformerPredictor(TransformerModel(SMALL), engine=engine)


@pytest.fixture(scope="module")
def modality_chunks(data_dir: Path) -> dict[str, bytes]:
    """768 bytes of each data set, preprocessed as the paper does."""
    locations = DataLocations(data_dir=data_dir)
    samples = {name: b"".join(load_chunks(name, locations, 1))[:768]
               for name in ("text", "image", "audio")}
    samples["random"] = np.random.default_rng(0).bytes(768)
    return samples


@pytest.mark.parametrize("modality", ["text", "image", "audio", "random"])
def test_round_trip_real_data(modality_chunks: dict[str, bytes], modality: str) -> None:
    compressor = legacy(chunk_size=256)
    data = modality_chunks[modality]
    payload = compressor.compress(data)
    assert compressor.decompress(payload) == data
    if modality != "random":
        assert len(payload) < 0.85 * len(data)
    else:
        assert len(payload) < 1.03 * len(data) + 64


def test_decoder_sees_the_encoders_probabilities(enwik8_megabyte: bytes) -> None:
    """The one computation: the decoder's `start`/`step` outputs equal the encoder's bit
    for bit. Several chunks decoded as one batch, a short last one."""
    data = enwik8_megabyte[:2 * 512 + 100]
    recorder = RecordingPredictor(LegacyContextMixingPredictor())
    compressor = PredictiveCompressor(recorder, chunk_size=512)
    payload = compressor.compress(data)
    encoder_outputs, recorder.outputs = recorder.outputs, []
    assert compressor.decompress(payload) == data
    assert len(recorder.outputs) == len(encoder_outputs) == 512
    assert all(np.array_equal(decoded, encoded)
               for decoded, encoded in zip(recorder.outputs, encoder_outputs, strict=True))
    assert encoder_outputs[0].shape == (3, 256)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 5 * 64 + 17])
def test_lengths_and_groups(enwik8_megabyte: bytes, length: int) -> None:
    """Empty, one byte, chunk boundaries, and more chunks than one group holds."""
    compressor = legacy(chunk_size=64, batch_size=2)
    data = enwik8_megabyte[1000:1000 + length]
    assert compressor.decompress(compressor.compress(data)) == data


def test_other_model_is_refused(enwik8_megabyte: bytes) -> None:
    payload = legacy().compress(enwik8_megabyte[:200])
    other = PredictiveCompressor(LegacyContextMixingPredictor(order=3), chunk_size=64)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        other.decompress(payload)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        PredictiveCompressor(LegacyContextMixingPredictor(), fingerprint="0123456789abcdef")


def test_code_length_is_the_ideal_length_of_the_payload(enwik8_megabyte: bytes) -> None:
    compressor = legacy(chunk_size=128)
    data = enwik8_megabyte[:3 * 128 + 50]
    ideal = compressor.code_length_bits(data)
    header, streams = parse_payload(compressor.compress(data), "cm", len(data), 4)
    actual = 8 * sum(len(stream) for stream in streams)
    assert ideal <= actual <= ideal + 4 * 32  # each chunk's stream ends on a whole word
    assert header.chunk_size == 128 and header.stride is None
    assert compressor.code_length_bits(b"") == 0.0


def test_framing_is_compact(enwik8_megabyte: bytes) -> None:
    """The framing of a 6 KB file: 23 bytes, whatever the model's name."""
    predictor = small_transformer("torch")
    payload = PredictiveCompressor(predictor, chunk_size=None).compress(enwik8_megabyte[:6000])
    _, [stream] = parse_payload(payload, "transformer", 6000, 4)
    assert len(payload) - len(stream) == 23


@pytest.mark.parametrize("context_length", [0, 40, 63, 64, 150])
def test_continuation_bits_equal_code_length_differences(enwik8_megabyte: bytes,
                                                         context_length: int) -> None:
    compressor = legacy()
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
    bits = legacy().continuation_bits(enwik8_megabyte[:100], [bytes([b]) for b in range(256)])
    assert abs(np.exp2(-bits).sum() - 1.0) < 1e-9


# --- streaming: windows that carry context -----------------------------------------------


def test_windows_cover_every_byte_once_after_context() -> None:
    compressor = PredictiveCompressor(small_transformer("torch"), chunk_size=None, stride=8)
    windows = compressor._windows(100, 8)
    assert windows[0] == (0, 0, 24)
    coded = [position for _, first, end in windows for position in range(first, end)]
    assert coded == list(range(100))
    assert all(first - start == 16 and end - start <= 24 for start, first, end in windows[1:])
    assert compressor._windows(24, 8) == [(0, 0, 24)]  # what fits the context is one window


@pytest.mark.parametrize("engine", ["kernels", "torch"])
@pytest.mark.parametrize("chunk_size", [None, 40])
def test_streaming_round_trips_and_agrees_with_itself(enwik8_megabyte: bytes, engine: str,
                                                      chunk_size: int | None) -> None:
    """Windows of 24 bytes that code 8 each after 16 of context: the decoder sees the
    encoder's probabilities, the payload is the ideal length, and continuations are the
    code length's differences (around window and chunk boundaries)."""
    recorder = RecordingPredictor(small_transformer(engine))
    compressor = PredictiveCompressor(recorder, chunk_size=chunk_size, stride=8)
    data = enwik8_megabyte[:90]
    payload = compressor.compress(data)
    encoder_outputs, recorder.outputs = recorder.outputs, []
    assert compressor.decompress(payload) == data
    if engine == "torch":  # the kernels engine scores windows whole when encoding
        assert all(np.array_equal(decoded, encoded) for decoded, encoded
                   in zip(recorder.outputs, encoder_outputs, strict=True))
    header, streams = parse_payload(payload, "transformer", len(data), 4)
    assert header.stride == 8 and header.group_size == 1
    ideal = compressor.code_length_bits(data)
    assert ideal <= 8 * sum(len(stream) for stream in streams) <= ideal + 32 * len(streams)
    for context_length in (0, 23, 24, 31, 32, 45):
        context = data[:context_length]
        base = compressor.code_length_bits(context)
        candidates = [b"e", b"\x00"] if context_length % 2 else [b"e", b"the quick brown fox"]
        slow = [compressor.code_length_bits(context + candidate) - base
                for candidate in candidates]
        np.testing.assert_allclose(compressor.continuation_bits(context, candidates), slow,
                                   rtol=0, atol=1e-9)


def test_streaming_gives_more_context(enwik8_megabyte: bytes) -> None:
    """What a window carries is context: with stride 8 every coded byte after the first
    window sees 16 bytes before it, so the code length differs from independent chunks
    of the context's size."""
    predictor = small_transformer("kernels")
    data = enwik8_megabyte[:200]
    streaming = PredictiveCompressor(predictor, chunk_size=None, stride=8)
    chunked = PredictiveCompressor(predictor, chunk_size=24)
    assert streaming.code_length_bits(data) != chunked.code_length_bits(data)
    assert streaming.code_length_bits(data[:24]) == chunked.code_length_bits(data[:24])


@pytest.mark.parametrize("engine", ["kernels", "torch"])
def test_streaming_mixed_with_cm(enwik8_megabyte: bytes, engine: str) -> None:
    """Windows mixed with an online model of the whole chunk: exact round trips, the
    decoder's distributions the encoder's, the ideal length the payload's, continuations
    the code length's differences; a payload decodes only with the same mixture."""
    recorder = RecordingPredictor(ContextMixingPredictor(table_bits_for(1024)))
    compressor = PredictiveCompressor(small_transformer(engine), chunk_size=None, stride=8,
                                      mix="cm", companion=recorder)
    data = enwik8_megabyte[:90]
    payload = compressor.compress(data)
    encoder_outputs, recorder.outputs = recorder.outputs, []
    assert compressor.decompress(payload) == data
    assert len(recorder.outputs) == len(encoder_outputs) == len(data)
    assert all(np.array_equal(decoded, encoded)
               for decoded, encoded in zip(recorder.outputs, encoder_outputs, strict=True))
    _, [stream] = parse_payload(payload, "transformer", len(data), 4)
    ideal = compressor.code_length_bits(data)
    assert ideal <= 8 * len(stream) <= ideal + 32
    alone = PredictiveCompressor(small_transformer(engine), chunk_size=None, stride=8)
    with pytest.raises(ModelMismatchError):
        alone.decompress(payload)
    for context_length in (0, 23, 24, 45):
        context = data[:context_length]
        base = compressor.code_length_bits(context)
        for candidates in ([b"e", b"\x00"], [b"e", b"the quick"]):
            slow = [compressor.code_length_bits(context + candidate) - base
                    for candidate in candidates]
            np.testing.assert_allclose(compressor.continuation_bits(context, candidates),
                                       slow, rtol=0, atol=1e-9)


def test_mixture_follows_the_better_model() -> None:
    mixture = Mixture()
    for _ in range(20):
        mixture.learn(0.5, 0.01)
    assert 0.9 < mixture.weight < 1.0  # the share keeps the other in play
    row = mixture.mix(np.full(256, 1 / 256), np.full(256, 1 / 256))
    assert np.allclose(row.sum(), 1.0)


def test_payloads_say_how_they_were_cut(enwik8_megabyte: bytes) -> None:
    """A container need not record chunk size, stride or group: a compressor built with
    other ones (the defaults) decodes the payload as the payload says, groups included
    (the torch engine's rounding depends on them)."""
    data = enwik8_megabyte[:100]
    chunked = PredictiveCompressor(small_transformer("torch"), chunk_size=24, batch_size=2)
    streaming = PredictiveCompressor(small_transformer("torch"), chunk_size=None, stride=8)
    default = PredictiveCompressor(small_transformer("torch"), chunk_size=None)
    for compressor in (chunked, streaming):
        assert default.decompress(compressor.compress(data)) == data


def test_stride_must_fit_the_context() -> None:
    with pytest.raises(ValueError, match="stride"):
        PredictiveCompressor(small_transformer("torch"), chunk_size=None, stride=25)


# --- damage, limits, old payloads -----------------------------------------------------------


@pytest.fixture(scope="module")
def small_payload(enwik8_megabyte: bytes) -> tuple[bytes, bytes]:
    data = enwik8_megabyte[:150]
    return data, legacy().compress(data)


def test_bit_flips_are_detected(small_payload: tuple[bytes, bytes]) -> None:
    """Damage anywhere (header, stream sizes, coded words) raises a ContainerError, never
    gives wrong bytes. (A flip in the slack bits of a stream's last word changes nothing
    decoded: the original comes back.)"""
    data, payload = small_payload
    rng = np.random.default_rng(0)
    positions = sorted(set(range(0, 40, 2)) | set(rng.integers(0, len(payload), 12).tolist()))
    refused = 0
    for position in positions:
        damaged = bytearray(payload)
        damaged[position] ^= 1 << int(rng.integers(8))
        try:
            assert legacy().decompress(bytes(damaged)) == data
        except ContainerError:
            refused += 1
    assert refused >= len(positions) - 2


def test_truncation_is_detected(small_payload: tuple[bytes, bytes]) -> None:
    _, payload = small_payload
    for length in (0, 3, 5, 20, 30, len(payload) - 4, len(payload) - 1):
        with pytest.raises(TruncatedError):
            legacy().decompress(payload[:length])
    for extra in (b"\0", bytes(4)):
        with pytest.raises(ContainerError):
            legacy().decompress(payload + extra)


def test_declared_sizes_are_checked_before_work(small_payload: tuple[bytes, bytes]) -> None:
    data, payload = small_payload
    with pytest.raises(SizeLimitError):
        legacy().decompress(payload, max_output_bytes=len(data) - 1)
    assert legacy().decompress(payload, max_output_bytes=len(data)) == data
    huge = payload[:4] + b"\x80\x80\x80\x80\x80\x01" + payload[6:]  # the length: 2**35 …
    with pytest.raises(ContainerError):  # … so many chunks cannot fit in the payload
        legacy().decompress(huge, max_output_bytes=1 << 41)


def test_version_1_payloads_still_decode() -> None:
    """The payload of a container that gencomp wrote before payload version 2."""
    _, payload = read_header((DATA / "v1_cm.gcz").read_bytes())
    assert payload[3] == 1
    text = b"".join(f"{i}: version 1 containers must still decode, byte for byte.\n".encode()
                    for i in range(60))
    assert legacy(chunk_size=1024).decompress(payload) == text
    with pytest.raises(ModelMismatchError):
        PredictiveCompressor(LegacyContextMixingPredictor(order=3)).decompress(payload)
    for length in (10, 30, len(payload) - 1):
        with pytest.raises(TruncatedError):
            legacy().decompress(payload[:length])
    damaged = bytearray(payload)
    damaged[-3] ^= 0x10
    with pytest.raises(ContainerError):
        legacy().decompress(bytes(damaged))


# --- the registered Transformer ------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    save_checkpoint(TransformerModel(SMALL), path)
    return str(path)


@pytest.mark.parametrize("engine", ["kernels", "torch"])  # threads; worker processes
def test_workers_give_the_same_bytes(checkpoint: str, engine: str,
                                     enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:100]  # five chunks of 24 bytes (the last one short)
    settings = {"checkpoint": checkpoint, "engine": engine, "chunk_size": 24, "batch_size": 2}
    one = get_compressor("transformer", **settings)
    two = get_compressor("transformer", **settings, workers=2)
    payload = one.compress(data)
    assert two.compress(data) == payload
    assert two.decompress(payload) == data
    assert "workers" not in two.params  # how coding runs is not a parameter of the bytes


def test_transformer_streams_by_default(checkpoint: str, enwik8_megabyte: bytes) -> None:
    compressor = get_compressor("transformer", checkpoint=checkpoint)
    assert compressor.chunk_size is None and compressor.stride == 12
    online = get_compressor("transformer", checkpoint=checkpoint, online=True)
    assert online.chunk_size is None and online.predictor is online.online
    rebuilt = get_compressor("transformer", **compressor.params)
    data = enwik8_megabyte[:70]
    assert rebuilt.params == compressor.params
    assert rebuilt.decompress(compressor.compress(data)) == data
    with pytest.raises(UsageError, match="stride"):
        get_compressor("transformer", checkpoint=checkpoint, stride=0)
    with pytest.raises(UsageError, match="mix"):
        get_compressor("transformer", checkpoint=checkpoint, mix="gzip")
    mixed = get_compressor("transformer", checkpoint=checkpoint, mix="cm")
    assert mixed.params["mix"] == "cm"
    assert get_compressor("transformer", **mixed.params).decompress(mixed.compress(data)) == data


def test_workers_need_a_registered_compressor() -> None:
    with pytest.raises(ValueError, match="registered"):
        PredictiveCompressor(LegacyContextMixingPredictor(), name="unregistered", workers=2)


def test_cli_round_trip(tmp_path: Path, enwik8_megabyte: bytes) -> None:
    original = tmp_path / "text.bin"
    original.write_bytes(enwik8_megabyte[:2500])
    packed, restored = tmp_path / "text.gcz", tmp_path / "restored.bin"
    assert main(["compress", "-c", "cm", str(original), "-o", str(packed)]) == 0
    assert main(["decompress", str(packed), "-o", str(restored)]) == 0
    assert restored.read_bytes() == original.read_bytes()
    assert packed.stat().st_size < 0.5 * original.stat().st_size


def test_cli_workers(tmp_path: Path, enwik8_megabyte: bytes, capsys: pytest.CaptureFixture
                     ) -> None:
    original = tmp_path / "text.bin"
    original.write_bytes(enwik8_megabyte[:1200])
    packed, restored = tmp_path / "text.gcz", tmp_path / "restored.bin"
    assert main(["compress", "-c", "cm", "--param", "chunk_size=512", "--workers", "2",
                 str(original), "-o", str(packed)]) == 0
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


@pytest.mark.parametrize("chunk_size", [24, 20, None])
def test_chunks_mixed_with_cm_and_its_numeric_models(modality_chunks: dict[str, bytes],
                                                     chunk_size: int | None) -> None:
    """mix=cm-signals mixes in every mode, the paper's chunks included (a window each):
    exact round trips, also by a decoder built for another chunk size (containers do not
    record it), the ideal length the payload's, continuations the code length's
    differences."""
    compressor = PredictiveCompressor(small_transformer("kernels"), chunk_size=chunk_size,
                                      stride=8, mix="cm-signals")
    assert compressor.companion is not None and compressor.stride == 8
    other_size = PredictiveCompressor(small_transformer("kernels"), chunk_size=12, stride=8,
                                      mix="cm-signals")
    for name in ("image", "audio", "text"):
        data = modality_chunks[name][:70]
        payload = compressor.compress(data)
        assert compressor.decompress(payload) == data
        assert other_size.decompress(payload) == data
        streams = parse_payload(payload, "transformer", len(data), 4)[1]
        ideal = compressor.code_length_bits(data)
        assert ideal <= 8 * sum(map(len, streams)) <= ideal + 32 * len(streams)
        for context_length in (0, 19, 24, 45):
            context = data[:context_length]
            base = compressor.code_length_bits(context)
            candidates = [b"e", b"\x80", b"ab"]
            slow = [compressor.code_length_bits(context + candidate) - base
                    for candidate in candidates]
            np.testing.assert_allclose(compressor.continuation_bits(context, candidates),
                                       slow, rtol=0, atol=1e-9)


def test_transformer_cm_is_good_at_text_images_and_audio(data_dir: Path) -> None:
    """Issue 16: the shipped text-trained Transformer mixed with cm's numeric models, on
    the paper's chunks (a few of each set: text from the held-out tail of enwik8, images
    and speech from the middle): near the Transformer on text, far below PNG and FLAC on
    images and speech; containers round-trip."""
    locations = DataLocations(data_dir=data_dir)
    mixed = get_compressor("transformer-cm", chunk_size=2048)
    rates = {}
    for name, rival, first in (("text", "transformer", 1900), ("image", "png", 3000),
                               ("audio", "flac", 3000)):
        chunks = load_chunks(name, locations, first + 3)[first:]
        data = b"".join(chunks)
        rival_compressor = get_compressor(rival, **({"chunk_size": 2048} if rival ==
                                                    "transformer" else {}))
        rates[name] = (mixed.code_length_bits(data) / 8 / len(data),
                       sum(len(rival_compressor.compress(chunk)) for chunk in chunks)
                       / len(data))
        assert unpack(pack(mixed, data)) == data
    assert rates["text"][0] < rates["text"][1] + 0.01, rates
    assert rates["image"][0] < rates["image"][1] - 0.05, rates
    assert rates["audio"][0] < rates["audio"][1] - 0.03, rates


def test_samplers_draw_from_the_mixture_that_codes(modality_chunks: dict[str, bytes]) -> None:
    """A compressor that mixes two models offers their mixture to the exact sampler
    (`next_byte_model`): stepped through a chunk, its distributions give each byte the
    probability the code length gives it."""
    compressor = PredictiveCompressor(small_transformer("kernels"), chunk_size=24, stride=8,
                                      mix="cm-signals")
    model = compressor.next_byte_model
    assert model is not compressor.predictor
    data = modality_chunks["audio"][:24]
    state, probabilities = model.start(1)
    bits = 0.0
    for position, symbol in enumerate(data):
        bits -= np.log2(probabilities[0, symbol])
        if position + 1 < len(data):
            probabilities = model.step(state, np.array([symbol], dtype=np.uint8))
    assert bits == pytest.approx(compressor.code_length_bits(data), rel=1e-12)
    plain = PredictiveCompressor(small_transformer("kernels"), chunk_size=24)
    assert plain.next_byte_model is plain.predictor
