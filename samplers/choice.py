"""One seeded choice among scored candidates: temperature and top-k.

Every sampler reduces to this. A candidate's score is its cost in bits: a code-length
difference ℓ(x·c) − ℓ(x), or −log2 p(c | x) for a model. Costs become probabilities the
paper's way, p(c) ∝ 2^(−cost / T).
"""

from __future__ import annotations

import numpy as np


def choose(cost_bits: np.ndarray, temperature: float, top_k: int | None,
           rng: np.random.Generator) -> int:
    """Index of one candidate, drawn with probability ∝ 2^(−cost / T) among the top k.

    T = 1 is the compressor's own distribution; larger T flattens it, smaller T sharpens
    it, and T = 0 is greedy: uniform among the cheapest candidates (byte-granular codecs
    often tie, and a fixed tie-break would always pick the lowest byte value). For the
    same reason top-k keeps every candidate at least as cheap as the k-th cheapest, ties
    included. The draw is one `rng.random()` against the cumulative weights, so the same
    costs and generator state give the same index.
    """
    cost = np.asarray(cost_bits, dtype=np.float64)
    allowed = np.ones(len(cost), dtype=bool)
    if top_k is not None and top_k < len(cost):
        allowed = cost <= np.partition(cost, top_k - 1)[top_k - 1]
    cheapest = cost[allowed].min()
    if temperature == 0:
        weights = (allowed & (cost == cheapest)).astype(np.float64)
    else:
        weights = np.where(allowed, np.exp2(-(cost - cheapest) / temperature), 0.0)
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(cost) - 1)
