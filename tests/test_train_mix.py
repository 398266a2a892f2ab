"""Training on a mix of data sets: the data comes from the same sources compress-bench reads,
a fixed part is held out, and windows keep each byte's position in its chunk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from gencomp.cli import main
from gencomp.constants import CHUNK_SIZE
from gencomp.errors import UsageError
from predictors.train import (
    HELD_OUT_EVERY,
    TrainOptions,
    load_training_data,
    parse_mix,
    sample_chunk_windows,
)
from predictors.transformer import BEGIN_TOKEN, TransformerModel, load_checkpoint, preset


def test_mix_weights_parse_and_bad_ones_are_refused() -> None:
    assert parse_mix("text=2, image") == {"text": 2.0, "image": 1.0}
    assert parse_mix("") == {}
    for bad in ("random=1", "video", "text=-1", "text=x", "audio=inf"):
        with pytest.raises(UsageError):
            parse_mix(bad)


def test_windows_lie_inside_one_chunk_at_their_own_position() -> None:
    chunks = np.arange(3 * 64, dtype=np.int64).reshape(3, 64).astype(np.uint8)
    inputs, targets, offsets = sample_chunk_windows(chunks, 50, 16,
                                                    torch.Generator().manual_seed(0))
    assert set(offsets.tolist()) > {0}
    for row in range(50):
        offset = int(offsets[row])
        matches = [index for index in range(3)
                   if chunks[index, offset:offset + 16].tolist() == targets[row].tolist()]
        assert len(matches) == 1
        expected_first = BEGIN_TOKEN if offset == 0 else int(chunks[matches[0], offset - 1])
        assert int(inputs[row, 0]) == expected_first
        assert inputs[row, 1:].tolist() == targets[row, :-1].tolist()


@pytest.fixture
def small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder laid out like ../shared/data: 5 images and 5 utterances, so exactly
    one of each is held out, and a short text."""
    rng = np.random.default_rng(0)
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "librispeech").mkdir()
    (tmp_path / "text").mkdir()
    for index in range(HELD_OUT_EVERY):
        pixels = rng.integers(0, 256, (32, 64 * (index + 1), 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(tmp_path / "imagenet" / f"{index}.png")
        samples = rng.integers(-20000, 20000, CHUNK_SIZE * (index + 1), dtype=np.int16)
        soundfile.write(tmp_path / "librispeech" / f"{index}.flac", samples, 16000)
    (tmp_path / "text" / "enwik8").write_bytes(rng.bytes(20 * CHUNK_SIZE))
    monkeypatch.setenv("GENCOMP_DATA", str(tmp_path))
    return tmp_path


def test_every_fifth_file_is_held_out_and_never_trained_on(small_data: Path) -> None:
    data = load_training_data(TrainOptions(mix="image,audio,text"))
    # Files 0-3 hold 1+2+3+4 = 10 patches / chunks; the held-out file 4 holds 5.
    assert data.train["image"].shape == (10, CHUNK_SIZE)
    assert data.train["audio"].shape == (10, CHUNK_SIZE)
    assert len(data.held_out["image"]) == len(data.held_out["audio"]) == 5 * CHUNK_SIZE
    held = {data.held_out["image"][start:start + CHUNK_SIZE].tobytes()
            for start in range(0, 5 * CHUNK_SIZE, CHUNK_SIZE)}
    assert not held & {row.tobytes() for row in data.train["image"]}
    assert len(data.held_out["text"]) == 2 * CHUNK_SIZE  # the file's last 10 %


def test_train_on_a_mix_from_a_checkpoint(small_data: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    args = ["--steps", "2", "--batch-size", "4", "--seq-len", "32", "--long-steps", "0",
            "--warmup-steps", "1", "--eval-interval", "1", "--threads", "1", "--device",
            "cpu", "--no-progress"]
    assert main(["train", "--mix", "text,image", "--out", str(first), *args]) == 0
    second = tmp_path / "second"
    assert main(["train", "--mix", "audio=2,image", "--init", str(first / "model.safetensors"),
                 "--lr", "1e-12", "--out", str(second), *args]) == 0
    options = json.loads((second / "summary.json").read_text())["options"]
    assert options["mix"] == "audio=2,image" and options["init"].endswith("model.safetensors")
    # With a vanishing learning rate the fine-tuned weights are the initial checkpoint's.
    started, tuned = (load_checkpoint(run / "model.safetensors")[0].state_dict()
                      for run in (first, second))
    assert all(torch.allclose(started[name], tuned[name], atol=1e-6) for name in started)
    fresh = TransformerModel(preset("200k")).state_dict()
    assert not all(torch.allclose(fresh[name], tuned[name], atol=1e-6) for name in fresh)
