"""CLI command groups; each module has `register(app)`. Only the CLI knows option names:
`user_message` puts library errors in its words."""

import shlex

from gencomp.constants import DATA_ENV
from gencomp.errors import DataNotFoundError, GencompError

#: The options that point at each data set's file or folder (`gencomp compress-bench`).
DATA_OPTIONS = {"text": "--text-file", "image": "--image-dir", "audio": "--audio-dir"}

_arguments: list[str] = []


def set_invocation(arguments: list[str]) -> None:
    """Remember the command line being run (`gencomp.cli.main` calls this)."""
    _arguments[:] = arguments


def invocation() -> str:
    """The command line being run, as a shell would take it back, for run records."""
    return shlex.join(["gencomp", *_arguments])


def user_message(error: GencompError) -> str:
    """The error's message, with the options that fix it where the library names a field
    (a data set that is missing: which options point at it)."""
    message = str(error)
    if isinstance(error, DataNotFoundError) and error.dataset is not None:
        options = [DATA_OPTIONS[error.dataset]] if error.dataset in DATA_OPTIONS else []
        message += f": pass {' or '.join([*options, '--data-dir DIR'])}, or set {DATA_ENV}=DIR"
        if error.download:
            message += f" (fetch it with `gencomp data download {error.download}`)"
    return message
