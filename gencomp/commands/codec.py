"""`gencomp compress`, `gencomp decompress`, `gencomp list`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from gencomp.commands.progress import (
    PROGRESS_HELP,
    model_coding_progress,
    on_terminal,
    status,
)
from gencomp.compressor import compressor_spec, compressor_specs, get_compressor
from gencomp.container import pack, read_header, unpack_to
from gencomp.errors import UsageError
from gencomp.fileio import (
    STDIO,
    check_distinct,
    check_writable,
    read_input,
    streamed_output,
    write_output,
)
from gencomp.limits import (
    DEFAULT_MODEL_MEMORY,
    MODEL_MEMORY_ENV,
    default_output_limit,
    format_size,
    parse_size,
)

SUFFIX = ".gcz"


def parse_params(assignments: list[str]) -> dict[str, Any]:
    """`["width=64", "container=raw"]` -> {"width": 64, "container": "raw"} (JSON values,
    bare words as strings)."""
    params: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {assignment!r}")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


def runtime_params(compressor_name: str, workers: int,
                   assignments: list[str] | None = None) -> dict[str, Any]:
    """How to run a container's decoder: `--workers` and `--param` settings, which may
    only be the compressor's runtime parameters (a container records the others)."""
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    spec = compressor_spec(compressor_name)
    params = parse_params(assignments or [])
    if workers > 1:
        if "workers" not in spec.runtime_params:
            raise UsageError(f"--workers is for model compressors; {compressor_name!r} codes "
                             "in one process")
        params["workers"] = workers
    recorded = sorted(set(params) - set(spec.runtime_params))
    if recorded:
        raise UsageError(f"--param {recorded[0]}: the container records how it was coded; "
                         f"decompress takes only {', '.join(spec.runtime_params) or 'none'} "
                         f"for {compressor_name!r}")
    return params


def size_option(text: str, option: str) -> int:
    """A size option's bytes: "4096", "64K", "100M", "2G" (powers of 1024)."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from error


@contextlib.contextmanager
def model_memory_limit(max_memory: str | None) -> Iterator[None]:
    """Raise (or lower) the model memory budget for this command, worker processes
    included: they inherit it through the environment (`gencomp.limits`)."""
    if max_memory is None:
        yield
        return
    previous = os.environ.get(MODEL_MEMORY_ENV)
    os.environ[MODEL_MEMORY_ENV] = str(size_option(max_memory, "--max-memory"))
    try:
        yield
    finally:
        if previous is None:
            del os.environ[MODEL_MEMORY_ENV]
        else:
            os.environ[MODEL_MEMORY_ENV] = previous


WORKERS_HELP = ("Workers for a model compressor: processes coding groups of batch_size "
                "chunks, or threads coding single chunks for the Transformer's CPU kernels "
                "(the bytes do not change).")
MAX_MEMORY_HELP = (f"Memory one batch of model state may take, e.g. 2G (default "
                   f"{format_size(DEFAULT_MODEL_MEMORY)}; also ${MODEL_MEMORY_ENV}). Checked "
                   "before allocating.")


def _default_output(input_path: str, compressing: bool) -> str:
    if input_path == STDIO:
        return STDIO
    if compressing:
        return input_path + SUFFIX
    if input_path.endswith(SUFFIX) and len(input_path) > len(SUFFIX):
        return input_path[: -len(SUFFIX)]
    return input_path + ".out"


def compress(
    input_path: str = typer.Argument(..., metavar="IN", help="File to compress ('-': stdin)."),
    output: str | None = typer.Option(None, "-o", "--output", help="Output (default IN.gcz)."),
    compressor_name: str = typer.Option("gzip", "-c", "--compressor", help="See `gencomp list`."),
    level: int | None = typer.Option(None, "--level", help="The codec's level/quality/preset."),
    param: list[str] = typer.Option([], "--param", help="Codec parameter KEY=VALUE."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    progress: bool = typer.Option(on_terminal(), "--progress/--no-progress", help=PROGRESS_HELP,
                                  show_default=False),
) -> None:
    """Compress a file into a checked .gcz container."""
    spec = compressor_spec(compressor_name)
    params = {**spec.file_params, **parse_params(param),
              **runtime_params(compressor_name, workers)}
    if level is not None:
        if spec.level_param is None:
            raise UsageError(f"compressor {compressor_name!r} has no level")
        params[spec.level_param] = level
    output_path = output or _default_output(input_path, compressing=True)
    check_distinct(input_path, output_path)
    check_writable(output_path, force)  # before a model takes seconds to load
    show = progress and spec.is_model
    with status(show, f"loading {spec.name}"):
        compressor = get_compressor(compressor_name, **params)
    with model_memory_limit(max_memory), model_coding_progress(show, f"{spec.name} coding"):
        container = pack(compressor, read_input(input_path))
    write_output(output_path, container, force=force)


def _is_model(name: str) -> bool:
    """Whether `name` is a registered model compressor (an unknown one is for `unpack`
    to report)."""
    try:
        return compressor_spec(name).is_model
    except UsageError:
        return False


def decompress(
    input_path: str = typer.Argument(..., metavar="IN", help=".gcz file ('-': stdin)."),
    output: str | None = typer.Option(None, "-o", "--output",
                                      help="Output (default IN without .gcz)."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    param: list[str] = typer.Option([], "--param", help=(
        "A runtime parameter KEY=VALUE of a model compressor (device=cuda); the container "
        "records the rest.")),
    max_output: str | None = typer.Option(
        None, "--max-output", help="Refuse a container that declares more (K, M, G: powers "
        "of 1024). Default: a quarter of this machine's memory."),
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    progress: bool = typer.Option(on_terminal(), "--progress/--no-progress", help=PROGRESS_HELP,
                                  show_default=False),
) -> None:
    """Decompress a .gcz container, verifying its checksums."""
    limit = (default_output_limit() if max_output is None
             else size_option(max_output, "--max-output"))
    output_path = output or _default_output(input_path, compressing=False)
    check_distinct(input_path, output_path)
    check_writable(output_path, force)
    container = read_input(input_path)
    runtime = {}  # the header is read here only when it matters: unpack reads it too
    if workers != 1 or param:
        runtime = runtime_params(read_header(container)[0].compressor, workers, param)
    name = read_header(container)[0].compressor if progress else None
    show = name is not None and _is_model(name)
    with model_memory_limit(max_memory), model_coding_progress(show, f"{name} decoding"), \
            streamed_output(output_path, force) as write:
        unpack_to(container, write, limit, runtime_params=runtime)


#: What `gencomp list` says about the two ways model compressors cut a file.
MODEL_MODES = ("Model compressors stream by default: cm learns across the whole file, the "
               "Transformer codes every byte after as much of the file before it as its "
               "window holds; that is what to use for files. --param chunk_size=2048 codes "
               "the paper's independent 2 KB chunks instead (what compress-bench measures); "
               "large chunks (e.g. chunk_size=4194304) let --workers code parts of a file "
               "at once.")


def list_compressors() -> None:
    """List the compressors, their parameters, and what the modes of the models are for."""
    table = Table(title="gencomp compressors")
    for column in ("name", "kind", "parameters (defaults)", "description"):
        table.add_column(column)
    for spec in compressor_specs():
        # A model's fingerprint is for containers to check, never for users to give.
        defaults = ", ".join(f"{key}={value!r}" for key, value in spec.defaults.items()
                             if key != "fingerprint")
        table.add_row(spec.name, "model" if spec.is_model else "codec", defaults, spec.description)
    console = Console()
    console.print(table)
    console.print(MODEL_MODES)


def register(app: typer.Typer) -> None:
    app.command()(compress)
    app.command()(decompress)
    app.command("list")(list_compressors)
