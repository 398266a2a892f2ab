"""The Transformer's shape without torch: its config, the paper's sizes, the names and
shapes of its parameters, and its position codes (fixed numbers, not weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gencomp.errors import UsageError


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 256
    embedding_dim: int = 64
    num_layers: int = 4
    num_heads: int = 8
    widening_factor: int = 4
    context_length: int = 2048

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"transformer config {key} must be a positive integer, "
                                 f"got {value!r}")
        if self.vocab_size != 256:
            raise UsageError("a byte-level transformer needs vocab_size 256")
        if self.embedding_dim % self.num_heads or self.embedding_dim % 2:
            raise UsageError("embedding_dim must be even and divisible by num_heads")

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise UsageError(f"unknown transformer config keys: {', '.join(unknown)}")
        return cls(**values)


#: The paper's three sizes: same depth, wider embeddings.
PRESETS: dict[str, TransformerConfig] = {
    "200k": TransformerConfig(embedding_dim=64),
    "800k": TransformerConfig(embedding_dim=128),
    "3.2m": TransformerConfig(embedding_dim=256),
}


def preset(size: str) -> TransformerConfig:
    """The config of a named size ("200k", "800K", "3.2M": case does not matter)."""
    config = PRESETS.get(size.lower()) if isinstance(size, str) else None  # from a header
    if config is None:
        raise UsageError(f"unknown transformer size {size!r}; available: {', '.join(PRESETS)}")
    return config


def parameter_shapes(config: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """The state dict's names and shapes (`TransformerModel.state_dict()`; the position
    table is no parameter)."""
    dim, hidden = config.embedding_dim, config.widening_factor * config.embedding_dim
    shapes = {"embedding.weight": (config.vocab_size, dim),
              "head.weight": (config.vocab_size, dim), "head.bias": (config.vocab_size,)}
    for layer in range(config.num_layers):
        block = f"blocks.{layer}."
        shapes |= {block + "qkv.weight": (3 * dim, dim),
                   block + "attention_out.weight": (dim, dim),
                   block + "attention_norm.weight": (dim,), block + "attention_norm.bias": (dim,),
                   block + "ff_in.weight": (hidden, dim), block + "ff_in.bias": (hidden,),
                   block + "ff_out.weight": (dim, hidden), block + "ff_out.bias": (dim,),
                   block + "ff_norm.weight": (dim,), block + "ff_norm.bias": (dim,)}
    return shapes


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """(length, dim) float32 sin/cos position codes, the first half sines, as in the
    paper's code (computed in float64, then rounded)."""
    inverse_frequencies = 1e4 ** (-np.arange(0, dim, 2) / dim)
    angles = np.outer(np.arange(length), inverse_frequencies)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)
