"""The ahead-of-time build of the Transformer's kernels: the JIT's bits, no numba in the
process that runs it, and the JIT where the build cannot be made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gencomp.constants import KERNELS_ENV
from predictors import transformer_kernels, transformer_native
from predictors.online_head import HEAD_LEARNING_RATE
from predictors.transformer import BEGIN_TOKEN, load_pretrained
from predictors.transformer_arrays import allocate_cache, allocate_scratch
from tests.test_transformer import ENWIK8


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder, and no kernels loaded yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(KERNELS_ENV, raising=False)
    monkeypatch.setattr(transformer_native, "_loaded", {})
    return tmp_path / "gencomp" / "kernels"


def run_entries(kernels: transformer_native.Kernels, weights, text: bytes, half: bool
                ) -> list[np.ndarray]:
    """Every entry point on real weights and text, with caches of half-float values or
    not: what each wrote."""
    tokens = np.concatenate([[BEGIN_TOKEN], np.frombuffer(text, np.uint8)]).astype(np.int64)
    cache = allocate_cache(weights, 1, half)
    scored = np.empty((len(tokens), 256))
    kernels.extend_sequence(weights, cache, 0, tokens, 0, allocate_scratch(weights, len(tokens)),
                            scored)
    stepped_cache = allocate_cache(weights, 2, half)
    stepped = np.empty((2, 256))
    steps = []
    for position, token in enumerate(tokens[:40]):
        kernels.step_batch(weights, stepped_cache, np.array([token, tokens[-1 - position]]),
                           position, stepped)
        steps.append(stepped.copy())
    hidden = allocate_scratch(weights, len(tokens))
    kernels.extend_sequence_hidden(weights, allocate_cache(weights, 1, half), 0, tokens, 0,
                                   hidden)
    head, head_bias = weights.head.copy(), weights.head_bias.copy()
    online = np.empty((len(tokens), 256))
    rate = np.float32(HEAD_LEARNING_RATE)
    kernels.online_head(head, head_bias, hidden.states, np.append(tokens[1:], -1), rate, online)
    kernels.learn_head(head, head_bias, hidden.states[-1], online[-1], 101, rate)
    return [scored, cache.keys, cache.values, cache.value_floors, np.stack(steps),
            stepped_cache.keys, hidden.states, online, head, head_bias]


def test_the_ahead_of_time_build_gives_the_jits_bits(fresh_cache: Path) -> None:
    """One build holds both kernels engines' entry points."""
    text = ENWIK8.read_bytes()[-700:]
    jit = transformer_native.Kernels(
        *(getattr(transformer_kernels, name) for name in transformer_native.ENTRY_POINTS),
        form="jit")
    for engine, half in (("kernels-f16", True), ("kernels", False)):
        predictor = load_pretrained("200k", engine=engine)
        assert predictor.kernels.form == "aot"
        assert len(list(fresh_cache.glob("transformer_kernels_*.so"))) == 1
        native = run_entries(predictor.kernels, predictor.kernel_weights, text, half)
        reference = run_entries(jit, predictor.kernel_weights, text, half)
        for ours, theirs in zip(native, reference, strict=True):
            assert ours.tobytes() == theirs.tobytes()
        assert not np.isnan(native[0]).any() and native[0][1:].max() > 0.5  # a prediction


def test_a_build_that_fails_leaves_a_marker_and_runs_the_jit(
        fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/bin/false")  # the C compiler the build links with
    predictor = load_pretrained("200k")
    assert predictor.kernels.form == "jit"
    [marker] = fresh_cache.glob("*.failed")
    assert marker.read_text().strip()
    assert not list(fresh_cache.glob("*.so"))
    monkeypatch.delenv("CC")  # the marker, not the compiler, now keeps the JIT
    monkeypatch.setattr(transformer_native, "_loaded", {})
    assert load_pretrained("200k").kernels.form == "jit"
    marker.unlink()
    monkeypatch.setattr(transformer_native, "_loaded", {})
    assert load_pretrained("200k").kernels.form == "aot"


def test_the_jit_runs_when_asked(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNELS_ENV, "jit")
    assert load_pretrained("200k").kernels.form == "jit"
    assert not fresh_cache.exists()


def test_a_build_that_does_not_load_runs_the_jit(fresh_cache: Path) -> None:
    script = ("from predictors.transformer import load_pretrained\n"
              "predictor = load_pretrained('200k')\n"
              "print(predictor.kernels.form, predictor.sequence_distributions(b'ok').shape)")

    def form_in_a_new_process() -> str:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=os.environ.copy()).stdout.strip()

    assert form_in_a_new_process() == "aot (2, 256)"
    [built] = fresh_cache.glob("*.so")
    built.write_bytes(b"not an extension module")
    assert form_in_a_new_process() == "jit (2, 256)"
