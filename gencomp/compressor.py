"""The one interface every compressor offers, and the registry that names them.

A lossless compressor C is also a probabilistic model (Delétang et al., 2024, Sec. 2-3):
its code length ℓ_C(x) in bits defines a conditional distribution over continuations,

    ρ(c | x) ∝ 2^(ℓ_C(x) − ℓ_C(x·c)).

So besides `compress` / `decompress`, a compressor reports code lengths. Samplers and the
benchmark use only what is defined here.

Units and exactness:
- `code_length_bits(data, unit)` is ℓ_C(data) in bits, counted in one of two units:
  "bytes", 8 × len(payload) of the stream the codec *models with* (the paper's, and what
  `compress-bench` reports); or "bits", exact: the payload's bits up to the last one its
  decoder needs, without the zero bits that pad the format to byte boundaries. The stream
  a codec models with can differ from the file container it writes: LZMA2 files are .xz
  but its code lengths are raw LZMA2, because the .xz container pads to 4 bytes and
  flattens differences between continuations. A codec lists the units it offers in
  `length_units` and answers a unit it does not offer in its own; a model compressor's
  only unit is its ideal −Σ log2 p, a real number.
- `continuation_bits(context, candidates, unit)` is ℓ_C(context·c) − ℓ_C(context) for each
  candidate c. The default recompresses context·c for every candidate. A codec may override
  it with a faster path, but only an *exact* one: the numbers must equal recompression.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gencomp.errors import UnknownCompressorError, UsageError

#: The units code lengths can be counted in (see the module doc).
LENGTH_UNITS = ("bytes", "bits")
#: How much a codec decodes when the caller sets no limit (4 GiB): every decoder is capped.
DEFAULT_MAX_OUTPUT_BYTES = 1 << 32
#: The size of the pieces codecs that can stream their output decode in
#: (`Compressor.decompress_pieces`).
DECODE_PIECE_BYTES = 1 << 20


def output_limit(max_output_bytes: int | None) -> int:
    """The cap a `decompress` call honours: the caller's, or the default."""
    return DEFAULT_MAX_OUTPUT_BYTES if max_output_bytes is None else max_output_bytes


def check_int_range(value: Any, lowest: int, highest: int, what: str) -> int:
    """`value` if it is an int (not a bool) in [lowest, highest]; else a ValueError, which
    `get_compressor` reports as a usage error."""
    if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= highest:
        raise ValueError(f"{what} must be an integer from {lowest} to {highest}, got {value!r}")
    return value


class NextByteModel(Protocol):
    """Next-byte distributions of a model compressor, stepped on a batch of sequences: what
    the exact sampler draws from (`predictors.base.Predictor` implements it). Distributions
    are float64 arrays of shape (batch, 256)."""

    def start(self, batch_size: int) -> tuple[Any, np.ndarray]:
        """Fresh state (no bytes seen) and the first distributions."""
        ...

    def step(self, state: Any, symbols: np.ndarray) -> np.ndarray:
        """Feed one byte per sequence; the distributions of the next byte."""
        ...

    def prime(self, state: Any, context: np.ndarray) -> np.ndarray:
        """Feed (batch, length) context bytes; the distributions after the last one."""
        ...

    def freeze(self, state: Any) -> None:
        """Stop learning from what is fed next (an adaptive model's counts and weights
        stay as they are); the context still grows."""
        ...


@dataclass
class WindowState:
    """A `SlidingWindow`'s state: the model's, the last bytes fed (up to a window), how
    many the model has been fed since it started, and whether it is frozen."""

    inner: Any
    recent: np.ndarray
    fed: int = 0
    frozen: bool = False


class SlidingWindow:
    """A `NextByteModel` conditioned on at most `window` bytes: once a sequence has been
    fed window − 1 bytes (fed n, a model gives the distribution of byte n + 1, so n <
    window), the model restarts on the last half window (frozen again if it was). The exact
    sampler slides a compressor's chunk or context so, and transformer-cm's mixture the
    Transformer's window."""

    def __init__(self, model: NextByteModel, window: int) -> None:
        self.model, self.window = model, window

    def start(self, batch_size: int) -> tuple[WindowState, np.ndarray]:
        inner, probabilities = self.model.start(batch_size)
        return WindowState(inner, np.zeros((batch_size, 0), dtype=np.uint8)), probabilities

    def prime(self, state: WindowState, context: np.ndarray) -> np.ndarray:
        if state.fed + context.shape[1] >= self.window:  # it fills within the context
            return [self.step(state, column) for column in context.T][-1]
        probabilities = self.model.prime(state.inner, context)
        state.recent = np.concatenate([state.recent, context], axis=1)[:, -self.window:]
        state.fed += context.shape[1]
        return probabilities

    def step(self, state: WindowState, symbols: np.ndarray) -> np.ndarray:
        symbols = np.asarray(symbols, dtype=np.uint8)
        state.recent = np.concatenate([state.recent, symbols[:, None]], axis=1)[:, -self.window:]
        if state.fed + 1 < self.window:
            state.fed += 1
            return self.model.step(state.inner, symbols)
        keep = self.window // 2
        state.inner, _ = self.model.start(len(symbols))
        probabilities = self.model.prime(state.inner, state.recent[:, -keep:])
        if state.frozen:
            self.model.freeze(state.inner)
        state.fed = keep
        return probabilities

    def freeze(self, state: WindowState) -> None:
        self.model.freeze(state.inner)
        state.frozen = True


class Compressor(ABC):
    """A lossless compressor that also reports its code lengths.

    Subclasses set `name`, store their parameters, and implement `compress` and
    `decompress`. `params` must be JSON-serialisable and must be enough to rebuild an
    equivalent compressor with `get_compressor(name, **params)`: the .gcz container relies
    on it.
    """

    name: str = ""
    #: Set by model compressors (a predictor plus an arithmetic coder).
    predictor: NextByteModel | None = None

    @property
    def next_byte_model(self) -> NextByteModel | None:
        """What samplers draw from straight, instead of recompressing: the distributions
        this compressor codes with (its `predictor`, unless it mixes it with another)."""
        return self.predictor

    @property
    def context_window(self) -> int | None:
        """The most preceding bytes that a byte's code length depends on (a model's chunk or
        context); None when unbounded or unknown."""
        return None

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Parameters that rebuild this compressor; recorded in containers and results."""

    @abstractmethod
    def compress(self, data: bytes) -> bytes:
        """Losslessly compress `data`."""

    def decompress(self, payload: bytes, max_output_bytes: int | None = None) -> bytes:
        """Invert `compress`. Never produce more than `max_output_bytes` (decompression
        bombs); raise a `ContainerError` on a payload this codec cannot decode."""
        return b"".join(self.decompress_pieces(payload, max_output_bytes))

    def decompress_pieces(self, payload: bytes, max_output_bytes: int | None = None
                          ) -> Iterator[bytes]:
        """`decompress`'s output in order, in pieces of at most about `DECODE_PIECE_BYTES`
        where the codec can decode that way, so that a caller writing them out holds one
        piece at a time (a few KB of payload may declare gigabytes of output). A codec
        overrides this or `decompress`; the other follows."""
        yield self.decompress(payload, max_output_bytes)


    @property
    def num_parameters(self) -> int:
        """Learned parameters of the model inside (0 for classical codecs); the benchmark's
        adjusted rate adds 2 bytes per parameter, as the paper does."""
        return 0

    #: The units this codec counts code lengths in, its own first (see the module doc):
    #: "bytes" (8 × whole payload bytes) and, where it can count them, "bits" (exact).
    length_units: tuple[str, ...] = ("bytes",)

    def length_unit(self, unit: str) -> str:
        """The unit a request for `unit` is answered in: `unit` if offered, else the
        codec's own."""
        if unit not in LENGTH_UNITS:
            raise ValueError(f"length unit must be one of {', '.join(LENGTH_UNITS)}, "
                             f"got {unit!r}")
        return unit if unit in self.length_units else self.length_units[0]

    def payload_bits(self, payload: bytes) -> float:
        """The exact length of one of this codec's payloads: its bits up to the last one
        the decoder needs. Codecs that offer "bits" count them; the default is 8 × bytes."""
        return 8.0 * len(payload)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        """ℓ_C(data) in bits, counted in `unit` (see the module doc). Default: the size of
        the compressed payload, or its `payload_bits`."""
        payload = self.compress(data)
        return self.payload_bits(payload) if self.length_unit(unit) == "bits" \
            else 8.0 * len(payload)

    def for_image(self, width: int) -> Compressor:
        """This compressor as it scores images `width` pixels wide, row-major: itself,
        unless it models two-dimensional layout (PNG)."""
        return self

    def for_audio(self, prompt: bytes) -> Compressor:
        """This compressor as it scores continuations of the audio `prompt`: itself,
        unless it codes audio in independent frames with a predictor fitted to each
        (FLAC), where a sample starting a frame sees no context and a refit predictor
        follows the sampler."""
        return self

    def continuation_bits(self, context: bytes, candidates: Sequence[bytes],
                          unit: str = "bytes") -> np.ndarray:
        """ℓ_C(context·c) − ℓ_C(context) in bits for each candidate c (float64 array),
        counted in `unit`.

        Default: recompress context·c for every candidate, O(len(candidates) × len(context)).
        """
        base_bits = self.code_length_bits(context, unit)
        return np.array(
            [self.code_length_bits(context + candidate, unit) - base_bits
             for candidate in candidates],
            dtype=np.float64,
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class CompressorSpec:
    """A registry entry: how to build a compressor and what it accepts."""

    name: str
    factory: Callable[..., Compressor]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    #: The parameter that `--level` sets (gzip level, zstd level, brotli quality, ...).
    level_param: str | None = None
    is_model: bool = False
    #: Parameters that choose how coding runs, not what the bytes are (workers, device): a
    #: container never records them and its values for them are ignored; the user's
    #: command line gives them.
    runtime_params: tuple[str, ...] = ()
    #: Parameters the payload records itself (a model payload's chunk and group sizes and
    #: fingerprint): a container need not record them.
    payload_params: tuple[str, ...] = ()
    #: What compressing a file sets unless told otherwise, where it differs from the
    #: library's defaults (which sampling and compress-bench keep).
    file_params: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, CompressorSpec] = {}


def register(
    name: str,
    description: str,
    level_param: str | None = None,
    is_model: bool = False,
    runtime_params: tuple[str, ...] = (),
    payload_params: tuple[str, ...] = (),
    file_params: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Compressor]], Callable[..., Compressor]]:
    """Decorator that adds a compressor class or factory function to the registry."""

    def add(factory: Callable[..., Compressor]) -> Callable[..., Compressor]:
        if isinstance(factory, type) and (
                factory.decompress is Compressor.decompress
                and factory.decompress_pieces is Compressor.decompress_pieces):
            raise TypeError(f"{factory.__name__} must define decompress or decompress_pieces")
        signature = inspect.signature(factory)
        defaults = {
            key: parameter.default
            for key, parameter in signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        _REGISTRY[name] = CompressorSpec(
            name, factory, description, defaults, level_param, is_model, runtime_params,
            payload_params, dict(file_params or {})
        )
        return factory

    return add


#: The built-in compressors, by registry name: the module that registers each. The one
#: place that lists them; a module is imported only when one of its compressors is asked
#: for, so importing the interface (or a sampler) loads no codec.
BUILTIN_CODECS = {
    "gzip": "gencomp.codecs.bytestream",
    "bz2": "gencomp.codecs.bytestream",
    "zstd": "gencomp.codecs.bytestream",
    "brotli": "gencomp.codecs.bytestream",
    "flac": "gencomp.codecs.flac",
    "lzma2": "gencomp.codecs.lzma2",
    "png": "gencomp.codecs.png",
    "cm": "gencomp.codecs.predictive",
    "transformer": "gencomp.codecs.predictive",
    "transformer-cm": "gencomp.codecs.predictive",
}


def _load(name: str) -> None:
    if name not in _REGISTRY and name in BUILTIN_CODECS:
        importlib.import_module(BUILTIN_CODECS[name])


def compressor_specs() -> list[CompressorSpec]:
    """Every compressor: the built-in ones in `BUILTIN_CODECS` order, then any registered
    by other code."""
    for name in BUILTIN_CODECS:
        _load(name)
    return [*(_REGISTRY[name] for name in BUILTIN_CODECS),
            *(spec for name, spec in _REGISTRY.items() if name not in BUILTIN_CODECS)]


def available_compressors() -> list[str]:
    """Names accepted by `get_compressor`."""
    return [spec.name for spec in compressor_specs()]


#: Other names people know these codecs by: the tools and formats that carry them.
ALIASES = {"xz": "lzma2", "lzma": "lzma2", "bzip2": "bz2"}


def compressor_spec(name: str) -> CompressorSpec:
    """The registry entry for `name` or its alias (its parameters, level parameter, kind)."""
    name = ALIASES.get(name, name)
    _load(name)
    spec = _REGISTRY.get(name)
    if spec is None:
        names = available_compressors()
        close = difflib.get_close_matches(name.lower(), [*names, *ALIASES], n=1, cutoff=0.6)
        hint = f"did you mean {ALIASES.get(close[0], close[0])!r}? " if close else ""
        raise UnknownCompressorError(
            f"unknown compressor {name!r}; {hint}available: {', '.join(names)}")
    return spec


def get_compressor(name: str, **params: Any) -> Compressor:
    """Build a registered compressor, e.g. `get_compressor("gzip", level=9)`."""
    spec = compressor_spec(name)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise UsageError(
            f"compressor {name!r} takes no parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(spec.defaults) or 'none'}"
        )
    try:
        return spec.factory(**params)
    except (TypeError, ValueError) as error:
        raise UsageError(f"bad parameters for {name!r}: {error}") from error
