"""GraphLAMA's options (``model.graphlama: {...}``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from glm.core.projector import ProjectorKind
from glm.methods.graphlama.gate import AlphaMode
from glm.methods.graphlama.hop import HopMode


@dataclass
class GraphLAMAConfig:
    """Graph side of GraphLAMA (defaults: the paper's sizes, glm's bug fixes).

    Args:
        graph_dim: encoder output size ``d`` (128); must equal ``model.encoder.out_dim``.
        max_hops: ``K`` of the hop code (2).
        hop_mode: ``"onehot"`` (K+2 classes), ``"official"`` (2-bit, paper) or ``"learned"`` (embedding table).
        hop_dim: width of the ``"learned"`` hop table.
        gate_dim: gate output size = task-embedding size (128).
        alpha_mode: ``"sigmoid"`` or ``"free"`` (paper).
        alpha_init: initial mixing weights (0.5).
        projector: ``"linear"`` (paper) or ``"mlp"``.
        projector_hidden: hidden width of the MLP projector (default: LLM hidden size).
        gate_multi_graph: gate samples with several graphs (link prediction) too; ``False``
            reproduces the official bypass (encoder output straight to the projector; needs
            ``graph_dim == gate_dim``).
        train_graph_token_rows: let the 3 graph-token embeddings train (LLM stays frozen).
        input_skip: add a linear map of each node's input features ``X`` (SGC-propagated with
            ``data.propagate``) to its soft token, a path around encoder, gate and projector (glm's option,
            off in the paper; zero at the start, trained in pre-training and adaptation).
    """

    graph_dim: int = 128
    max_hops: int = 2
    hop_mode: HopMode = "onehot"
    hop_dim: int = 2
    gate_dim: int = 128
    alpha_mode: AlphaMode = "sigmoid"
    alpha_init: float = 0.5
    projector: ProjectorKind = "linear"
    projector_hidden: Optional[int] = None
    gate_multi_graph: bool = True
    train_graph_token_rows: bool = False
    input_skip: bool = False

    @classmethod
    def paper_compatible(cls, **overrides: Any) -> "GraphLAMAConfig":
        """The official code's choices: 2-bit hop code, unconstrained α, no gates for link prediction."""
        return replace(cls(hop_mode="official", alpha_mode="free", gate_multi_graph=False), **overrides)

    @property
    def task_embedding_dim(self) -> int:
        """Width of the frozen task-text embedding the task-related gate reads."""
        return self.gate_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
