"""Where data is looked for when the user names no folder. Imports only the constants."""

from __future__ import annotations

import os
from pathlib import Path

from gencomp.constants import DATA_ENV


def repo_root() -> Path:
    """The checkout this package runs from (gencomp/ is one level below it)."""
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where `gencomp data download` puts data sets (also searched for data)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gencomp"


def data_roots(data_dir: Path | None = None) -> list[Path]:
    """Data folders to search, in order: `data_dir` alone if given; otherwise $GENCOMP_DATA,
    ../shared/data from the repository root and from the working directory, and the
    download cache."""
    if data_dir is not None:
        return [Path(data_dir)]
    roots = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    roots += [repo_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
              cache_dir()]
    unique: list[Path] = []
    for root in roots:
        if root.resolve() not in [seen.resolve() for seen in unique]:
            unique.append(root)
    return unique


def find_data(relative: str | Path) -> Path | None:
    """The file or folder `relative` in the first data folder that holds it (`data_roots`),
    or None."""
    return next((root / relative for root in data_roots() if (root / relative).exists()), None)
