"""The `gencomp` command: a thin layer over the library.

Each command group lives in `gencomp/commands/<group>.py` and adds itself to `app`. Every
command ends the same way:

- 0: done, and everything meant for stdout was written (each write checked, to the end).
- 2: an error the user can fix (`GencompError`: a bad option, a damaged container, a full
  disk, a stdout closed with `>&-`): one line on stderr, `gencomp: error: ...`;
  `--debug` shows the traceback instead.
- 141: the reader of our stdout left before it had everything (`| head`): one line, and
  the code a shell reports for a writer killed by SIGPIPE (128 + 13), which scripts using
  `set -o pipefail` already expect from other tools.
- 130 on Ctrl-C (SIGINT), 143 on SIGTERM, 129 on SIGHUP: one line; worker processes are
  stopped and no partial output is left (SIGTERM and SIGHUP are handled as Ctrl-C is).

An error line is printable text at most `MESSAGE_CHARS` long: control characters and
escape sequences that came from a file (a container's compressor name, say) are shown
escaped, never sent to the terminal.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

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
from gencomp.errors import GencompError, printable
from gencomp.fileio import checked_stdout, guard_standard_streams

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


#: The longest error line, in characters.
MESSAGE_CHARS = 400
#: Signals that stop a command as Ctrl-C does, and how the stop is reported.
_STOP_SIGNALS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


def _say(line: str) -> None:
    """A line on stderr; if stderr itself is closed or full, the exit code still tells."""
    with contextlib.suppress(OSError, AttributeError):
        print(line, file=sys.stderr, flush=True)


def _fail(message: str, program: str = "gencomp", exit_code: int = 2) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    _say(f"{program}: error: {printable(first_line, MESSAGE_CHARS)}")
    return exit_code


def _interrupted(program: str = "gencomp", signals: list[int] | None = None) -> int:
    """Report a stop by Ctrl-C (130) or by one of `_STOP_SIGNALS` (128 + its number)."""
    if signals:
        _say(f"{program}: {_STOP_SIGNALS[signals[0]]}")
        return 128 + signals[0]
    _say(f"{program}: interrupted")
    return 130


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[list[int]]:
    """While the block runs, SIGTERM and SIGHUP raise KeyboardInterrupt, so that they stop
    a command as Ctrl-C does: cleanups run, workers are terminated. Yields the signals
    received. A second one ends the process at once; a signal the caller ignores (`nohup`)
    stays ignored."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        for number in previous:
            signal.signal(number, signal.SIG_DFL)
        raise KeyboardInterrupt

    previous = {number: signal.getsignal(number) for number in _STOP_SIGNALS
                if signal.getsignal(number) is not signal.SIG_IGN}
    for number in previous:
        signal.signal(number, stop)
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _hide_flag_types(command: typer._click.core.Command) -> None:
    """No "<bool>" beside a flag in --help: `--force <bool>` reads as if it took a value."""
    for parameter in command.params:
        if getattr(parameter, "is_flag", False):
            parameter.metavar = ""
    for subcommand in getattr(command, "commands", {}).values():
        _hide_flag_types(subcommand)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    global _debug
    _debug = False
    guard_standard_streams()
    arguments = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    _hide_flag_types(command)
    set_invocation(arguments)
    with _stop_signals_interrupt() as signals:
        try:
            with checked_stdout():
                result = command.main(args=arguments, prog_name="gencomp",
                                      standalone_mode=False)
        except GencompError as error:
            if signals:  # e.g. a worker that the same signal ended first
                return _interrupted(signals=signals)
            if _debug:
                raise
            return _fail(user_message(error), exit_code=error.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            return _interrupted(signals=signals)
        except TyperException as error:  # typer's own usage errors: bad options, missing args
            return _fail(getattr(error, "format_message", error.__str__)())
    if result == 130:  # typer catches Ctrl-C itself: not standalone, it returns Exit(130)'s code
        return _interrupted(signals=signals)
    return result if isinstance(result, int) else 0


def run_script(script_main: Callable[[], object], program: str) -> int:
    """Run an example script's `main` as the CLI runs a command: a file that is missing or
    unreadable, or any other `GencompError`, is one line on stderr and exit code 2."""
    try:
        script_main()
    except GencompError as error:
        return _fail(str(error), program, error.exit_code)
    except OSError as error:
        return _fail(str(error), program)
    except KeyboardInterrupt:
        return _interrupted(program)
    return 0
