"""Loading a checkpoint runs no code from it and trusts none of its sizes: a tampered,
pickled, or hostile checkpoint is refused with CheckpointError before anything big is
allocated."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gencomp.compressor import get_compressor
from gencomp.container import frame, pack, read_header, unpack
from gencomp.errors import CheckpointError, GencompError
from predictors.transformer import (
    WEIGHTS_DIR,
    TransformerConfig,
    TransformerModel,
    load_checkpoint,
    save_checkpoint,
)

SMALL = TransformerConfig(embedding_dim=16, num_layers=1, num_heads=2, context_length=64)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A valid small checkpoint (weights + JSON) in a temporary folder."""
    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_checkpoint(TransformerModel(SMALL), path)
    return path


def replace_weights(path: Path, weights: bytes, **config_changes: int) -> None:
    """Put other bytes (and config values) in a checkpoint and re-record their sha256,
    as someone who controls both files would."""
    path.write_bytes(weights)
    record_path = path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    record["config"].update(config_changes)
    record_path.write_text(json.dumps(record))


def test_a_valid_checkpoint_loads(checkpoint):
    model, record = load_checkpoint(checkpoint)
    assert model.num_parameters == record["num_parameters"]


def test_an_oversized_file_is_refused_before_reading(checkpoint):
    with open(checkpoint, "r+b") as handle:  # sparse: 2 GiB on paper, no disk used
        handle.truncate(2 << 30)
    with pytest.raises(CheckpointError, match="over 1024 MiB"):
        load_checkpoint(checkpoint)


def test_a_tampered_shipped_checkpoint_is_refused(tmp_path):
    shipped = sorted(WEIGHTS_DIR.glob("*.safetensors"))
    assert shipped, f"no shipped checkpoint in {WEIGHTS_DIR}"
    for original in shipped:
        copy = tmp_path / original.name
        shutil.copy(original, copy)
        shutil.copy(original.with_suffix(".json"), copy.with_suffix(".json"))
        load_checkpoint(copy)  # the untouched copy loads
        weights = bytearray(copy.read_bytes())
        weights[len(weights) // 2] ^= 0x01
        copy.write_bytes(bytes(weights))
        with pytest.raises(CheckpointError, match="sha256"):
            load_checkpoint(copy)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_is_refused_and_never_run(checkpoint, tmp_path, writer):
    marker = tmp_path / "code-ran"
    payload = {"embedding.weight": _RunsCodeWhenUnpickled(marker)}
    if writer == "pickle":
        weights = pickle.dumps(payload)
    else:
        torch.save(payload, tmp_path / "pickled.pt")
        weights = (tmp_path / "pickled.pt").read_bytes()
    replace_weights(checkpoint, weights)
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_a_safetensors_header_declaring_exabytes_is_refused(checkpoint):
    replace_weights(checkpoint, struct.pack("<Q", 1 << 62) + b"{}")
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("config_text", ["[" * 100_000, "not json", "[]", '{"format": 1}'],
                         ids=["nested-past-recursion-limit", "not-json", "a-list", "wrong-format"])
def test_a_malformed_config_is_refused(checkpoint, config_text):
    checkpoint.with_suffix(".json").write_text(config_text)
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint)


HUGE_CONFIGS = {
    "context": {"context_length": 1 << 31},                 # the position table: 0.5 TiB
    "width": {"embedding_dim": 1 << 14, "num_heads": 2},    # 13 G parameters
    "depth": {"num_layers": 1 << 16},                       # 65536 blocks, 0.2 G parameters
}


def test_a_config_declaring_a_huge_model_is_refused_before_allocating(tmp_path):
    """The weights (small, real) do not fit the config; that must be found by comparing
    shapes, not by building the declared model. Loaded in one child process whose address
    space is capped 1 GiB above its start-up and whose time is limited, so a failing
    loader cannot take the machine down."""
    paths = {}
    for name, changes in HUGE_CONFIGS.items():
        paths[name] = tmp_path / name / "model.safetensors"
        paths[name].parent.mkdir()
        save_checkpoint(TransformerModel(SMALL), paths[name])
        replace_weights(paths[name], paths[name].read_bytes(), **changes)
    child = f"""
import resource
from predictors.transformer import load_checkpoint
from gencomp.compressor import get_compressor
from gencomp.container import frame, pack, unpack
from gencomp.errors import CheckpointError, GencompError
mapped = next(int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), resource.RLIM_INFINITY))
for name, path in {dict((name, str(path)) for name, path in paths.items())!r}.items():
    try:
        load_checkpoint(path)
        print(name, "loaded")
    except CheckpointError:
        print(name, "CheckpointError")
    except BaseException as error:
        print(name, "refused too late:", type(error).__name__, flush=True)
"""
    try:
        result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                                timeout=60, cwd=Path(__file__).resolve().parents[1])
        lines = result.stdout.splitlines()
    except subprocess.TimeoutExpired as timeout:
        lines = (timeout.stdout or b"").decode().splitlines() + ["...still building at 60 s"]
    assert lines == [f"{name} CheckpointError" for name in HUGE_CONFIGS], lines


HOSTILE_MODEL_PARAMS = {
    "device-meta": {"device": "meta"},       # torch's "meta" device holds no data
    "device-unknown": {"device": "nonesuch"},
    "size-number": {"size": 5},
    "size-object": {"size": {"a": 1}},
    "checkpoint-number": {"checkpoint": 5},
    "checkpoint-device": {"checkpoint": "/dev/zero"},
}


@pytest.mark.parametrize("changes", HOSTILE_MODEL_PARAMS.values(),
                         ids=HOSTILE_MODEL_PARAMS.keys())
def test_hostile_model_parameters_in_a_container_are_refused(changes):
    """A container's header says how to rebuild the model; whatever it says, the answer is
    the original or a GencompError (found by tests/fuzz.py on the transformer)."""
    import gencomp.codecs.predictive  # noqa: F401  (registers the model compressors)

    data = b"a few bytes for the transformer"
    header, payload = read_header(pack(get_compressor("transformer"), data))
    try:
        output = unpack(frame(header.compressor, {**header.params, **changes},
                              header.original_length, header.original_digest, payload))
    except GencompError:
        return
    assert output == data
