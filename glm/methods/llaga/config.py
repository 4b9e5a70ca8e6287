"""LLaGA's options (``model.llaga: {...}``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Optional

TemplateKind = Literal["neighbourhood", "hop_field"]


@dataclass
class LLaGAConfig:
    """LLaGA's templates and projector (no GNN).

    Args:
        template: ``"neighbourhood"`` (neighbourhood-detail template: a fixed-shape computation
            tree, one token per slot) or ``"hop_field"`` (one token per hop: mean features).
        tree: fan-out of the neighbourhood tree; ``None`` = ``data.fanout`` (the default ``[10, 10]``
            gives 1 + 10 + 100 slots, LLaGA's ``sample_neighbor_size=10``, ``use_hop=2``). Slots are
            filled from glm's sampler, so a tree wider than ``data.fanout`` leaves slots empty.
        pe_dim: Laplacian positional-embedding width per slot (``None``: all eigenvectors of the
            template tree, as LLaGA).
        hops: hops of the hop-field template (tokens = hops + 1; LLaGA uses 4).
        projector_hidden: hidden width of the 2-layer GELU MLP (default: LLM hidden size).
        train_graph_token_rows: let the 3 graph-token embeddings train (LLM stays frozen).
    """

    template: TemplateKind = "neighbourhood"
    tree: Optional[list[int]] = None
    pe_dim: Optional[int] = None
    hops: int = 4
    projector_hidden: Optional[int] = None
    train_graph_token_rows: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
