"""What the benchmarks print about the machine they ran on: speeds are only comparable
beside it (machines of our kind differ by up to 4x)."""

from __future__ import annotations

import subprocess


def cpu_model() -> str:
    """The CPU's model name, as lscpu reports it."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU (no lscpu)"
    names = [line.split(":", 1)[1].strip() for line in lines.splitlines()
             if line.startswith("Model name")]
    return names[0] if names else "unknown CPU"
