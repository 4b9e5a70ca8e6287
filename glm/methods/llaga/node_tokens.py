"""LLaGA's soft tokens: template slots -> 2-layer GELU MLP projector, ``k`` tokens per graph."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from glm.core.graph import SubgraphBatch
from glm.core.method import NodeTokenModule
from glm.core.projector import Projector
from glm.methods.llaga.config import LLaGAConfig
from glm.methods.llaga.templates import hop_field, neighbourhood_slots, tree_laplacian_pe


class Template(nn.Module):
    """The template's own tensors: a learnable placeholder for empty slots ``[feature_dim]`` and the
    slots' positional embedding ``laplacian_pe [S, P]`` (the neighbourhood tree's Laplacian
    eigenvectors; ``P = 0`` for the hop field). A buffer, saved in adapters so inference reads
    the same eigenbasis."""

    def __init__(self, config: LLaGAConfig, feature_dim: int) -> None:
        super().__init__()
        self.placeholder = nn.Parameter(torch.zeros(feature_dim))
        if config.template == "neighbourhood":
            pe = tree_laplacian_pe(config.tree, config.pe_dim)
        else:
            pe = torch.zeros(config.hops + 1, 0)
        self.register_buffer("laplacian_pe", pe)
        self.slots, self.pe_dim = int(pe.shape[0]), int(pe.shape[1])


class LLaGANodeTokens(NodeTokenModule):
    r"""LLaGA's graph side: no GNN; templates fed from glm's sampler, then an MLP projector.

    Args:
        config: :class:`LLaGAConfig`.
        feature_dim: node feature width ``F``.
        hidden_size: the LLM's hidden size.

    Submodules: ``template`` (placeholder, Laplacian PE), ``projector``.

    Shapes:
        - **graphs:** ``G`` graphs with ``x [N, F]``; **graphs_per_sample:** ``[B]``;
          **task_embedding:** ignored
        - **output:** ``[G * k, hidden]`` with ``k = tokens_per_graph`` (111 for tree ``[10, 10]``;
          ``hops + 1`` for the hop field)
    """

    def __init__(self, config: LLaGAConfig, feature_dim: int, hidden_size: int) -> None:
        super().__init__()
        if config.template == "neighbourhood" and (not config.tree or min(config.tree) < 1):
            raise ValueError(f"LLaGAConfig.tree must be positive fan-outs, found {config.tree}")
        if config.hops < 0:
            raise ValueError(f"LLaGAConfig.hops must be >= 0, found {config.hops}")
        self.config = config
        self.template = Template(config, feature_dim)
        self.tokens_per_graph = self.template.slots
        self.projector = Projector(feature_dim + self.template.pe_dim, hidden_size, "mlp", config.projector_hidden)

    def slot_features(self, graphs: SubgraphBatch) -> Tensor:
        """``[G, k, F (+ P)]`` template inputs before the projector."""
        x = graphs.x
        fill = self.template.placeholder.to(x.dtype)
        if self.config.template == "neighbourhood":
            idx = neighbourhood_slots(graphs, self.config.tree)
            feats = torch.where((idx >= 0)[..., None], x[idx.clamp(min=0)], fill)
        else:
            means, empty = hop_field(graphs, self.config.hops)
            feats = torch.where(empty[..., None], fill, means)
        pe = self.template.laplacian_pe.to(x.dtype).expand(feats.shape[0], -1, -1)
        return torch.cat([feats, pe], dim=-1)

    def forward(self, graphs: SubgraphBatch, graphs_per_sample: Tensor,
                task_embedding: Optional[Tensor] = None) -> Tensor:
        slots = self.slot_features(graphs)
        return self.projector(slots.reshape(-1, slots.shape[-1]))
