"""Hop distances from each subgraph's target, for a whole batch at once.

Distances are computed for a whole :class:`~glm.core.graph.SubgraphBatch` at once by frontier
expansion: ``max_hops`` rounds of gather/scatter over the edge list, no Python loop over nodes
or graphs. Edges are treated as undirected, as in the official code.

Distance coding (the value stored in ``Subgraph.hop`` / ``SubgraphBatch.hop``):
``0`` = target, ``k`` = k hops away (``1 <= k <= K``), ``K + 1`` = farther than ``K`` hops or
unreachable ("far"). A sampler should compute distances with ``max_hops`` at least the
model's ``K``; a method's hop code clamps anything above ``K`` to far.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from glm.core.graph import SubgraphBatch

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
