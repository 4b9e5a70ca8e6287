"""PyTorch Geometric backend (built-in plugin ``glm.backends.pyg``).

Registers the backend ``pyg`` (extra ``pyg``) and the layers ``gcn``, ``gat``, ``sage`` and
``gt`` built from PyG's own convolutions and ``MessagePassing``. ``torch_geometric`` is
imported inside functions only, so listing plugins never pays for (or needs) it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from glm.backends._layers import (
    GTLayer,
    GT_EPS,
    NeutralLayer,
    check_dims,
    gin_mlp,
    gt_scores,
    identity,
    mlp_neutral_map,
)
from glm.core.graph import SubgraphBatch
from glm.plugins import BackendSpec, hookimpl

NAME = "pyg"
_OPTIONAL = ("edge_weight", "hop", "node_ids")


class PygBackend:
    """Adapter between :class:`~glm.core.graph.SubgraphBatch` and PyG ``Data``.

    ``to_native`` stores the batch's tensors in a ``Data`` without copying them
    (``edge_weight``, ``batch``, ``ptr``, ``target_index``, ``hop`` and ``node_ids`` are kept
    as attributes); ``from_native`` also accepts a plain ``Data`` or a PyG ``Batch``.
    """

    name = NAME

    def to_native(self, batch: SubgraphBatch) -> Any:
        from torch_geometric.data import Data

        fields = {k: v for k, v in batch.__dict__.items() if isinstance(v, Tensor)}
        return Data(**fields)

    def from_native(self, obj: Any) -> SubgraphBatch:
        x, edge_index = obj.x, obj.edge_index
        n = int(x.shape[0])
        batch = getattr(obj, "batch", None)
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=x.device)
        ptr = getattr(obj, "ptr", None)
        if ptr is None:
            counts = torch.bincount(batch, minlength=int(batch.max()) + 1 if n else 1)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        target_index = getattr(obj, "target_index", None)
        if target_index is None:
            target_index = ptr[:-1]
        return SubgraphBatch(
            x=x, edge_index=edge_index, batch=batch, ptr=ptr, target_index=target_index,
            **{k: getattr(obj, k, None) for k in _OPTIONAL},
        )

    def unpack(self, obj: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        return obj.x, obj.edge_index, getattr(obj, "edge_weight", None)

    def prepare_device(self, device: torch.device) -> None:
        """PyG keeps no global device state: moving modules and tensors is enough."""


@functools.cache
def load_backend() -> PygBackend:
    import torch_geometric  # noqa: F401  (fail here, with the registry's hint, not mid-forward)

    return PygBackend()


# -- layers ------------------------------------------------------------------------------------
class PygGCN(NeutralLayer):
    r"""Graph convolution (Kipf & Welling) through ``torch_geometric.nn.GCNConv``.

    .. math::
        \mathbf{x}_i' = \mathbf{W}^\top \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \frac{e_{j,i}}{\sqrt{\hat d_j \hat d_i}} \mathbf{x}_j + \mathbf{b},
        \qquad \hat d_i = 1 + \sum_{j \in \mathcal{N}(i)} e_{j,i}

    Self loops (weight 1) are added to nodes that lack one. Uses ``edge_weight``.

    Args:
        in_dim: input size. out_dim: output size. bias: learn an additive bias.

    Shapes:
        - **input:** node features ``[N, in_dim]``, edge indices ``[2, E]``,
          edge weights ``[E]`` (optional)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``weight [out, in]``, ``bias [out]``.
    """

    layer_name, backend = "gcn", NAME

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        check_dims("gcn", in_dim, out_dim)
        self.conv = GCNConv(in_dim, out_dim, bias=bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index, edge_weight)

    def _neutral_map(self):
        out = {"weight": (self.conv.lin.weight, identity, identity)}
        if self.conv.bias is not None:
            out["bias"] = (self.conv.bias, identity, identity)
        return out


class PygGAT(NeutralLayer):
    r"""Graph attention (Veličković et al.) through ``torch_geometric.nn.GATConv``.

    .. math::
        \alpha_{ij} = \mathrm{softmax}_j\big(\mathrm{LeakyReLU}_{0.2}(
        \mathbf{a}_s^\top \mathbf{W}\mathbf{x}_j + \mathbf{a}_d^\top \mathbf{W}\mathbf{x}_i)\big),
        \qquad \mathbf{x}_i' = \Vert_{h} \sum_{j \in \mathcal{N}(i) \cup \{i\}} \alpha^h_{ij}
        \mathbf{W}^h \mathbf{x}_j + \mathbf{b}

    Existing self loops are replaced by one per node. ``edge_weight`` is ignored.

    Args:
        in_dim: input size. out_dim: output size, ``heads * C`` when ``concat`` else ``C``.
        heads: attention heads. concat: concatenate heads (else average).
        attn_dropout: dropout on the attention coefficients (training only).

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``weight [heads*C, in]``, ``att_src [heads, C]``, ``att_dst [heads, C]``,
    ``bias [out_dim]``.
    """

    layer_name, backend = "gat", NAME

    def __init__(self, in_dim: int, out_dim: int, heads: int = 1, concat: bool = True,
                 attn_dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        channels = check_dims("gat", in_dim, out_dim, heads if concat else None)
        self.conv = GATConv(in_dim, channels, heads=heads, concat=concat, dropout=attn_dropout, bias=bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index)

    def _neutral_map(self):
        squeeze, unsqueeze = (lambda t: t.squeeze(0)), (lambda t: t.unsqueeze(0))
        out = {
            "weight": (self.conv.lin.weight, identity, identity),
            "att_src": (self.conv.att_src, squeeze, unsqueeze),
            "att_dst": (self.conv.att_dst, squeeze, unsqueeze),
        }
        if self.conv.bias is not None:
            out["bias"] = (self.conv.bias, identity, identity)
        return out


class PygSAGE(NeutralLayer):
    r"""GraphSAGE with mean aggregation through ``torch_geometric.nn.SAGEConv``.

    .. math::
        \mathbf{x}_i' = \mathbf{W}_n \,\mathrm{mean}_{j \in \mathcal{N}(i)} \mathbf{x}_j
        + \mathbf{W}_r \mathbf{x}_i + \mathbf{b}

    A node without in-neighbours aggregates zeros. ``edge_weight`` is ignored.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``lin_neigh.weight [out, in]``, ``lin_root.weight [out, in]``, ``bias [out]``.
    """

    layer_name, backend = "sage", NAME

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        check_dims("sage", in_dim, out_dim)
        self.conv = SAGEConv(in_dim, out_dim, aggr="mean", bias=bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index)

    def _neutral_map(self):
        out = {
            "lin_neigh.weight": (self.conv.lin_l.weight, identity, identity),
            "lin_root.weight": (self.conv.lin_r.weight, identity, identity),
        }
        if self.conv.lin_l.bias is not None:
            out["bias"] = (self.conv.lin_l.bias, identity, identity)
        return out


class PygGIN(NeutralLayer):
    r"""Graph isomorphism network layer on ``torch_geometric.nn.GINConv`` (Xu et al., ICLR 2019), eps 0:

    .. math::
        \mathbf{x}'_i = \mathrm{MLP}\Big(\mathbf{x}_i + \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j\Big)

    ``edge_weight`` is ignored.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``mlp.0.weight [out, in]``, ``mlp.0.bias [out]``, ``mlp.2.weight [out, out]``, ``mlp.2.bias [out]``.
    """

    layer_name, backend = "gin", NAME

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv

        self.conv = GINConv(gin_mlp(in_dim, out_dim, bias), eps=0.0, train_eps=False)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index)

    def _neutral_map(self):
        return mlp_neutral_map(self.conv.nn)


@functools.cache
def _gt_attention_cls() -> type:
    from torch_geometric.nn import MessagePassing
    from torch_geometric.utils import scatter

    class GTAttention(MessagePassing):
        """Sparse multi-head attention of GraphLAMA's GTLayer (aggregates at ``edge_index[1]``)."""

        def __init__(self) -> None:
            super().__init__(aggr="sum", node_dim=0)

        def forward(self, q: Tensor, k: Tensor, v: Tensor, edge_index: Tensor) -> Tensor:
            return self.propagate(edge_index, q=q, k=k, v=v, size=(q.shape[0], q.shape[0]))

        def message(self, q_i: Tensor, k_j: Tensor, v_j: Tensor, index: Tensor, size_i: int) -> Tensor:
            score = gt_scores(q_i, k_j)  # [E, H]
            denom = scatter(score, index, dim=0, dim_size=size_i, reduce="sum")
            return (score / (denom.index_select(0, index) + GT_EPS)).unsqueeze(-1) * v_j

    return GTAttention


class PygGT(GTLayer):
    """GraphLAMA's graph-transformer layer (:class:`glm.backends._layers.GTLayer`) on PyG's
    ``MessagePassing``."""

    backend = NAME

    def make_attention(self) -> nn.Module:
        return _gt_attention_cls()()


LAYERS: dict[str, tuple[type[NeutralLayer], str]] = {
    "gcn": (PygGCN, "GCN (torch_geometric GCNConv), uses edge weights"),
    "gat": (PygGAT, "GAT (torch_geometric GATConv)"),
    "sage": (PygSAGE, "GraphSAGE mean (torch_geometric SAGEConv)"),
    "gt": (PygGT, "GraphLAMA graph transformer (torch_geometric MessagePassing)"),
    "gin": (PygGIN, "GIN, sum aggregation + 2-layer MLP (torch_geometric GINConv)"),
}


@hookimpl
def register_backends(register) -> None:
    register(BackendSpec(
        name=NAME, load=load_backend, requires=("torch_geometric",), extra="pyg",
        description="PyTorch Geometric (Data objects, PyG convolutions)",
    ))


@hookimpl
def register_gnn_layers(register) -> None:
    for name, (cls, description) in LAYERS.items():
        register(name, cls, backends=(NAME,), description=description)
