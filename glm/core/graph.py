"""Backend-neutral subgraph containers.

A :class:`Subgraph` is one sampled neighbourhood with the target node at local index 0.
A :class:`SubgraphBatch` concatenates several (PyG-style: node offsets added to
``edge_index``, a ``batch`` vector and ``ptr`` offsets). Backends convert a batch to their
own graph object (PyG ``Data`` / GammaGL ``Graph``) and back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
from torch import Tensor

from glm.errors import GlmError


class GraphValidationError(GlmError, ValueError):
    """A subgraph is malformed; the message names the field, the expected and the found value."""


@dataclass
class Subgraph:
    """One sampled subgraph.

    Attributes:
        x: node features, shape ``[N, F]``.
        edge_index: local edges, shape ``[2, E]``, int64, row 0 = source, row 1 = target
            (messages flow source -> target, as in PyG).
        target: local index of the target node; glm's samplers always put it at 0.
        edge_weight: optional, shape ``[E]``.
        node_ids: optional global ids of the nodes, shape ``[N]`` int64 (``node_ids[0]`` is the target).
        hop: optional hop distance of each node from the target, shape ``[N]`` int64
            (0 = target; see :mod:`glm.core.hop_distance` for how far/unreachable nodes are coded).
    """

    x: Tensor
    edge_index: Tensor
    target: int = 0
    edge_weight: Optional[Tensor] = None
    node_ids: Optional[Tensor] = None
    hop: Optional[Tensor] = None

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def validate(self, where: str = "subgraph") -> "Subgraph":
        """Raise :class:`GraphValidationError` on a malformed subgraph; return self."""
        n = self.num_nodes
        if self.x.dim() != 2:
            raise GraphValidationError(f"{where}: x must be [N, F], found shape {tuple(self.x.shape)}")
        if n == 0:
            raise GraphValidationError(f"{where}: x has no nodes (expected at least the target)")
        if not torch.isfinite(self.x).all():
            bad = (~torch.isfinite(self.x)).any(dim=1).nonzero().flatten()[:5].tolist()
            raise GraphValidationError(f"{where}: x has NaN/inf values (rows {bad}...)")
        ei = self.edge_index
        if ei.dim() != 2 or ei.shape[0] != 2:
            raise GraphValidationError(f"{where}: edge_index must be [2, E], found shape {tuple(ei.shape)}")
        if ei.dtype != torch.long:
            raise GraphValidationError(f"{where}: edge_index must be int64, found {ei.dtype}")
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise GraphValidationError(
                f"{where}: edge_index out of range: expected values in [0, {n - 1}],"
                f" found min {int(ei.min())} max {int(ei.max())}"
            )
        if self.target != 0:
            raise GraphValidationError(f"{where}: target must be local node 0, found {self.target}")
        if self.edge_weight is not None and tuple(self.edge_weight.shape) != (ei.shape[1],):
            raise GraphValidationError(
                f"{where}: edge_weight must be [E]=[{ei.shape[1]}], found {tuple(self.edge_weight.shape)}"
            )
        for name in ("node_ids", "hop"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (n,):
                raise GraphValidationError(f"{where}: {name} must be [N]=[{n}], found {tuple(t.shape)}")
        return self

    def to(self, device: torch.device | str) -> "Subgraph":
        return replace(
            self,
            **{k: getattr(self, k).to(device) for k in ("x", "edge_index", "edge_weight", "node_ids", "hop")
               if getattr(self, k) is not None},
        )


@dataclass
class SubgraphBatch:
    """Several subgraphs in one disjoint graph.

    Attributes:
        x: ``[sum N_i, F]``.
        edge_index: ``[2, sum E_i]`` int64, offset by each graph's first node.
        batch: ``[sum N_i]`` int64, graph index of every node.
        ptr: ``[B + 1]`` int64, node offsets; graph ``i`` owns rows ``ptr[i]:ptr[i+1]``.
        target_index: ``[B]`` int64, row of each graph's target (``ptr[:-1]`` for glm samplers).
        edge_weight: optional ``[sum E_i]``.
        hop: optional ``[sum N_i]`` int64 hop distances.
        node_ids: optional ``[sum N_i]`` int64 global ids.
    """

    x: Tensor
    edge_index: Tensor
    batch: Tensor
    ptr: Tensor
    target_index: Tensor
    edge_weight: Optional[Tensor] = None
    hop: Optional[Tensor] = None
    node_ids: Optional[Tensor] = None

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def sizes(self) -> list[int]:
        """Number of nodes of each graph, length ``B``."""
        return (self.ptr[1:] - self.ptr[:-1]).tolist()

    @classmethod
    def from_subgraphs(cls, graphs: Sequence[Subgraph]) -> "SubgraphBatch":
        if not graphs:
            raise GraphValidationError("SubgraphBatch.from_subgraphs: got no subgraphs")
        sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        ptr = torch.zeros(len(graphs) + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(sizes, 0)
        edge_index = torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], dim=1)
        batch = torch.repeat_interleave(torch.arange(len(graphs)), sizes)
        target_index = ptr[:-1] + torch.tensor([g.target for g in graphs], dtype=torch.long)

        def cat_optional(name: str) -> Optional[Tensor]:
            values = [getattr(g, name) for g in graphs]
            if all(v is None for v in values):
                return None
            if any(v is None for v in values):
                raise GraphValidationError(f"SubgraphBatch: {name} is set on some subgraphs but not all")
            return torch.cat(values)

        return cls(
            x=torch.cat([g.x for g in graphs]),
            edge_index=edge_index,
            batch=batch,
            ptr=ptr,
            target_index=target_index,
            edge_weight=cat_optional("edge_weight"),
            hop=cat_optional("hop"),
            node_ids=cat_optional("node_ids"),
        )

    def subgraphs(self) -> list[Subgraph]:
        """Split back into per-graph :class:`Subgraph` objects (inverse of ``from_subgraphs``)."""
        out = []
        edge_graph = self.batch[self.edge_index[0]] if self.edge_index.numel() else self.edge_index[0]
        for i in range(self.num_graphs):
            lo, hi = int(self.ptr[i]), int(self.ptr[i + 1])
            emask = edge_graph == i
            out.append(
                Subgraph(
                    x=self.x[lo:hi],
                    edge_index=self.edge_index[:, emask] - lo,
                    target=int(self.target_index[i]) - lo,
                    edge_weight=None if self.edge_weight is None else self.edge_weight[emask],
                    node_ids=None if self.node_ids is None else self.node_ids[lo:hi],
                    hop=None if self.hop is None else self.hop[lo:hi],
                )
            )
        return out

    def to(self, device: torch.device | str) -> "SubgraphBatch":
        return replace(
            self,
            **{k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, Tensor)},
        )
