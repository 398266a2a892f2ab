"""Model compressors in the benchmark: no header, no unchunked task, and the adjusted rate
that charges the model's parameters at 2 bytes each."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import gencomp.codecs.predictive  # noqa: F401  (registers "cm" and "transformer")
from gencomp.bench import (
    PAPER_BYTES,
    BenchSettings,
    assemble,
    choose_compressors,
    plan_tasks,
    run_plan,
)
from gencomp.compressor import get_compressor
from gencomp.datasets import DataLocations, load_chunks
from gencomp.errors import UsageError
from predictors.transformer import TransformerConfig, TransformerModel, save_checkpoint


def test_context_mixing_rates_are_its_per_chunk_code_lengths(tmp_path: Path,
                                                             data_dir: Path) -> None:
    settings = BenchSettings(choose_compressors("cm", {"cm": {"chunk_size": 512}}), ("text",),
                             6, chunk_size=512, task_chunks=4)
    plan = plan_tasks(settings, DataLocations(data_dir=data_dir))
    assert {task.mode for task in plan.tasks} == {"chunked"}  # no unchunked task
    [row] = assemble(run_plan(plan, tmp_path / "run"))
    chunks = load_chunks("text", DataLocations(data_dir=data_dir), 6, chunk_size=512)
    model = get_compressor("cm", chunk_size=512)
    by_hand = math.fsum(model.code_length_bits(chunk) for chunk in chunks)  # one at a time
    assert row["header_bits"] == 0.0
    assert row["chunked_rate"] == pytest.approx(100 * by_hand / (8 * 6 * 512), rel=1e-12)
    assert row["unchunked_rate"] is None
    assert row["num_parameters"] == 0 and row["adjusted_rate"] == row["chunked_rate"]


def test_adjusted_rate_adds_two_bytes_per_parameter(tmp_path: Path, data_dir: Path) -> None:
    torch.manual_seed(0)
    model = TransformerModel(TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2,
                                               context_length=64))
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(model, checkpoint, {"training": {"held_out_chunked_rate_percent": 42.5}})
    params = {"transformer": {"checkpoint": str(checkpoint), "chunk_size": 64}}
    settings = BenchSettings(choose_compressors("transformer", params), ("text",), 10,
                             chunk_size=64, task_chunks=4)
    [row] = assemble(run_plan(plan_tasks(settings, DataLocations(data_dir=data_dir)),
                              tmp_path / "run"))
    assert settings.compressors[0].params["device"] == "auto"  # the worker's GPU when it has one
    chunks = load_chunks("text", DataLocations(data_dir=data_dir), 10, chunk_size=64)
    compressor = get_compressor("transformer", checkpoint=str(checkpoint), chunk_size=64)
    bits = math.fsum(compressor.code_length_bits(chunk) for chunk in chunks)
    assert row["chunked_rate"] == pytest.approx(100 * bits / (8 * 640), rel=1e-9)
    parameters = model.num_parameters
    assert row["num_parameters"] == parameters == 11_664
    assert row["adjusted_rate"] == pytest.approx(100 * (bits / 8 + 2 * parameters) / 640)
    assert row["adjusted_rate_1gb"] == pytest.approx(
        row["chunked_rate"] + 100 * 2 * parameters / PAPER_BYTES)
    assert row["held_out_rate"] == 42.5  # from the checkpoint's training record


def test_the_shipped_transformer_reports_its_recorded_held_out_rate() -> None:
    import json

    from predictors.transformer import WEIGHTS_DIR, load_pretrained

    record = json.loads((WEIGHTS_DIR / "transformer_200k.json").read_text())
    recorded = record["training"]["held_out_chunked_rate_percent"]
    assert load_pretrained("200k").held_out_rate_percent == recorded
    assert recorded <= 30.9  # the paper's 200K figure, the bar the shipped model must meet


def test_a_model_must_code_the_benchmarks_chunk_size(data_dir: Path) -> None:
    settings = BenchSettings(choose_compressors("cm"), ("text",), 4, chunk_size=1024)
    with pytest.raises(UsageError, match="--param cm.chunk_size=1024"):
        plan_tasks(settings, DataLocations(data_dir=data_dir))
