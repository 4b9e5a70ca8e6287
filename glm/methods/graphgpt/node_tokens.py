"""GraphGPT's node tokens: GNN -> projector, one soft token per node.

GraphGPT (Tang et al., SIGIR'24; official code HKUDS/GraphGPT ``graphgpt/model/GraphLlama.py``):
the graph tower's node embeddings go through ``graph_projector`` (one linear layer) and replace
the ``<g_patch>`` tokens of the prompt.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from glm.core.graph import SubgraphBatch
from glm.core.method import NodeTokenModule
from glm.core.projector import Projector
from glm.methods.graphgpt.config import GraphGPTConfig


class GraphGPTNodeTokens(NodeTokenModule):
    r"""GraphGPT's graph side.

    Args:
        encoder: ``forward(SubgraphBatch) -> [N, graph_dim]``.
        graph_dim: encoder output width.
        config: :class:`GraphGPTConfig`.
        hidden_size: the LLM's hidden size.

    Submodules: ``encoder``, ``projector``.

    Shapes:
        - **graphs:** ``N`` nodes; **graphs_per_sample:** ``[B]``; **task_embedding:** ignored
        - **output:** ``[N, hidden]``
    """

    def __init__(self, encoder: nn.Module, graph_dim: int, config: GraphGPTConfig, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.projector = Projector(graph_dim, hidden_size, config.projector, config.projector_hidden)

    def forward(self, graphs: SubgraphBatch, graphs_per_sample: Tensor,
                task_embedding: Optional[Tensor] = None) -> Tensor:
        return self.projector(self.encoder(graphs))
