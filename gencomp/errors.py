"""One exception family for everything a user can get wrong or a file can get wrong.

The CLI turns any `GencompError` into a one-line message and exit code 2; anything else
is a bug and keeps its traceback.
"""


class GencompError(Exception):
    """Base class: a clear, one-line, user-facing failure."""


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


class CheckpointError(GencompError):
    """A model checkpoint that is corrupt, tampered with, or does not match its config."""
