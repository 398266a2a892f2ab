"""The paper's Transformer as a PyTorch module: what trains, runs on a GPU, and steps in
the torch engine (`predictors.transformer` explains the engines). Only those paths import
this module, so that the CPU kernels never load torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gencomp.errors import UsageError
from predictors.transformer_config import TransformerConfig, sinusoidal_positions


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        dim = config.embedding_dim
        self.num_heads = config.num_heads
        self.attention_scale = config.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attention_out = nn.Linear(dim, dim, bias=False)
        self.attention_norm = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, config.widening_factor * dim)
        self.ff_out = nn.Linear(config.widening_factor * dim, dim)
        self.ff_norm = nn.LayerNorm(dim)

    def feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ff_norm(h + self.ff_out(F.gelu(self.ff_in(h), approximate="tanh")))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, length, dim = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        return self.feed_forward(self.attention_norm(h + self.attention_out(attended)))

    def forward_step(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     position: int) -> torch.Tensor:
        """One new position per sequence; `keys`/`values` are this layer's (batch, heads,
        context, head_dim) cache, written at `position` and read up to it."""
        batch, dim = h.shape
        q, k, v = self.qkv(h).view(batch, 3, self.num_heads, 1, -1).unbind(1)
        keys[:, :, position : position + 1] = k
        values[:, :, position : position + 1] = v
        # Plain matmuls: for a single query they beat scaled_dot_product_attention's CPU
        # kernel, whose rounding also varies with the thread count.
        scores = torch.matmul(q * self.attention_scale, keys[:, :, : position + 1].transpose(2, 3))
        attended = torch.matmul(torch.softmax(scores, dim=-1), values[:, :, : position + 1])
        attended = self.attention_out(attended.view(batch, dim))
        return self.feed_forward(self.attention_norm(h + attended))


class TransformerModel(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.head = nn.Linear(config.embedding_dim, config.vocab_size)
        self.register_buffer(
            "positions",
            torch.from_numpy(sinusoidal_positions(config.context_length, config.embedding_dim)),
            persistent=False,
        )
        self.embedding_scale = math.sqrt(config.embedding_dim)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())

    def forward(self, inputs: torch.Tensor, first_positions: torch.Tensor | None = None,
                ) -> torch.Tensor:
        """Logits (batch, length, 256) for every position of (batch, length) input tokens,
        the begin token first: position t predicts the byte after inputs[:, t].

        `first_positions` (batch,) places each row at a position offset in the context
        (training on short windows); by default rows start at position 0.
        """
        length = inputs.shape[1]
        offsets = torch.arange(length, device=inputs.device)
        if first_positions is not None:
            offsets = first_positions[:, None] + offsets
        if int(offsets.max()) >= self.config.context_length:
            raise ValueError(f"positions up to {int(offsets.max())} exceed the context "
                             f"{self.config.context_length}")
        h = self.embedding(inputs) * self.embedding_scale + self.positions[offsets]
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def forward_step(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (batch, 256) after feeding one token per sequence at `cache.position`."""
        position = cache.position
        h = self.embedding(tokens) * self.embedding_scale + self.positions[position]
        for block, keys, values in zip(self.blocks, cache.keys, cache.values, strict=True):
            h = block.forward_step(h, keys, values, position)
        cache.position += 1
        return self.head(h)


@dataclass
class KVCache:
    """Per-layer key and value tensors (batch, heads, context, head_dim), allocated once."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position: int = 0

    @classmethod
    def allocate(cls, config: TransformerConfig, batch_size: int, device: torch.device,
                 ) -> KVCache:
        shape = (batch_size, config.num_heads, config.context_length, config.head_dim)
        return cls(
            keys=[torch.zeros(shape, device=device) for _ in range(config.num_layers)],
            values=[torch.zeros(shape, device=device) for _ in range(config.num_layers)],
        )


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"unknown device {device!r}") from error
    if resolved.type not in ("cpu", "cuda"):  # e.g. "meta" holds no data: it cannot decode
        raise UsageError(f"unsupported device {device!r}; use auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda requested but CUDA is not available")
    return resolved


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state dict as float32 numpy arrays (a checkpoint's content)."""
    return {name: tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            for name, tensor in model.state_dict().items()}


def model_from_arrays(config: TransformerConfig, arrays: dict[str, np.ndarray],
                      ) -> TransformerModel:
    """A model holding `arrays` (a state dict of numpy arrays, e.g. a checkpoint's)."""
    model = TransformerModel(config)
    model.load_state_dict({name: torch.from_numpy(np.array(array, dtype=np.float32))
                           for name, array in arrays.items()})
    return model
