"""One exception family for everything a user can get wrong or a file can get wrong.

The CLI turns any `GencompError` into a one-line message and its `exit_code` (2, or 141
when the reader of our output left); anything else is a bug and keeps its traceback.
Text that comes from a file (a container's compressor name, its parameters) goes into a
message through `printable`, so that no file can write escape codes to a terminal.
"""

#: How long a piece of untrusted text may be once quoted in a message.
QUOTED_CHARS = 60


def printable(text: str, limit: int = QUOTED_CHARS) -> str:
    """`text` safe to show on a terminal: every character a terminal would act on (control
    codes such as ESC or a line break, bidirectional overrides) written as its Python
    escape, and cut to `limit` characters with "..." where it was cut."""
    escaped = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
    return escaped if len(escaped) <= limit else escaped[: max(0, limit - 3)] + "..."


def quoted(text: object, limit: int = QUOTED_CHARS) -> str:
    """Untrusted text (or any value) for a message: printable, shortened, in quotes."""
    return "'" + printable(text if isinstance(text, str) else repr(text), limit) + "'"


class GencompError(Exception):
    """Base class: a clear, one-line, user-facing failure."""

    #: The exit code of a command that this error ends.
    exit_code = 2


class UsageError(GencompError):
    """Bad option values, missing files, wrong modality: the user can fix the call."""


class UnknownCompressorError(UsageError):
    """A compressor name that is not in the registry."""


class DataNotFoundError(UsageError):
    """A data set (enwik, ImageNet, LibriSpeech folder) is not where we looked.

    `dataset` names it and `download` is what `gencomp data download` calls it (if it can
    fetch it), so that the CLI can say which of its options point at the data."""

    def __init__(self, message: str, dataset: str | None = None,
                 download: str | None = None) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.download = download


class OutputClosedError(GencompError):
    """The reader of our output went away before it had everything (a closed pipe, as in
    `| head`). Exit code 141, what a shell reports for a writer killed by SIGPIPE, so that
    scripts tell it apart from bad input; the data was not all delivered either way."""

    exit_code = 141


class OutputExistsError(UsageError):
    """Refusing to overwrite an existing output without --force."""


class ContainerError(GencompError):
    """A .gcz container (or a codec payload) that cannot be decoded to the original."""


class BadMagicError(ContainerError):
    pass


class UnsupportedVersionError(ContainerError):
    pass


class TruncatedError(ContainerError):
    pass


class CorruptPayloadError(ContainerError):
    pass


class ChecksumMismatchError(ContainerError):
    pass


class SizeLimitError(ContainerError):
    """A declared or produced size over the configured limit (decompression bombs)."""


class ModelMismatchError(ContainerError):
    """A payload made by another predictor or other weights than the ones loaded."""


class WorkerDiedError(GencompError):
    """A worker process ended without finishing its job (killed, or out of memory)."""


class CheckpointError(GencompError):
    """A model checkpoint that is corrupt, tampered with, or does not match its config."""
