"""GraphLAMA's node tokens: GNN -> hop code -> dual gate -> projector, one soft token per node.

Data path (``G`` graphs, ``N = sum N_i`` nodes, ``B`` samples)::

    SubgraphBatch --encoder--> H [N, d]
    hop distances [N] --HopEncoding--> P [N, p]
    [H ; P] --DualGate(task embedding of each node's sample)--> U [N, g]
    U --Projector--> Q [N, hidden]   (+ input_skip(X) with config.input_skip: a Linear F -> hidden)

Differences from the official code (BUPT-GAMMA/GraphLAMA ``grapht3/model/GraphLlama.py``;
``GraphLAMAConfig.paper_compatible()`` restores the paper's behaviour where it is a modelling
choice rather than a bug):

* every graph of a sample is gated and spliced (the official loop kept only the last one);
* link-prediction samples go through hop code and gates (official: bypassed) -- ``gate_multi_graph``;
* hop code ``onehot`` with a separate far class (official: 2-bit, far = target) -- ``hop_mode``;
* mixing weights through a sigmoid (official: unconstrained) -- ``alpha_mode``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from glm.core.graph import SubgraphBatch
from glm.core.hop_distance import hop_distances
from glm.core.method import MethodError, NodeTokenModule
from glm.core.projector import Projector
from glm.methods.graphlama.config import GraphLAMAConfig
from glm.methods.graphlama.gate import DualGate
from glm.methods.graphlama.hop import HopEncoding


def sample_of_node(graphs: SubgraphBatch, graphs_per_sample: Tensor, device: torch.device) -> Tensor:
    """``[N]`` index of the sample each node belongs to."""
    gps = graphs_per_sample.to(graphs.ptr.device).long()
    sample_of_graph = torch.repeat_interleave(torch.arange(gps.numel(), device=gps.device), gps)
    return sample_of_graph[graphs.batch].to(device)


class GraphLAMANodeTokens(NodeTokenModule):
    r"""GraphLAMA's graph side.

    Args:
        encoder: ``forward(SubgraphBatch) -> [N, graph_dim]`` (normally :class:`glm.core.encoder.GraphEncoder`).
        config: :class:`GraphLAMAConfig`.
        hidden_size: the LLM's hidden size.
        feature_dim: node feature width ``F``; needed with ``config.input_skip``.

    Submodules: ``encoder``, ``hop``, ``gate``, ``projector`` (and ``input_skip``).

    Shapes:
        - **graphs:** ``N`` nodes in ``G`` graphs (``x [N, F]``); **graphs_per_sample:** ``[B]``
        - **task_embedding:** ``[B, gate_dim]`` or ``None`` (the gate's default is used)
        - **output:** ``[N, hidden]``
    """

    def __init__(self, encoder: nn.Module, config: GraphLAMAConfig, hidden_size: int,
                 feature_dim: Optional[int] = None) -> None:
        super().__init__()
        if config.input_skip and not feature_dim:
            raise MethodError("GraphLAMAConfig: input_skip=True needs the node feature width (feature_dim)")
        self.config = config
        self.encoder = encoder
        self.hop = HopEncoding(config.max_hops, config.hop_mode, config.hop_dim)
        self.gate = DualGate(config.graph_dim + self.hop.out_dim, config.gate_dim,
                             config.alpha_init, config.alpha_mode)
        self.projector = Projector(config.gate_dim, hidden_size, config.projector, config.projector_hidden)
        self.input_skip = nn.Linear(int(feature_dim), hidden_size, bias=False) if config.input_skip else None
        if self.input_skip is not None:
            nn.init.zeros_(self.input_skip.weight)  # the paper's tokens at the start
        if not config.gate_multi_graph and config.graph_dim != config.gate_dim:
            raise MethodError(
                f"GraphLAMAConfig: gate_multi_graph=False feeds the encoder output to the projector, so "
                f"graph_dim ({config.graph_dim}) must equal gate_dim ({config.gate_dim})"
            )

    def set_task_embedding(self, embedding: Optional[Tensor]) -> None:
        self.gate.set_task_embedding(embedding)

    def forward(self, graphs: SubgraphBatch, graphs_per_sample: Tensor,
                task_embedding: Optional[Tensor] = None) -> Tensor:
        h = self.encoder(graphs)
        if h.dim() != 2 or h.shape != (graphs.num_nodes, self.config.graph_dim):
            raise ValueError(f"encoder output must be [N={graphs.num_nodes}, {self.config.graph_dim}], "
                             f"found {tuple(h.shape)}")
        hop = graphs.hop if graphs.hop is not None else hop_distances(graphs, max_hops=self.config.max_hops)
        z = torch.cat([h, self.hop(hop.to(h.device), dtype=h.dtype)], dim=-1)
        node_sample = sample_of_node(graphs, graphs_per_sample, h.device)
        e = None if task_embedding is None else task_embedding.to(h.device)[node_sample]
        u = self.gate(z, e)
        if not self.config.gate_multi_graph:
            multi = (graphs_per_sample.to(h.device) > 1)[node_sample]
            u = torch.where(multi[:, None], h, u)
        q = self.projector(u)
        if self.input_skip is not None:
            if graphs.x.shape[-1] != self.input_skip.in_features:
                raise ValueError(f"input_skip: node features must be [N, {self.input_skip.in_features}], "
                                 f"found {tuple(graphs.x.shape)}")
            q = q + self.input_skip(graphs.x.to(q.device, q.dtype))
        return q
