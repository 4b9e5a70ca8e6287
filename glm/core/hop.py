"""Hop distances from each subgraph's target and their encoding (GraphLAMA's hop code, spec §1.4).

Distances are computed for a whole :class:`~glm.core.graph.SubgraphBatch` at once by frontier
expansion: ``max_hops`` rounds of gather/scatter over the edge list, no Python loop over nodes
or graphs. Edges are treated as undirected, as in the official code.

Distance coding (the value stored in ``Subgraph.hop`` / ``SubgraphBatch.hop``):
``0`` = target, ``k`` = k hops away (``1 <= k <= K``), ``K + 1`` = farther than ``K`` hops or
unreachable ("far"). A sampler should compute distances with ``max_hops`` at least the
model's ``K``; the encoder clamps anything above ``K`` to far.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import torch
from torch import Tensor, nn

from glm.core.graph import SubgraphBatch

HopMode = Literal["onehot", "official", "learned"]
HOP_MODES = ("onehot", "official", "learned")


def hop_distances(
    batch_or_edge_index: Union[SubgraphBatch, Tensor],
    ptr: Optional[Tensor] = None,
    max_hops: int = 2,
    target_index: Optional[Tensor] = None,
) -> Tensor:
    """Hop distance of every node from its own graph's target, for a batch of disjoint graphs.

    Args:
        batch_or_edge_index: a :class:`SubgraphBatch`, or a batched ``edge_index [2, E]``
            (node offsets already added, as in ``SubgraphBatch.edge_index``).
        ptr: ``[B + 1]`` node offsets (required with a bare ``edge_index``).
        max_hops: ``K``; distances above ``K`` (and unreachable nodes) become ``K + 1``.
        target_index: ``[B]`` rows of the targets; default ``ptr[:-1]`` (target first).

    Returns:
        ``[sum N_i]`` int64 distances in ``[0, K + 1]``.

    Cost: ``K`` rounds of ``O(E + N)`` tensor ops; works on any device.
    """
    if isinstance(batch_or_edge_index, SubgraphBatch):
        batch = batch_or_edge_index
        edge_index, ptr = batch.edge_index, batch.ptr
        target_index = batch.target_index if target_index is None else target_index
    else:
        edge_index = batch_or_edge_index
        if ptr is None:
            raise ValueError("hop_distances: `ptr` is required when passing a bare edge_index")
    if max_hops < 0:
        raise ValueError(f"hop_distances: max_hops must be >= 0, found {max_hops}")
    num_nodes = int(ptr[-1])
    device = edge_index.device
    if target_index is None:
        target_index = ptr[:-1]
    far = max_hops + 1
    dist = torch.full((num_nodes,), far, dtype=torch.long, device=device)
    visited = torch.zeros(num_nodes, dtype=torch.bool, device=device)
    visited[target_index] = True
    dist[target_index] = 0
    if edge_index.numel() == 0 or max_hops == 0:
        return dist
    src, dst = edge_index[0], edge_index[1]
    frontier = visited.clone()
    for k in range(1, max_hops + 1):
        # count frontier neighbours over both edge directions (undirected); int32 cannot overflow here
        reached = torch.zeros(num_nodes, dtype=torch.int32, device=device)
        reached.index_add_(0, dst, frontier[src].to(torch.int32))
        reached.index_add_(0, src, frontier[dst].to(torch.int32))
        new = (reached > 0) & ~visited
        if not bool(new.any()):
            break
        dist.masked_fill_(new, k)
        visited |= new
        frontier = new
    return dist


def reference_hop_distances(edge_index: Tensor, num_nodes: int, max_hops: int = 2, target: int = 0) -> Tensor:
    """Straightforward per-graph BFS with Python sets (the official algorithm); for tests and benchmarks.

    Args:
        edge_index: local ``[2, E]`` edges of one subgraph.
    Returns:
        ``[N]`` int64 distances coded as in :func:`hop_distances`.
    """
    neighbours: list[set[int]] = [set() for _ in range(num_nodes)]
    for a, b in edge_index.t().tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    dist = [max_hops + 1] * num_nodes
    dist[target] = 0
    seen = {target}
    frontier = {target}
    for k in range(1, max_hops + 1):
        nxt = set()
        for u in frontier:
            nxt |= neighbours[u]
        nxt -= seen
        for v in nxt:
            dist[v] = k
        seen |= nxt
        frontier = nxt
    return torch.tensor(dist, dtype=torch.long)


class HopEncoding(nn.Module):
    r"""Turns hop distances into the per-node code concatenated to the encoder output.

    Modes:
        * ``"onehot"`` (default): one-hot over ``K + 2`` classes ``{target, 1, ..., K, far}``;
          ``out_dim = K + 2``. Far nodes get their own class.
        * ``"official"`` (paper-compatible): the binary code of the distance, most significant
          bit first, ``ceil(log2(K + 1))`` bits, with far coded as all zeros -- for ``K = 2``
          exactly GraphLAMA's 2-bit code: target ``00``, 1-hop ``01``, 2-hop ``10``, farther
          ``00`` (far shares the target's code, the paper's behaviour).
        * ``"learned"``: ``nn.Embedding(K + 2, dim)``; ``out_dim = dim`` (default 2).

    In every mode the code is learned through the gate linears' extra input columns; the
    ``"learned"`` table adds its own parameters (``hop.table.weight``).

    Shapes:
        - input: ``hop [N]`` int64 distances (values above ``K`` or negative are treated as far)
        - output: ``[N, out_dim]`` in the table's / requested dtype
    """

    def __init__(self, max_hops: int = 2, mode: HopMode = "onehot", dim: int = 2) -> None:
        super().__init__()
        if mode not in HOP_MODES:
            raise ValueError(f"HopEncoding: mode must be one of {HOP_MODES}, found {mode!r}")
        if max_hops < 1:
            raise ValueError(f"HopEncoding: max_hops must be >= 1, found {max_hops}")
        self.max_hops = max_hops
        self.mode = mode
        self.num_classes = max_hops + 2
        if mode == "onehot":
            self.out_dim = self.num_classes
        elif mode == "official":
            self.out_dim = max(1, math.ceil(math.log2(max_hops + 1)))
        else:
            self.out_dim = dim
            self.table = nn.Embedding(self.num_classes, dim)
        if mode != "learned":
            self.register_buffer("codes", self._fixed_codes(), persistent=False)

    def _fixed_codes(self) -> Tensor:
        """``[K + 2, out_dim]`` float rows, indexed by clamped distance."""
        if self.mode == "onehot":
            return torch.eye(self.num_classes)
        bits = self.out_dim
        values = torch.arange(self.num_classes)
        values[-1] = 0  # far shares the target's code (paper behaviour)
        shifts = torch.arange(bits - 1, -1, -1)
        return ((values[:, None] >> shifts[None, :]) & 1).float()

    def classes(self, hop: Tensor) -> Tensor:
        """Clamp distances into class indices ``[0, K + 1]``; ``[N]`` int64."""
        far = self.max_hops + 1
        hop = hop.long()
        return torch.where((hop < 0) | (hop > far), torch.full_like(hop, far), hop)

    def forward(self, hop: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
        idx = self.classes(hop)
        out = self.table(idx) if self.mode == "learned" else self.codes[idx]
        return out if dtype is None else out.to(dtype)

    def extra_repr(self) -> str:
        return f"max_hops={self.max_hops}, mode={self.mode!r}, out_dim={self.out_dim}"
