"""The Transformer's CPU kernels (`transformer_kernels`) as this process runs them.

Run through numba's JIT, the kernels cost every process numba and LLVM's import and the
loading of their cached machine code: 0.5–1.4 s, most of what `gencomp compress` of a small
file takes. So the first process that needs them compiles them ahead of time instead, with
numba's `pycc`, into an extension module in the cache, and every later process imports
that in milliseconds without numba. It is numba's own compilation of the same code for the
same CPU, so its bits are the JIT's (`tests/test_transformer_native.py` compares them).

The build (about as long as the JIT's first compilation) runs in a child process, so that
the compiler's output cannot reach this process's stdout, which may be a payload; a file
lock lets one process build while the others wait. Where it fails (no C compiler, a
read-only cache) a marker beside it says why, and every process runs the JIT; delete the
marker to try again. GENCOMP_KERNELS=jit chooses the JIT outright.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np

from gencomp.constants import KERNELS_ENV
from gencomp.locations import cache_dir
from predictors.transformer_arrays import (
    KernelWeights,
    aligned_zeros,
    allocate_cache,
    allocate_scratch,
)

#: The source files whose code the build compiles: any change to them is a new build.
SOURCES = ("transformer_kernels.py", "float32x16.py", "transformer_arrays.py",
           "transformer_native.py")
#: Seconds a build may take before it counts as failed (it takes 10–30).
BUILD_TIMEOUT = 900


class Kernels(NamedTuple):
    """The entry points of `transformer_kernels`, in one compiled form ("aot" or "jit")."""

    step_batch: Callable[..., None]
    extend_sequence: Callable[..., None]
    extend_sequence_hidden: Callable[..., None]
    online_head: Callable[..., None]
    learn_head: Callable[..., None]
    form: str


ENTRY_POINTS = Kernels._fields[:-1]
#: The entry points that take a key/value cache, which the build compiles twice: for a
#: float32 cache under their own names, for a half-float one with HALF_SUFFIX.
CACHE_ENTRY_POINTS = ("step_batch", "extend_sequence", "extend_sequence_hidden")
HALF_SUFFIX = "_f16"

_loaded: dict[tuple[str, bool], Kernels] = {}


def load_kernels(weights: KernelWeights, half_cache: bool = False) -> Kernels:
    """The kernels for weights of this layout and caches of float32 or (`half_cache`) half
    floats: the ahead-of-time build (made now if there is none yet), or numba's JIT where
    it cannot be had or GENCOMP_KERNELS=jit asks."""
    form = "jit" if os.environ.get(KERNELS_ENV) == "jit" else "aot"
    if (form, half_cache) not in _loaded:
        module = _native_module(_array_ranks(weights)) if form == "aot" else None
        if module is None:
            from predictors import transformer_kernels as module
            form = "jit"

        def entry(name: str) -> Callable[..., None]:
            if form == "aot" and half_cache and name in CACHE_ENTRY_POINTS:
                name += HALF_SUFFIX
            return getattr(module, name)

        _loaded[form, half_cache] = Kernels(*map(entry, ENTRY_POINTS), form)
    return _loaded[form, half_cache]


def _array_ranks(weights: KernelWeights) -> list[int]:
    """The rank of each array of `weights`: all a signature needs of them."""
    return [value.ndim for value in weights if isinstance(value, np.ndarray)]


def build_key() -> str:
    """What the machine code depends on: the sources, numba, Python and the CPU."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for source in SOURCES:
        digest.update((here / source).read_bytes())
    for library in ("numba", "llvmlite", "numpy"):
        digest.update(f"{library} {importlib.metadata.version(library)};".encode())
    digest.update(f"{sys.version};{sysconfig.get_config_var('EXT_SUFFIX')};".encode())
    digest.update(_cpu_description().encode())
    return digest.hexdigest()[:20]


def _cpu_description() -> str:
    """The CPU's model and features (the build targets this CPU's instructions)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()} {platform.node()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    return ";".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


def _native_module(ranks: list[int]) -> ModuleType | None:
    directory = cache_dir() / "kernels"
    name = f"transformer_kernels_{build_key()}"
    path = directory / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    failed = directory / f"{name}.failed"
    if not path.exists():
        if failed.exists():
            return None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f"{name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
                if not path.exists() and not failed.exists():
                    _build_in_child(directory, name, ranks, failed)
        except OSError:  # no cache to write: the JIT runs instead
            return None
        if not path.exists():
            return None
    spec = importlib.util.spec_from_file_location(name, path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError):  # not loadable here after all: the JIT gives the same bits
        return None
    return module


def _build_in_child(directory: Path, name: str, ranks: list[int], failed: Path) -> None:
    command = [sys.executable, "-m", "predictors.transformer_native", str(directory), name,
               json.dumps(ranks)]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
        error = "" if result.returncode == 0 else (result.stderr.strip() or "failed")
    except subprocess.TimeoutExpired:
        error = f"the build took more than {BUILD_TIMEOUT} s"
    if error:
        failed.write_text(error + "\n")


def _example_weights(ranks: list[int]) -> KernelWeights:
    """Weights of the kernels' types, every array of one element per axis."""
    arrays = [aligned_zeros(1).reshape((1,) * rank) for rank in ranks]
    return KernelWeights(*arrays, attention_scale=np.float32(1.0), num_heads=1)


def _signatures(weights: KernelWeights) -> dict[str, object]:
    import numba
    from numba import types

    weights_type = numba.typeof(weights)
    scratch_type = numba.typeof(allocate_scratch(weights, 1))
    tokens, rows = types.int64[::1], types.float64[:, ::1]
    matrix, vector = types.float32[:, ::1], types.float32[::1]
    signatures = {
        "online_head": types.void(matrix, vector, matrix, tokens, types.float32, rows),
        "learn_head": types.void(matrix, vector, vector, types.float64[::1], types.int64,
                                 types.float32),
    }
    for suffix, half in (("", False), (HALF_SUFFIX, True)):
        cache_type = numba.typeof(allocate_cache(weights, 1, half))
        signatures |= {
            "step_batch" + suffix: types.void(weights_type, cache_type, tokens, types.int64,
                                              rows),
            "extend_sequence" + suffix: types.void(weights_type, cache_type, types.int64,
                                                   tokens, types.int64, scratch_type, rows),
            "extend_sequence_hidden" + suffix: types.void(
                weights_type, cache_type, types.int64, tokens, types.int64, scratch_type),
        }
    return signatures


def build(directory: Path, name: str, ranks: list[int]) -> None:
    """Compile the kernels into extension module `name` in `directory` (atomically)."""
    import warnings

    import numba
    from numba.core.compiler import Flags

    from predictors import transformer_kernels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaPendingDeprecationWarning)
        from numba.pycc import CC, compiler

    def kernel_flags() -> Flags:
        """The JIT's options (`transformer_kernels._kernel`), which pycc does not take:
        nogil, so that worker threads run kernels side by side, and numpy's error model."""
        flags = Flags()
        flags.release_gil = True
        flags.error_model = "numpy"
        flags.boundscheck = False
        return flags

    compiler.Flags = kernel_flags
    try:
        with tempfile.TemporaryDirectory(dir=directory) as work:
            module = CC(name)
            module.output_dir = work
            module.target_cpu = "host"
            for entry, signature in _signatures(_example_weights(ranks)).items():
                kernel = getattr(transformer_kernels, entry.removesuffix(HALF_SUFFIX))
                module.export(entry, signature)(kernel.py_func)
            module.compile()
            built = next(Path(work).glob(f"{name}*"))
            os.replace(built, directory / built.name)
    finally:
        compiler.Flags = Flags


if __name__ == "__main__":
    build(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
