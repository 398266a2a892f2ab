"""The Transformer's online output layer (`predictors.online_head`): the encoder's
window-at-once rows equal the decoder's steps bit for bit, its windows are the
compressor's, it learns what a file repeats, and its payloads and the windowed ones decode
whichever way the compressor was built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gencomp import get_compressor
from gencomp.codecs.predictive import PredictiveCompressor, parse_payload
from gencomp.container import pack, read_header, unpack
from gencomp.errors import ContainerError, UsageError
from predictors.online_head import HEAD_LEARNING_RATE, OnlineHeadTransformer
from predictors.train import HELD_OUT_FRACTION
from predictors.transformer import (
    TransformerConfig,
    TransformerModel,
    TransformerPredictor,
    load_pretrained,
    save_checkpoint,
)

#: Holds 24 bytes, so that a few hundred bytes cross many windows.
SMALL = TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2, context_length=24)


def small_transformer() -> TransformerPredictor:
    torch.manual_seed(0)
    return TransformerPredictor(TransformerModel(SMALL), engine="kernels")


def stepped(predictor: OnlineHeadTransformer, data: bytes) -> np.ndarray:
    state, probabilities = predictor.start(1)
    rows = [probabilities[0]]
    for symbol in np.frombuffer(data[:-1], dtype=np.uint8):
        rows.append(predictor.step(state, np.array([symbol]))[0])
    return np.stack(rows)


@pytest.mark.parametrize("stride", [1, 7, 12, 24])
def test_encoder_rows_equal_decoder_steps(enwik8_megabyte: bytes, stride: int) -> None:
    """Rate ×50 so that the head moves a lot: any difference in its updates would show."""
    predictor = OnlineHeadTransformer(small_transformer(), stride, 50 * HEAD_LEARNING_RATE)
    data = enwik8_megabyte[:300]
    rows = predictor.sequence_distributions(data)
    assert rows.shape == (300, 256)
    assert np.array_equal(rows, stepped(predictor, data))
    assert np.allclose(rows.sum(axis=1), 1.0)


def test_shipped_model_steps_as_it_scores(enwik8_megabyte: bytes) -> None:
    """The 200K model across two window restarts (2048, then every 1024 bytes)."""
    predictor = OnlineHeadTransformer(load_pretrained("200k"))
    data = enwik8_megabyte[5000:5000 + 3100]
    assert np.array_equal(predictor.sequence_distributions(data), stepped(predictor, data))


def test_without_learning_it_is_the_compressors_windows(enwik8_megabyte: bytes) -> None:
    """Rate 0: the windowed compressor's probabilities, byte for byte (same geometry)."""
    transformer = small_transformer()
    data = enwik8_megabyte[:200]
    frozen = OnlineHeadTransformer(transformer, 8, rate=0.0)
    windows = PredictiveCompressor(transformer, chunk_size=None, stride=8)
    symbols = np.frombuffer(data, dtype=np.uint8)
    ours = np.log2(frozen.sequence_distributions(data)[np.arange(200), symbols])
    theirs = np.concatenate(list(windows._coded_log2_probs([data])))
    assert np.array_equal(ours, theirs)


def test_learning_shortens_held_out_text(data_dir: Path) -> None:
    """On 12 KB of the held-out tail the online head codes shorter than the windows."""
    data = (data_dir / "text" / "enwik8_first_4154400_bytes").read_bytes()
    tail = data[len(data) - round(len(data) * HELD_OUT_FRACTION):][:12_000]
    online = get_compressor("transformer", online=True)
    windows = get_compressor("transformer")
    assert online.predictor is online.online and windows.stride == 1024
    assert online.code_length_bits(tail) < 0.98 * windows.code_length_bits(tail)


def test_freeze_stops_learning(enwik8_megabyte: bytes) -> None:
    predictor = OnlineHeadTransformer(small_transformer(), 8)
    state, _ = predictor.start(1)
    predictor.prime(state, np.frombuffer(enwik8_megabyte[:50], dtype=np.uint8)[None])
    head = state[0].head.copy()
    predictor.freeze(state)
    predictor.prime(state, np.frombuffer(enwik8_megabyte[50:100], dtype=np.uint8)[None])
    assert np.array_equal(state[0].head, head)
    assert not np.array_equal(head, predictor.transformer.kernel_weights.head)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("online") / "small.safetensors"
    torch.manual_seed(0)
    save_checkpoint(TransformerModel(SMALL), path)
    return str(path)


def test_payloads_decode_whichever_way_the_compressor_was_built(
        checkpoint: str, enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:150]
    online = get_compressor("transformer", checkpoint=checkpoint, online=True)
    windows = get_compressor("transformer", checkpoint=checkpoint)
    chunked = get_compressor("transformer", checkpoint=checkpoint, chunk_size=24)
    payloads = {name: compressor.compress(data) for name, compressor in
                (("online", online), ("windows", windows), ("chunked", chunked))}
    assert len(set(payloads.values())) == 3
    header, _ = parse_payload(payloads["online"], "transformer", 1 << 20, 4)
    assert header.stride is None and header.chunk_size is None
    for payload in payloads.values():
        for compressor in (online, windows, chunked):
            assert compressor.decompress(payload) == data
    for compressor in (online, windows):  # the container records neither
        assert unpack(pack(compressor, data)) == data
    with_workers = get_compressor("transformer", checkpoint=checkpoint, online=True,
                                  workers=2)
    assert with_workers.compress(data) == payloads["online"]
    assert with_workers.decompress(payloads["windows"]) == data


def test_online_needs_a_boolean(checkpoint: str) -> None:
    with pytest.raises(UsageError, match="online must be true or false"):
        get_compressor("transformer", checkpoint=checkpoint, online="yes")


def test_damage_gives_an_error_or_the_original(checkpoint: str, enwik8_megabyte: bytes) -> None:
    """A flipped bit in every byte of an online payload: refused (a ContainerError), or,
    in the slack bits of the coder's last word, the original; never other bytes."""
    data = enwik8_megabyte[:120]
    compressor = get_compressor("transformer", checkpoint=checkpoint, online=True)
    payload = compressor.compress(data)
    rng = np.random.default_rng(0)
    refused = 0
    for position in range(len(payload)):
        damaged = bytearray(payload)
        damaged[position] ^= 1 << int(rng.integers(8))
        try:
            assert compressor.decompress(bytes(damaged)) == data
        except ContainerError:
            refused += 1
    assert refused >= len(payload) - 4


def test_a_small_files_container_costs_tens_of_bytes(enwik8_megabyte: bytes) -> None:
    """What `gencomp compress -c transformer` writes for a 6 KB file: at most 64 bytes
    beyond the coded stream (container framing and payload framing together)."""
    compressor = get_compressor("transformer", online=True)
    container = pack(compressor, enwik8_megabyte[:6000])
    _, payload = read_header(container)
    _, [stream] = parse_payload(payload, "transformer", 6000, 4)
    assert len(container) - len(stream) <= 64
