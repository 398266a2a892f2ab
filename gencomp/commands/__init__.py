"""CLI command groups; each module has `register(app)`."""

import shlex

_arguments: list[str] = []


def set_invocation(arguments: list[str]) -> None:
    """Remember the command line being run (`gencomp.cli.main` calls this)."""
    _arguments[:] = arguments


def invocation() -> str:
    """The command line being run, as a shell would take it back, for run records."""
    return shlex.join(["gencomp", *_arguments])
