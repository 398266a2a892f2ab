"""The `gencomp` command: a thin layer over the library.

Each command group lives in `gencomp/commands/<group>.py` and adds itself to `app`. Errors
a user can fix (`GencompError`, bad options) become one line on stderr and exit code 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from typer.exceptions import TyperException

from gencomp.commands import (
    bench,
    codec,
    data,
    render,
    sample,
    set_invocation,
    train,
    user_message,
)
from gencomp.errors import GencompError

app = typer.Typer(
    name="gencomp",
    help="Every lossless compressor is a generative model: compress, benchmark, sample.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_debug = False


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    global _debug
    _debug = debug


for group in (codec, bench, sample, train, render, data):
    group.register(app)


def _fail(message: str, program: str = "gencomp") -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{program}: error: {first_line}", file=sys.stderr)
    return 2


def _interrupted(program: str = "gencomp") -> int:
    print(f"{program}: interrupted", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    global _debug
    _debug = False
    arguments = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    set_invocation(arguments)
    try:
        result = command.main(args=arguments, prog_name="gencomp", standalone_mode=False)
    except GencompError as error:
        if _debug:
            raise
        return _fail(user_message(error))
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except TyperException as error:  # typer's own usage errors: bad options, missing args
        return _fail(getattr(error, "format_message", error.__str__)())
    if result == 130:  # typer catches Ctrl-C itself: not standalone, it returns Exit(130)'s code
        return _interrupted()
    return result if isinstance(result, int) else 0


def run_script(script_main: Callable[[], object], program: str) -> int:
    """Run an example script's `main` as the CLI runs a command: a file that is missing or
    unreadable, or any other `GencompError`, is one line on stderr and exit code 2."""
    try:
        script_main()
    except (GencompError, OSError) as error:
        return _fail(str(error), program)
    except KeyboardInterrupt:
        return _interrupted(program)
    return 0
