"""`gencomp compress`, `gencomp decompress`, `gencomp list`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from gencomp.compressor import compressor_spec, compressor_specs, get_compressor
from gencomp.container import MAX_DECLARED_LENGTH, pack, read_header, unpack
from gencomp.errors import UsageError
from gencomp.fileio import STDIO, check_distinct, check_writable, read_input, write_output

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


def workers_param(compressor_name: str, workers: int) -> dict[str, Any]:
    """{"workers": N} for a model compressor; more than one worker for a codec is an error."""
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if workers == 1:
        return {}
    if "workers" not in compressor_spec(compressor_name).defaults:
        raise UsageError(f"--workers is for model compressors; {compressor_name!r} codes in "
                         "one process")
    return {"workers": workers}


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """"4096", "64K", "100M", "2G" (powers of 1024) -> bytes."""
    number, unit = text.strip(), ""
    if number[-1:].upper() in _SIZE_UNITS:
        number, unit = number[:-1], number[-1].upper()
    if not number.isdigit():
        raise UsageError(f"--max-output takes a size such as 4096, 64K, 100M or 2G, got {text!r}")
    return int(number) * _SIZE_UNITS[unit]


WORKERS_HELP = ("Workers for a model compressor: processes coding groups of batch_size "
                "chunks, or threads coding single chunks for the Transformer's CPU kernels "
                "(the bytes do not change).")


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
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Compress a file into a checked .gcz container."""
    params = {**parse_params(param), **workers_param(compressor_name, workers)}
    if level is not None:
        spec = compressor_spec(compressor_name)
        if spec.level_param is None:
            raise UsageError(f"compressor {compressor_name!r} has no level")
        params[spec.level_param] = level
    compressor = get_compressor(compressor_name, **params)
    output_path = output or _default_output(input_path, compressing=True)
    check_distinct(input_path, output_path)
    check_writable(output_path, force)
    write_output(output_path, pack(compressor, read_input(input_path)), force=force)


def decompress(
    input_path: str = typer.Argument(..., metavar="IN", help=".gcz file ('-': stdin)."),
    output: str | None = typer.Option(None, "-o", "--output",
                                      help="Output (default IN without .gcz)."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    max_output: str = typer.Option(
        f"{MAX_DECLARED_LENGTH >> 30}G", "--max-output",
        help="Refuse a container that declares more (K, M, G: powers of 1024)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Decompress a .gcz container, verifying its checksums."""
    limit = parse_size(max_output)
    output_path = output or _default_output(input_path, compressing=False)
    check_distinct(input_path, output_path)
    check_writable(output_path, force)
    container = read_input(input_path)
    runtime_params = {}  # the header is read here only when it matters: unpack reads it too
    if workers != 1:
        runtime_params = workers_param(read_header(container)[0].compressor, workers)
    write_output(output_path, unpack(container, limit, runtime_params=runtime_params),
                 force=force)


def list_compressors() -> None:
    """List the compressors and their parameters."""
    table = Table(title="gencomp compressors")
    for column in ("name", "kind", "parameters (defaults)", "description"):
        table.add_column(column)
    for spec in compressor_specs():
        defaults = ", ".join(f"{key}={value!r}" for key, value in spec.defaults.items())
        table.add_row(spec.name, "model" if spec.is_model else "codec", defaults, spec.description)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(compress)
    app.command()(decompress)
    app.command("list")(list_compressors)
