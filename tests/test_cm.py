"""`cm`, the context-mixing compressor: exact round trips in both modes, payloads that are
the same on every run (and machine), whole-byte distributions that are exactly the ones
coding uses, independent chunks in the paper's mode, damaged payloads refused, and the
first cm model's files still decoded."""

from __future__ import annotations

import bz2
import lzma
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gencomp import get_compressor
from gencomp.codecs.predictive import ContextMixingCompressor, mix_companion, parse_payload
from gencomp.container import unpack
from gencomp.datasets import DataLocations, load_chunks
from gencomp.errors import ContainerError, ModelMismatchError, TruncatedError, UsageError
from predictors.cm import (
    SIGNALS_VERSION,
    SIGNALS_VERSIONS,
    ContextMixingPredictor,
    table_bits_for,
)
from predictors.cm_kernels import SQUASH, STRETCH

DATA = Path(__file__).parent / "data"


def synthetic_input() -> bytes:
    """Text and binary, generated the same way everywhere (numpy's PCG64 streams are
    fixed), so that its payload can be pinned."""
    text = b"".join(f"{i}: context mixing learns {i * i % 97} from {i % 7}.\n".encode()
                    for i in range(120))
    return text + np.random.default_rng(7).bytes(500) + text[:1000]


@pytest.fixture(scope="module")
def samples(data_dir: Path, enwik8_megabyte: bytes) -> dict[str, bytes]:
    canterbury = data_dir / "text" / "canterbury"
    return {
        "empty": b"",
        "one byte": b"\x7f",
        "random": np.random.default_rng(0).bytes(3000),
        "text": enwik8_megabyte[:20000],
        "spreadsheet": (canterbury / "kennedy.xls").read_bytes()[:20000],
        "fax image": (canterbury / "ptt5").read_bytes()[:20000],
    }


@pytest.mark.parametrize("chunk_size", [None, 2048])
@pytest.mark.parametrize("name", ["empty", "one byte", "random", "text", "spreadsheet",
                                  "fax image"])
def test_round_trips(samples: dict[str, bytes], name: str, chunk_size: int | None) -> None:
    compressor = get_compressor("cm", chunk_size=chunk_size)
    data = samples[name]
    payload = compressor.compress(data)
    assert compressor.decompress(payload) == data
    if name == "random":
        assert len(payload) < 1.01 * len(data) + 64
    elif len(data) > 1000:  # (the paper's chunks hold less to learn from)
        assert len(payload) < (0.35 if chunk_size is None else 0.5) * len(data)


def test_streaming_beats_xz_and_bzip2_on_text(enwik8_megabyte: bytes) -> None:
    data = enwik8_megabyte[:60000]
    cm = len(get_compressor("cm").compress(data))
    assert cm < 0.95 * min(len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
                           len(bz2.compress(data, 9)))


def synthetic_signals() -> bytes:
    """A 64-pixel-wide image (a gradient with texture) and a decaying tone in noise, as
    bytes, made the same way everywhere."""
    generator = np.random.default_rng(11)
    rows, columns = np.mgrid[0:24, 0:64]
    image = (2 * rows + columns + generator.integers(-3, 4, rows.shape)).clip(0, 255)
    time = np.arange(1500)
    tone = 128 + 60 * np.sin(time / 7.0) * np.exp(-time / 900) + generator.normal(0, 2, 1500)
    return image.astype(np.uint8).tobytes() + tone.round().clip(0, 255).astype(np.uint8).tobytes()


@pytest.mark.parametrize(("signals", "pinned_name", "data"), [
    (0, "cm_algorithm2.payload", synthetic_input()),
    (1, "cm_algorithm2_signals.payload", synthetic_signals()),
    (2, "cm_algorithm2_signals2.payload", synthetic_signals()),
    (3, "cm_algorithm2_signals3.payload", synthetic_signals()),
], ids=["text-only", "numeric models 1", "numeric models 2", "numeric models 3"])
def test_payloads_are_pinned(signals: int, pinned_name: str, data: bytes) -> None:
    """The same coded bytes on every run and machine: integers only. The pinned payloads
    (version 2 of the framing) were made by these models; if the arithmetic changes,
    ALGORITHM_VERSION (or the numeric models' version) must change with it. Payloads of
    the text-only model and of every version of the numeric models decode with the
    default cm, which has the newest."""
    pinned = (DATA / pinned_name).read_bytes()
    compressor = get_compressor("cm", signals=False)  # the text-only model streams
    if signals:
        compressor = ContextMixingCompressor(2048)
        compressor.predictor = compressor._predictor(2048, signals)  # maybe an earlier one
    assert coded(compressor.compress(data)) == coded(pinned)
    assert get_compressor("cm").decompress(pinned) == data
    if signals == SIGNALS_VERSION:
        assert coded(get_compressor("cm", chunk_size=2048).compress(data)) == coded(pinned)


def coded(payload: bytes) -> tuple[Any, ...]:
    """What a payload's framing version does not change: its header's fields but the
    version and the predictor's name, and the coded streams."""
    header, streams = parse_payload(payload, "cm", 1 << 20, 1)
    return (*header._replace(version=None, name=None, header_crc=None, crc=None),
            tuple(streams))


def test_transformer_cm_payloads_of_the_first_numeric_models_still_decode() -> None:
    """transformer-cm's companion is cm with the newest numeric models; a payload its
    first version made decodes with the default compressor, one of neither is refused."""
    data = synthetic_signals()[:600]
    current = get_compressor("transformer-cm", chunk_size=2048)
    older = current._with_companion(2048, mix_companion("cm-signals", 2048, signals=1))
    payload = older.compress(data)
    assert payload != current.compress(data)
    assert get_compressor("transformer-cm").decompress(payload) == data
    text_only = current._with_companion(2048, mix_companion("cm", 2048))
    with pytest.raises(ModelMismatchError):
        current.decompress(text_only.compress(data))


def test_numeric_models_beat_png_and_flac_on_real_patches_and_speech(data_dir: Path) -> None:
    """Issue 16: the paper's chunked protocol on real ImageNet patches and LibriSpeech,
    taken from the middle of each set (tuning used the first 300 chunks)."""
    locations = DataLocations(data_dir)
    cm = get_compressor("cm", chunk_size=2048)
    for name, codec, margin in (("image", "png", 5), ("audio", "flac", 3)):
        chunks = load_chunks(name, locations, 5060)[5000:]
        rates = {compressor.name: 100 * sum(len(compressor.compress(chunk)) for chunk in chunks)
                 / sum(map(len, chunks)) for compressor in (cm, get_compressor(codec))}
        assert rates["cm"] < rates[codec] - margin, rates
    # On text they cost little: 1.1 % on these chunks, most of it the record contexts that
    # version 2 reads at the row width (64 in a 2 KB chunk; 1.0 % with version 2 alone).
    text = load_chunks("text", locations, 30)
    text_only = get_compressor("cm", chunk_size=2048, signals=False)
    with_signals = sum(len(cm.compress(chunk)) for chunk in text)
    assert with_signals < 1.015 * sum(len(text_only.compress(chunk)) for chunk in text)


@pytest.mark.parametrize("signals", [0, *SIGNALS_VERSIONS])
def test_distributions_are_the_coded_probabilities(samples: dict[str, bytes],
                                                   signals: int) -> None:
    """The 256 byte probabilities the predictor gives before each byte (255 node
    evaluations) are exactly the products of the bit probabilities coding uses."""
    predictor = ContextMixingPredictor(table_bits_for(4096), signals=signals, width=64)
    samples = {**samples, "signals": synthetic_signals()}
    for name in ("text", "spreadsheet", "fax image", "signals"):
        data = samples[name][:1500]
        rows = predictor.sequence_distributions(data)
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert np.all(rows > 0)
        chosen = np.log2(rows[np.arange(len(data)), np.frombuffer(data, dtype=np.uint8)])
        np.testing.assert_allclose(chosen, -predictor.code_lengths(data), rtol=0, atol=1e-9)
        state, _ = predictor.start(2)
        primed = predictor.prime(state, np.frombuffer(data[:700], dtype=np.uint8)[None]
                                 .repeat(2, axis=0))
        assert np.array_equal(primed[0], rows[700]) and np.array_equal(primed[1], rows[700])


def test_chunked_mode_codes_each_chunk_alone(samples: dict[str, bytes]) -> None:
    """The paper's mode: every 2048-byte chunk is coded from a fresh model, so its stream
    and code length are those of the chunk compressed by itself."""
    data = samples["text"][:5000]
    compressor = get_compressor("cm", chunk_size=2048)
    _, streams = parse_payload(compressor.compress(data), "cm", len(data), 1)
    chunks = [data[start:start + 2048] for start in range(0, len(data), 2048)]
    alone = [parse_payload(compressor.compress(chunk), "cm", len(chunk), 1)[1][0]
             for chunk in chunks]
    assert streams == alone and len(streams) == 3
    assert get_compressor("cm").decompress(compressor.compress(data)) == data  # as it says
    assert compressor.code_length_bits(data) == pytest.approx(
        sum(compressor.code_length_bits(chunk) for chunk in chunks), rel=1e-12)
    streaming = get_compressor("cm").code_length_bits(data)
    assert streaming < 0.95 * compressor.code_length_bits(data)  # it learns across chunks


def test_code_length_is_the_payload_without_its_framing(samples: dict[str, bytes]) -> None:
    data = samples["text"][:6000]
    compressor = get_compressor("cm")
    payload = compressor.compress(data)
    header, [stream] = parse_payload(payload, "cm", len(data), 1)
    assert len(payload) - len(stream) == 23  # the framing of a 6 KB file
    ideal = compressor.code_length_bits(data) / 8
    assert ideal - 4 <= len(stream) <= ideal * 1.002 + 4  # 12-bit arithmetic, a last byte
    assert header.length == len(data) and header.chunk_size is None


@pytest.mark.parametrize("chunk_size", [None, 64])
@pytest.mark.parametrize("context_length", [0, 40, 64, 150])
def test_continuation_bits_equal_code_length_differences(samples: dict[str, bytes],
                                                         chunk_size: int | None,
                                                         context_length: int) -> None:
    compressor = get_compressor("cm", chunk_size=chunk_size)
    context = samples["text"][:context_length]
    base = compressor.code_length_bits(context)
    for candidates in ([b"e", b" ", b"\x00", b"\xff"], [b"ab", b"the quick brown fox " * 5]):
        fast = compressor.continuation_bits(context, candidates)
        slow = [compressor.code_length_bits(context + candidate) - base
                for candidate in candidates]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def test_damage_is_detected(samples: dict[str, bytes]) -> None:
    """A flipped bit anywhere (header, sizes, coded bytes), a cut or an extra byte raises
    a ContainerError: never wrong bytes."""
    data = samples["text"][:3000]
    compressor = get_compressor("cm", chunk_size=1024)
    payload = compressor.compress(data)
    rng = np.random.default_rng(0)
    positions = sorted(set(range(0, 40)) | set(rng.integers(0, len(payload), 40).tolist()))
    refused = 0
    for position in positions:
        damaged = bytearray(payload)
        damaged[position] ^= 1 << int(rng.integers(8))
        try:  # a flip in a stream's last bits may change nothing decoded
            assert compressor.decompress(bytes(damaged)) == data
        except ContainerError:
            refused += 1
    assert refused >= len(positions) - 2
    for length in (0, 3, 10, 20, len(payload) // 2, len(payload) - 1):
        with pytest.raises(ContainerError):
            compressor.decompress(payload[:length])
    with pytest.raises(TruncatedError):
        compressor.decompress(payload[:10])
    with pytest.raises(ContainerError):
        compressor.decompress(payload + b"\0")


def test_other_settings_are_refused(samples: dict[str, bytes]) -> None:
    payload = get_compressor("cm", chunk_size=2048).compress(samples["text"][:100])
    damaged = bytearray(payload)
    damaged[9] ^= 0xFF  # inside the fingerprint: another model's payload
    with pytest.raises(ModelMismatchError):
        get_compressor("cm").decompress(bytes(damaged))
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        get_compressor("cm", fingerprint="0123456789abcdef")


def test_first_models_files_still_decode() -> None:
    """Containers whose payloads the first cm model made (`predictors.cm_legacy`)."""
    text = b"".join(f"{i}: version 1 containers must still decode, byte for byte.\n".encode()
                    for i in range(60))
    assert unpack((DATA / "v1_cm.gcz").read_bytes()) == text
    text = b"".join(f"{i}: version 2 containers record only what decoding needs.\n".encode()
                    for i in range(60))
    assert unpack((DATA / "v2_cm.gcz").read_bytes()) == text


def test_workers_give_the_same_bytes(samples: dict[str, bytes]) -> None:
    data = samples["text"][:9000]
    one = get_compressor("cm", chunk_size=4096)
    two = get_compressor("cm", chunk_size=4096, workers=2)
    payload = one.compress(data)
    assert two.compress(data) == payload and two.decompress(payload) == data
    assert "workers" not in two.params


def test_learns_online() -> None:
    text = b"context mixing learns from the bytes it has already seen. "
    costs = ContextMixingPredictor(table_bits_for(1024)).code_lengths(text * 4)
    assert costs[-len(text):].sum() < 0.1 * costs[:len(text)].sum()


@pytest.mark.parametrize("signals", [0, SIGNALS_VERSION])
def test_a_frozen_model_reads_on_but_learns_nothing(signals: int) -> None:
    """After `freeze`, fed bytes still move the contexts (the distributions change with
    what is fed) but every learnt array stays as the prompt left it, bit for bit."""
    predictor = ContextMixingPredictor(table_bits_for(4096), signals=signals, width=16)
    prompt = np.frombuffer(b"a frozen model keeps what the prompt taught it. " * 8,
                           dtype=np.uint8)[None, :]
    state, _ = predictor.start(1)
    predictor.prime(state, prompt)
    predictor.freeze(state)
    tables, maps = state[0].tables.copy(), state[0].maps.copy()
    after_a = predictor.step(state, np.frombuffer(b"a", dtype=np.uint8))
    for byte in b"the prompt taught it":
        predictor.step(state, np.array([byte], dtype=np.uint8))
    after_it = predictor.step(state, np.frombuffer(b".", dtype=np.uint8))
    assert np.array_equal(state[0].tables, tables) and np.array_equal(state[0].maps, maps)
    assert not np.allclose(after_a, after_it)
    learning, _ = predictor.start(1)
    predictor.prime(learning, prompt)
    predictor.step(learning, np.frombuffer(b"a", dtype=np.uint8))
    assert not np.array_equal(learning[0].maps, maps)


def test_model_size_follows_the_chunk() -> None:
    small, stream = ContextMixingCompressor(2048), ContextMixingCompressor()
    assert small.predictor.memory_bytes < 2 << 20 < 128 << 20 < stream.predictor.memory_bytes
    assert stream.predictor.memory_bytes < 256 << 20
    assert small.predictor.fingerprint != stream.predictor.fingerprint


def test_fixed_point_logistic_tables() -> None:
    assert np.all(np.diff(SQUASH) >= 0) and SQUASH[0] >= 0 and SQUASH[-1] <= 4095
    probabilities = np.arange(1, 4095)
    roundtrip = SQUASH[STRETCH[probabilities] + 2047]
    # stretch is squash's inverse up to squash's step (at most 4 where it is steepest)
    assert np.all(np.abs(roundtrip - probabilities) <= 4)


@pytest.mark.parametrize("bad", [{"chunk_size": 0}, {"chunk_size": "4"}, {"workers": 0},
                                 {"order": 8}, {"table_bits": 3}])
def test_bad_settings_are_usage_errors(bad: dict) -> None:
    with pytest.raises(UsageError):
        get_compressor("cm", **bad)


def test_a_stream_decodes_in_pieces_and_its_history_counts_against_the_budget(
        enwik8_megabyte: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: a model's history grows with what it decodes (its match and record
    models look back anywhere), so the declared length is checked against the model
    memory budget before decoding; the output itself goes out a piece at a time."""
    data = enwik8_megabyte * 2 + enwik8_megabyte[:300_000]
    cm = get_compressor("cm")
    payload = cm.compress(data)
    pieces = list(cm.decompress_pieces(payload))
    assert b"".join(pieces) == data and len(pieces) == 3
    tables = cm.predictor.memory_bytes
    monkeypatch.setenv("GENCOMP_MAX_MODEL_MEMORY", str(tables + len(data) - 1))
    with pytest.raises(ContainerError, match="of history"):
        next(cm.decompress_pieces(payload))
    monkeypatch.setenv("GENCOMP_MAX_MODEL_MEMORY", str(tables + len(data)))
    assert cm.decompress(payload) == data
