"""Graph encoder: a stack of registry GNN layers on one backend.

Layer contract (what ``register_gnn_layers`` factories return)::

    layer = factory(in_dim, out_dim, **options)          # torch.nn.Module
    h = layer(x, edge_index, edge_weight=None)           # [N, in] -> [N, out]
    layer.neutral_state_dict() -> dict[str, Tensor]      # backend-neutral parameter layout
    layer.load_neutral_state_dict(state) -> None         # inverse; raises on missing/shape mismatch

Neutral layouts (PyG's conventions; weights are ``[out, in]`` as in ``torch.nn.Linear``):

============  ==========================================================================
``gcn``       ``weight [out, in]``, ``bias [out]``. PyG ``GCNConv`` semantics: self loops
              added, symmetric normalisation with weighted in-degrees.
``gat``       ``weight [heads*C, in]``, ``att_src [heads, C]``, ``att_dst [heads, C]``,
              ``bias [heads*C]`` (concat) or ``[C]``; self loops added, LeakyReLU 0.2.
              ``out_dim`` is ``heads*C`` when concatenating.
``sage``      ``lin_neigh.weight [out, in]``, ``lin_root.weight [out, in]``, ``bias [out]``;
              mean aggregation, ``lin_neigh(mean_j x_j) + lin_root(x_i) + bias``.
``gt``        ``wq``, ``wk``, ``wv`` ``[d, d]`` (no bias), ``norm.weight [d]``, ``norm.bias [d]``;
              GraphLAMA's sparse graph-transformer layer (spec §1.3): per head,
              ``a_ij = exp(clamp(<q_i, k_j>, -10, 10))`` normalised over the incoming edges of
              ``i``, ``h_i' = LayerNorm(h_i + sum_j a_ij v_j)``; ``q = x wq^T`` etc.
============  ==========================================================================

The official GraphLAMA code aggregates the graph transformer at ``edge_index[0]``; glm
follows PyG's source -> target flow (aggregate at ``edge_index[1]``). On the symmetric
subgraphs glm's samplers produce the two agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor, nn

from glm.core.graph import SubgraphBatch


@dataclass
class EncoderConfig:
    """Configuration of a :class:`GraphEncoder`.

    Args:
        layer: registered GNN layer name (``gt``, ``gcn``, ``gat``, ``sage`` or a plugin's).
        in_dim: node feature size (128 in GraphLAMA).
        hidden_dim: width inside the stack.
        out_dim: output size ``d`` (the gate input is ``d + hop_dim``).
        num_layers: number of GNN layers.
        heads: attention heads (``gt``, ``gat``).
        dropout: dropout after the input projection (``gt``) or between layers.
        input_proj / output_proj: add ``Linear(in_dim, hidden_dim)`` before and
            ``Linear(hidden_dim, out_dim)`` after the stack (GraphLAMA's ``W_P`` / ``inverW_P``);
            ``None`` = on for ``gt``, off otherwise.
        activation: between conv layers (``relu``, ``gelu``, ``none``); ``gt`` uses none.
        options: extra keyword arguments for the layer factory.
    """

    layer: str = "gt"
    in_dim: int = 128
    hidden_dim: int = 128
    out_dim: int = 128
    num_layers: int = 3
    heads: int = 8
    dropout: float = 0.1
    input_proj: Optional[bool] = None
    output_proj: Optional[bool] = None
    activation: str = "relu"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
