"""Shared fixtures: where the real data lives (../shared/data, or $GENCOMP_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def configured_data_dir() -> Path:
    """$GENCOMP_DATA, else ../shared/data beside the checkout (whether or not it is there)."""
    configured = os.environ.get("GENCOMP_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def shared_data_dir() -> Path:
    directory = configured_data_dir()
    if not (directory / "text").is_dir():
        raise RuntimeError(f"the shared data folder is missing: {directory} (set GENCOMP_DATA)")
    return directory


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def alice(data_dir: Path) -> bytes:
    return (data_dir / "text" / "canterbury" / "alice29.txt").read_bytes()


@pytest.fixture(scope="session")
def enwik8_path(data_dir: Path) -> Path:
    return data_dir / "text" / "enwik8_first_4154400_bytes"


@pytest.fixture(scope="session")
def enwik8_megabyte(enwik8_path: Path) -> bytes:
    with open(enwik8_path, "rb") as handle:
        return handle.read(1 << 20)
