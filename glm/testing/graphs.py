"""Small random graphs for conformance tests, built without touching the global RNG."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class GraphCase:
    """The inputs of one GNN layer call.

    Attributes:
        x: node features ``[N, F]``.
        edge_index: ``[2, E]`` int64, row 0 = source, row 1 = target.
        edge_weight: optional ``[E]``.
    """

    x: Tensor
    edge_index: Tensor
    edge_weight: Optional[Tensor] = None

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GraphCase":
        """Move to ``device``; cast the floating tensors (``x``, ``edge_weight``) to ``dtype``."""
        w = self.edge_weight
        return GraphCase(
            x=self.x.to(device=device, dtype=dtype),
            edge_index=self.edge_index.to(device=device),
            edge_weight=None if w is None else w.to(device=device, dtype=dtype),
        )

    def with_weights(self, edge_weight: Optional[Tensor]) -> "GraphCase":
        return replace(self, edge_weight=edge_weight)

    def permute_nodes(self, perm: Tensor) -> "GraphCase":
        """Relabel nodes: new node ``i`` is old node ``perm[i]`` (edges follow their nodes)."""
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel(), device=perm.device)
        return replace(self, x=self.x[perm], edge_index=inverse[self.edge_index])

    def permute_edges(self, perm: Tensor) -> "GraphCase":
        """Reorder the edge list (and the weights with it)."""
        w = self.edge_weight
        return replace(self, edge_index=self.edge_index[:, perm], edge_weight=None if w is None else w[perm])

    def args(self) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        return self.x, self.edge_index, self.edge_weight


def random_graph(
    num_nodes: int = 12,
    num_edges: int = 40,
    in_dim: int = 16,
    *,
    seed: int = 0,
    edge_weight: bool = False,
    dtype: torch.dtype = torch.float32,
) -> GraphCase:
    """A random directed graph without self loops or repeated edges.

    Every node gets at least one incoming edge (a ring ``i -> i+1``), so attention and
    normalisation paths see real neighbourhoods. Weights, if asked, lie in ``[0.5, 1.5]``.
    """
    if num_nodes < 2:
        raise ValueError(f"random_graph: num_nodes must be >= 2, found {num_nodes}")
    max_edges = num_nodes * (num_nodes - 1)
    if not num_nodes <= num_edges <= max_edges:
        raise ValueError(f"random_graph: num_edges must be in [{num_nodes}, {max_edges}], found {num_edges}")
    gen = torch.Generator().manual_seed(seed)
    ring = torch.arange(num_nodes)
    pairs = {(int(s), int(d)) for s, d in zip(ring, (ring + 1) % num_nodes)}
    while len(pairs) < num_edges:
        s, d = torch.randint(num_nodes, (2,), generator=gen).tolist()
        if s != d:
            pairs.add((s, d))
    edge_index = torch.tensor(sorted(pairs), dtype=torch.long).t().contiguous()
    x = torch.randn(num_nodes, in_dim, generator=gen, dtype=dtype)
    w = torch.rand(num_edges, generator=gen, dtype=dtype) + 0.5 if edge_weight else None
    return GraphCase(x, edge_index, w)


def empty_graph(num_nodes: int = 5, in_dim: int = 16, *, seed: int = 0) -> GraphCase:
    """Nodes without any edge: ``edge_index`` has shape ``[2, 0]``."""
    gen = torch.Generator().manual_seed(seed)
    return GraphCase(torch.randn(num_nodes, in_dim, generator=gen), torch.empty(2, 0, dtype=torch.long))
