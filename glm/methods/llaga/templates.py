"""LLaGA's graph-to-sequence templates, fed from glm's sampled subgraphs.

LLaGA (Chen et al., ICML'24; official code VITA-Group/LLaGA, ``utils/data_process.py``:
``get_fix_shape_subgraph_sequence_fast`` and the ``*_hop_x`` features) turns a node's
neighbourhood into a fixed-length sequence:

* **neighbourhood detail**: a computation tree of fixed shape; with tree ``[10, 10]`` slot 0 is
  the target, slots 1-10 its sampled neighbours, then 10 slots under each of them (111 slots);
  missing neighbours are a placeholder. Each slot carries the Laplacian eigenvectors of the
  template tree as its positional embedding. glm reads the tree off its own sampler's subgraph:
  the children of a node are its neighbours one hop farther from the target, in edge order.
* **hop field**: one vector per hop ``k = 0..K``. LLaGA propagates features over the whole graph
  (``A_hat^k X``); glm averages the features of the sampled nodes ``k`` hops away (a sampled
  subgraph reaches ``len(data.fanout)`` hops; farther hops get the placeholder).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from glm.core.graph import SubgraphBatch
from glm.core.hop_distance import hop_distances

EMPTY = -1


def tree_size(tree: Sequence[int]) -> int:
    """Slots of a complete tree: ``[10, 10]`` -> 1 + 10 + 100 = 111."""
    total, level = 1, 1
    for f in tree:
        level *= int(f)
        total += level
    return total


def tree_laplacian_pe(tree: Sequence[int], dim: int | None = None) -> Tensor:
    """Eigenvectors of the symmetric normalised Laplacian of the template tree, ``[S, dim]``.

    Sorted by eigenvalue (the constant-like first vector included, as LLaGA); each column's sign
    is fixed so that its largest-magnitude entry is positive (eigenvectors are defined up to sign).
    """
    size = tree_size(tree)
    adj = torch.zeros(size, size, dtype=torch.float64)
    parents, nxt = [0], 1
    for f in tree:
        level = []
        for p in parents:
            for _ in range(int(f)):
                adj[p, nxt] = adj[nxt, p] = 1.0
                level.append(nxt)
                nxt += 1
        parents = level
    inv_sqrt = adj.sum(1).clamp(min=1).rsqrt()
    lap = torch.eye(size, dtype=torch.float64) - inv_sqrt[:, None] * adj * inv_sqrt[None, :]
    _, vectors = torch.linalg.eigh(lap)
    vectors = vectors[:, : (dim or size)]
    idx = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[idx, torch.arange(vectors.shape[1])])
    return (vectors * signs).float()


def neighbourhood_slots(graphs: SubgraphBatch, tree: Sequence[int]) -> Tensor:
    """Row of the node in each slot of each graph's template tree: ``[G, S]`` (``-1`` = empty).

    Shapes:
        - **graphs:** ``G`` graphs, ``N`` nodes (rows of ``graphs.x``)
        - **output:** ``[G, tree_size(tree)]`` int64 indices into ``graphs.x`` or ``-1``
    """
    hop = graphs.hop if graphs.hop is not None else hop_distances(graphs, max_hops=len(tree))
    hop = hop.cpu().tolist()
    children: dict[int, list[int]] = {}
    for u, v in graphs.edge_index.cpu().t().tolist():
        if hop[v] == hop[u] + 1 and v not in children.setdefault(u, []):
            children[u].append(v)
    rows = []
    for target in graphs.target_index.cpu().tolist():
        level, slots = [target], [target]
        for f in tree:
            nxt: list[int] = []
            for u in level:
                kids = children.get(u, [])[: int(f)] if u != EMPTY else []
                nxt += kids + [EMPTY] * (int(f) - len(kids))
            slots += nxt
            level = nxt
        rows.append(slots)
    return torch.tensor(rows, dtype=torch.long, device=graphs.x.device)


def hop_field(graphs: SubgraphBatch, hops: int) -> tuple[Tensor, Tensor]:
    """Mean node feature per hop ``0..hops`` of each graph and which of them are empty.

    Shapes:
        - **output:** ``([G, hops + 1, F], [G, hops + 1] bool empty)``
    """
    hop = graphs.hop if graphs.hop is not None else hop_distances(graphs, max_hops=hops)
    hop = hop.to(graphs.x.device)
    keep = hop <= hops
    g, k = graphs.num_graphs, hops + 1
    cell = (graphs.batch.to(graphs.x.device) * k + hop.clamp(max=hops))[keep]
    sums = torch.zeros(g * k, graphs.x.shape[1], dtype=graphs.x.dtype, device=graphs.x.device)
    sums.index_add_(0, cell, graphs.x[keep])
    counts = torch.zeros(g * k, dtype=graphs.x.dtype, device=graphs.x.device)
    counts.index_add_(0, cell, torch.ones_like(cell, dtype=graphs.x.dtype))
    means = sums / counts.clamp(min=1)[:, None]
    return means.view(g, k, -1), (counts == 0).view(g, k)
