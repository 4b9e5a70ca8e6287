"""GraphGPT's options (``model.graphgpt: {...}``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from glm.core.projector import ProjectorKind


@dataclass
class GraphGPTConfig:
    """Graph side of GraphGPT: the GNN (``model.encoder``, default ``gt``) and a projector.

    Args:
        projector: ``"linear"`` (GraphGPT's ``graph_projector``) or ``"mlp"``.
        projector_hidden: hidden width of the MLP projector (default: LLM hidden size).
        train_graph_token_rows: let the 3 graph-token embeddings train (LLM stays frozen).

    GraphGPT keeps its (text-graph-grounded, pre-trained) GNN frozen; load one with
    ``training.init_from`` (``glm convert official-gt`` converts the released weights) or let it
    train with ``model.stage_extra=["encoder.*"]``.
    """

    projector: ProjectorKind = "linear"
    projector_hidden: Optional[int] = None
    train_graph_token_rows: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
