"""How much a file may make us allocate: documented budgets, checked before allocating.

A container is data; what it declares (an output length, a model's table sizes, a batch of
sequences) is checked against these limits before any memory is taken for it:

- **Output**: a container may declare at most `default_output_limit()` bytes of original
  data unless the caller allows more: a quarter of this machine's memory (its cgroup limit
  where that is lower). The classical codecs and cm decode into the output a piece at a
  time (`Compressor.decompress_pieces`), but `unpack` returns the whole original, and the
  Transformer holds what it decodes until it has checked it.
- **Model state**: one batch of a model's state (a context-mixing model's hash tables and
  the history it keeps of what it learns, a Transformer's key/value cache) may take at
  most `model_memory_limit()` bytes: 512 MiB, or what the environment variable
  GENCOMP_MAX_MODEL_MEMORY says (e.g. "2G"). Worker
  processes inherit the variable, so one setting covers a whole run.
"""

from __future__ import annotations

import os
from pathlib import Path

from gencomp.errors import SizeLimitError, UsageError

#: The environment variable that sets the model-state budget.
MODEL_MEMORY_ENV = "GENCOMP_MAX_MODEL_MEMORY"
DEFAULT_MODEL_MEMORY = 512 << 20
#: The share of the machine's memory that decoded output may take by default.
OUTPUT_MEMORY_FRACTION = 4
#: Where a cgroup (v2, then v1) says how much memory this process may use.
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                  Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """"4096", "64K", "100M", "2G" (powers of 1024) -> bytes; a ValueError otherwise."""
    number, unit = text.strip(), ""
    if number[-1:].upper() in _SIZE_UNITS:
        number, unit = number[:-1], number[-1].upper()
    if not number.isdigit():
        raise ValueError(f"expected a size such as 4096, 64K, 100M or 2G, got {text!r}")
    return int(number) * _SIZE_UNITS[unit]


def format_size(size: int) -> str:
    """Bytes as the largest whole unit that fits: 536870912 -> "512 MiB"."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def memory_bytes() -> int:
    """The memory this process can have: physical memory, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_output_limit() -> int:
    """The most original bytes a container may declare when the caller sets no limit."""
    return memory_bytes() // OUTPUT_MEMORY_FRACTION


def model_memory_limit() -> int:
    """The most bytes one batch of model state may take (module docstring)."""
    configured = os.environ.get(MODEL_MEMORY_ENV)
    if not configured:
        return DEFAULT_MODEL_MEMORY
    try:
        return parse_size(configured)
    except ValueError as error:
        raise UsageError(f"{MODEL_MEMORY_ENV}: {error}") from error


def check_model_memory(needed: int, what: str) -> None:
    """Refuse, before allocating, model state of `needed` bytes over the budget."""
    limit = model_memory_limit()
    if needed > limit:
        raise SizeLimitError(f"{what} needs {format_size(needed)} of memory, over the model "
                             f"memory limit of {format_size(limit)} ({MODEL_MEMORY_ENV})")
