"""The Transformer predictor: architecture, exact stepping, checkpoints, `gencomp train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import predictors.train
from gencomp.cli import main
from gencomp.errors import CheckpointError
from predictors.train import chunked_bits_per_byte
from predictors.transformer import (
    PRESETS,
    TransformerConfig,
    TransformerModel,
    TransformerPredictor,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from tests.conftest import configured_data_dir

TINY = TransformerConfig(embedding_dim=16, num_layers=2, num_heads=4, context_length=64)

ENWIK8 = configured_data_dir() / "text" / "enwik8_first_4154400_bytes"


def random_model(config: TransformerConfig = TINY, seed: int = 0) -> TransformerModel:
    """A model with weights large enough that its predictions depend on the context."""
    torch.manual_seed(seed)
    model = TransformerModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model.eval()


def random_sequences(count: int, length: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, length, dtype=np.uint8).tobytes() for _ in range(count)]


def test_paper_sizes_have_the_paper_parameter_counts() -> None:
    assert TransformerModel(PRESETS["200k"]).num_parameters == 231_936
    assert TransformerModel(PRESETS["800k"]).num_parameters == 856_832
    assert TransformerModel(PRESETS["3.2m"]).num_parameters == 3_286_272


@pytest.mark.parametrize("engine, tolerance", [("torch", 1e-4), ("kernels", 1e-4),
                                               ("kernels-f16", 4e-3)])
def test_incremental_steps_match_the_parallel_forward_pass(engine: str, tolerance: float
                                                          ) -> None:
    """To float tolerance; the half-float values of kernels-f16 carry 11 significant bits."""
    model = random_model()
    sequences = random_sequences(3, TINY.context_length)
    stepped = np.stack(TransformerPredictor(model, engine=engine).symbol_log2_probs(sequences))
    targets = torch.tensor(np.frombuffer(b"".join(sequences), np.uint8).reshape(3, -1)).long()
    inputs = torch.cat([torch.zeros_like(targets[:, :1]), targets[:, :-1]], dim=1)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(inputs).double(), dim=-1)
    parallel = (log_probs.gather(-1, targets[..., None])[..., 0] / np.log(2)).numpy()
    assert np.abs(stepped - parallel).max() < tolerance


@pytest.mark.parametrize("engine", ["torch", "kernels", "kernels-f16"])
def test_stepping_is_deterministic_and_the_decoder_sees_the_encoders_probabilities(
        engine: str) -> None:
    predictor = TransformerPredictor(random_model(), engine=engine)
    sequences = random_sequences(4, 40)
    encoded = predictor.symbol_log2_probs(sequences)
    again = predictor.symbol_log2_probs(sequences)
    assert all(np.array_equal(a, b) for a, b in zip(encoded, again, strict=True))

    # The decoder learns each byte only after coding it: start, then step on what it decoded.
    symbols = np.frombuffer(b"".join(sequences), np.uint8).reshape(4, -1)
    state, probabilities = predictor.start(4)
    for position in range(symbols.shape[1]):
        assert probabilities.dtype == np.float64 and probabilities.shape == (4, 256)
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
        decoded = np.log2(probabilities[np.arange(4), symbols[:, position]])
        assert np.array_equal(decoded, np.array([row[position] for row in encoded]))
        if position + 1 < symbols.shape[1]:
            probabilities = predictor.step(state, symbols[:, position])


@pytest.mark.parametrize("engine", ["torch", "kernels", "kernels-f16"])
@pytest.mark.parametrize("batch_size", [1, 5, 16])
def test_stepping_does_not_depend_on_the_thread_count(batch_size: int, engine: str) -> None:
    """The encoder and the decoder may start with different torch thread counts (small
    matrix products round differently with 1 and 2 threads; the predictor pins it)."""
    config = TransformerConfig(num_layers=2, context_length=128)
    predictor = TransformerPredictor(random_model(config), engine=engine)
    sequences = random_sequences(batch_size, 100)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = predictor.symbol_log2_probs(sequences)
        torch.set_num_threads(2)
        two_threads = predictor.symbol_log2_probs(sequences)
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(a, b) for a, b in zip(one_thread, two_threads, strict=True))


def test_predictions_depend_on_the_context() -> None:
    predictor = TransformerPredictor(random_model())
    first, second = predictor.symbol_log2_probs([b"abcdefgh", b"abcdefgX"])
    assert np.array_equal(first[:7], second[:7])
    assert first[7] != second[7]


def test_a_sequence_holds_at_most_the_context() -> None:
    predictor = TransformerPredictor(random_model())
    full = random_sequences(1, TINY.context_length)
    assert len(predictor.symbol_log2_probs(full)[0]) == TINY.context_length
    state, _ = predictor.start(1)
    predictor.prime(state, np.zeros((1, TINY.context_length - 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="at most"):
        predictor.step(state, np.zeros(1, dtype=np.uint8))


def test_exact_and_parallel_chunked_evaluation_agree_to_tolerance() -> None:
    model = random_model()
    data = np.frombuffer(b"".join(random_sequences(1, 300)), np.uint8)
    exact = chunked_bits_per_byte(model, data, exact=True)
    parallel = chunked_bits_per_byte(model, data, exact=False)
    assert abs(exact - parallel) < 1e-5 * exact


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = random_model()
    path = tmp_path / "tiny.safetensors"
    record = save_checkpoint(model, path, {"note": "test"})
    assert json.loads(path.with_suffix(".json").read_text())["weights_sha256"] == \
        record["weights_sha256"]
    original = TransformerPredictor(model)
    loaded = load_pretrained(checkpoint=str(path))
    assert loaded.fingerprint == original.fingerprint
    assert loaded.config == original.config and loaded.num_parameters == model.num_parameters
    sequences = random_sequences(2, 30)
    for a, b in zip(original.symbol_log2_probs(sequences), loaded.symbol_log2_probs(sequences),
                    strict=True):
        assert np.array_equal(a, b)
    assert TransformerPredictor(random_model(seed=5)).fingerprint != original.fingerprint


def rewrite_config(path: Path, **changes: object) -> None:
    config_path = path.with_suffix(".json")
    record = json.loads(config_path.read_text())
    for key, value in changes.items():
        if key in record["config"]:
            record["config"][key] = value
        else:
            record[key] = value
    config_path.write_text(json.dumps(record))


def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(random_model(), path)
    good_weights = path.read_bytes()

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")

    tampered = bytearray(good_weights)
    tampered[-5] ^= 0x01
    path.write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)

    corrupt = good_weights[:100]
    path.write_bytes(corrupt)
    rewrite_config(path, weights_sha256=hashlib.sha256(corrupt).hexdigest())
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)

    path.write_bytes(good_weights)
    rewrite_config(path, weights_sha256=hashlib.sha256(good_weights).hexdigest(),
                   embedding_dim=32)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)

    rewrite_config(path, embedding_dim=16, num_layers=3)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)

    rewrite_config(path, num_layers=2, widening_factor=1 << 20)  # checked before building
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)

    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="bad checkpoint config"):
        load_checkpoint(path)


def test_unknown_size_has_no_shipped_checkpoint() -> None:
    with pytest.raises(CheckpointError, match="no shipped"):
        load_pretrained("800k")


def test_shipped_200k_checkpoint_loads_and_predicts_text() -> None:
    predictor = load_pretrained("200k")
    assert predictor.num_parameters == 231_936
    text = b"<page>\n    <title>The history of the United States of America</title>"
    bits = -predictor.symbol_log2_probs([text])[0].sum()
    assert bits / len(text) < 4.0


# --- gencomp train -------------------------------------------------------------------------


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    if ENWIK8.is_file():
        path.write_bytes(ENWIK8.read_bytes()[:6000])
    else:
        path.write_bytes(b"".join(random_sequences(1, 6000)))
    return path


def train_args(text_file: Path, out: Path, steps: int) -> list[str]:
    return ["train", "--data", str(text_file), "--out", str(out), "--steps", str(steps),
            "--batch-size", "2", "--seq-len", "32", "--lr", "0.002", "--long-steps", "1",
            "--warmup-steps", "1", "--eval-interval", "2", "--checkpoint-interval", "1",
            "--threads", "1", "--device", "cpu", "--no-progress"]


def test_train_writes_checkpoint_summary_curve_and_resumes(
    text_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    straight = tmp_path / "straight"
    assert main(train_args(text_file, straight, 5)) == 0
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["num_parameters"] == 231_936
    assert 0 < summary["held_out_bits_per_byte"] < 9
    assert summary["held_out_chunked_rate_percent"] == pytest.approx(
        100 * summary["held_out_bits_per_byte"] / 8)
    assert (straight / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Ctrl-C after step 3 leaves a complete checkpoint; --resume then finishes the same run.
    original_step = predictors.train.train_step

    def interrupted_step(run: predictors.train.TrainingRun, *args: object) -> float:
        if run.step == 3:
            raise KeyboardInterrupt
        return original_step(run, *args)

    monkeypatch.setattr(predictors.train, "train_step", interrupted_step)
    out = tmp_path / "run"
    assert main(train_args(text_file, out, 5)) == 130
    assert not (out / "summary.json").exists()
    assert load_checkpoint(out / "model.safetensors")[1]["training"]["step"] == 3
    monkeypatch.setattr(predictors.train, "train_step", original_step)

    capsys.readouterr()
    assert main(train_args(text_file, out, 5)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 5
    assert load_pretrained(checkpoint=str(out / "model.safetensors")).fingerprint == \
        load_pretrained(checkpoint=str(straight / "model.safetensors")).fingerprint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--data": "MISSING"}, "not found"),
        ({"--data": "DIR"}, "directory"),
        ({"--steps": "0"}, "--steps"),
        ({"--lr": "-1"}, "--lr"),
        ({"--lr": "nan"}, "--lr"),
        ({"--seq-len": "4096"}, "context"),
        ({"--device": "tpu9"}, "device"),
        ({"--steps": "many"}, "steps"),
    ],
)
def test_train_bad_inputs_fail_with_one_line(text_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture,
                                             change: dict[str, str], message: str) -> None:
    args = train_args(text_file, tmp_path / "run", 2)
    for option, value in change.items():
        value = {"MISSING": str(tmp_path / "nope.txt"), "DIR": str(tmp_path)}.get(value, value)
        args[args.index(option) + 1] = value
    assert main(args) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and message in error


def test_train_resume_without_a_run_fails_with_one_line(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--out", str(tmp_path / "empty"), "--resume", "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# --- through the coder -----------------------------------------------------------------------


def test_real_chunks_round_trip_through_the_transformer_compressor(data_dir: Path) -> None:
    import gencomp.codecs.predictive  # noqa: F401  (registers "transformer")
    from gencomp.compressor import get_compressor
    from gencomp.datasets import DataLocations, load_chunks

    locations = DataLocations(data_dir=data_dir)
    pieces = {name: b"".join(load_chunks(name, locations, 1))[:size]
              for name, size in (("text", 1024), ("image", 1024), ("audio", 700))}
    data = b"".join(pieces.values())
    # Six 512-byte chunks (the last one short), stepped in groups of four and two.
    compressor = get_compressor("transformer", chunk_size=512, batch_size=4)
    payload = compressor.compress(data)
    assert compressor.decompress(payload) == data
    # A text-trained model: text compresses, 8-bit audio (not in its training data) expands.
    assert compressor.code_length_bits(pieces["text"]) < 0.8 * 8 * len(pieces["text"])
