"""GammaGL backend (built-in plugin ``glm.backends.gammagl``).

Registers the backend ``gammagl`` (extra ``gammagl``) and the layers ``gcn``, ``gat``,
``sage`` and ``gt`` built from GammaGL's own convolutions, ``MessagePassing`` and segment
ops. Neither gammagl nor tensorlayerx is imported at module import time; the first layer or
backend load goes through :func:`glm.backends._gammagl_compat.load_gammagl` (the shim).

Every GammaGL call runs inside :func:`~glm.backends._gammagl_compat.device_scope`, so the
framework's helper tensors land on the inputs' device without changing torch's process-wide
default device.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from glm.backends import _gammagl_compat as compat
from glm.backends._layers import (
    GTLayer,
    GT_EPS,
    NeutralLayer,
    check_dims,
    flat,
    gin_mlp,
    gt_scores,
    identity,
    row,
    transpose,
    mlp_neutral_map,
)
from glm.core.graph import SubgraphBatch
from glm.plugins import BackendSpec, hookimpl

NAME = "gammagl"
_EXTRA_FIELDS = ("batch", "ptr", "target_index", "edge_weight", "hop", "node_ids")


# -- pure-torch graph utilities (same semantics as PyG's, without importing PyG) -----------------
def add_remaining_self_loops(edge_index: Tensor, edge_weight: Tensor, num_nodes: int,
                             fill_value: float = 1.0) -> tuple[Tensor, Tensor]:
    """Give every node exactly one self loop: an existing loop keeps its weight (the last one if
    repeated), missing loops get ``fill_value``. Loops are appended after the other edges."""
    is_loop = edge_index[0] == edge_index[1]
    loop_weight = edge_weight.new_full((num_nodes,), fill_value)
    loop_weight[edge_index[0, is_loop]] = edge_weight[is_loop]
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    keep = ~is_loop
    return torch.cat([edge_index[:, keep], loops], 1), torch.cat([edge_weight[keep], loop_weight])


def gcn_norm(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int,
             dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Symmetric GCN normalisation with self loops, ``w_ji / sqrt(d_j d_i)`` where ``d`` is the
    weighted in-degree (PyG's ``gcn_norm`` with ``add_self_loops=True``).

    Shapes: ``[2, E]``, ``[E]`` or None -> ``[2, E']``, ``[E']`` with ``E' = E - loops + N``.
    """
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.shape[1], dtype=dtype, device=edge_index.device)
    edge_index, edge_weight = add_remaining_self_loops(edge_index, edge_weight, num_nodes)
    deg = edge_weight.new_zeros(num_nodes).scatter_add_(0, edge_index[1], edge_weight)
    inv_sqrt = deg.pow(-0.5).masked_fill(deg == 0, 0.0)
    return edge_index, inv_sqrt[edge_index[0]] * edge_weight * inv_sqrt[edge_index[1]]


def with_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Drop existing self loops and add one per node (what PyG's ``GATConv`` does)."""
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    return torch.cat([edge_index[:, edge_index[0] != edge_index[1]], loops], 1)


# -- GammaGL convolutions evaluated in PyG's operation order --------------------------------------
def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along dim 0 through ``index_select`` (tlx.gather's ``x[idx]`` backward sums
    bf16 gradients less accurately on high in-degrees)."""
    return x.index_select(0, index)


def segment_softmax(logits: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of ``logits [E, H]`` over the edges sharing ``index``, on gammagl's segment ops.

    Same forward as ``gammagl.utils.segment_softmax``, but the segment maximum is taken from the
    detached logits (it cancels mathematically), as PyG's ``softmax`` does, and rows are gathered
    with ``index_select``. With gammagl's own softmax the rounded gradient through the maximum
    and ``x[idx]``'s backward leave bf16 gradients of ``att`` up to 2.6e-2 (scaled) from PyG's
    on Cora; with this one they match.
    """
    from gammagl.mpops import unsorted_segment_max, unsorted_segment_sum

    shifted = (logits - gather_rows(unsorted_segment_max(logits.detach(), index, num_segments), index)).exp()
    denom = unsorted_segment_sum(shifted, index, num_segments) + 1e-16
    return shifted / gather_rows(denom, index)


@functools.cache
def _gat_conv_cls() -> type:
    gammagl = compat.load_gammagl()

    class GATConv(gammagl.layers.conv.GATConv):
        """gammagl's ``GATConv`` with PyG's order of operations: one attention logit per node
        and side (``<W x, a_src>``, ``<W x, a_dst>``) summed per edge, instead of one reduction
        over ``[W x_j | W x_i]`` per edge. Same parameters, same maths."""

        def forward(self, x: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
            c = self.out_channels
            x = torch.matmul(x, self.w).view(-1, self.heads, c)
            logit_src = (x * self.att[..., :c]).sum(-1)  # [N, H]
            logit_dst = (x * self.att[..., c:]).sum(-1)
            logits = gather_rows(logit_src, edge_index[0]) + gather_rows(logit_dst, edge_index[1])
            alpha = self.dropout(segment_softmax(self.leaky_relu(logits), edge_index[1], num_nodes))
            x = self.propagate(x, edge_index, num_nodes=num_nodes, edge_weight=alpha)
            x = x.reshape(-1, self.heads * c) if self.concat else x.mean(dim=1)
            return x + self.bias if self.add_bias else x

        def message(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
            return edge_weight.unsqueeze(-1) * gather_rows(x, edge_index[0])

    return GATConv


@functools.cache
def _sage_conv_cls() -> type:
    gammagl = compat.load_gammagl()

    class SAGEConv(gammagl.layers.conv.SAGEConv):
        """gammagl's mean ``SAGEConv`` with PyG's order of operations: the raw neighbour
        features are averaged, then ``fc_neigh`` (and the bias) is applied, instead of
        averaging ``fc_neigh(x_j)``. Same parameters, same maths."""

        def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
            mean = self.propagate(x, edge_index, edge_weight=None, num_nodes=x.shape[0], aggr="mean")
            if self.add_bias:  # one rounding for matmul + bias, as PyG's ``lin_l`` (addmm)
                out = torch.addmm(self.bias, mean, self.fc_neigh.weights)
            else:
                out = self.fc_neigh(mean)
            return out + self.fc_self(x)

        def message(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
            return gather_rows(x, edge_index[0])

    return SAGEConv


@functools.cache
def _gin_conv_cls() -> type:
    gammagl = compat.load_gammagl()

    class GINConv(gammagl.layers.conv.GINConv):
        """gammagl's ``GINConv`` gathering the neighbour rows with ``index_select`` as PyG does, so that the
        backward accumulates alike (bf16 gradients round alike)."""

        def message(self, x: Tensor, edge_index: Tensor) -> Tensor:
            return gather_rows(x, edge_index[0])

    return GINConv


# -- backend -----------------------------------------------------------------------------------
class GammaglBackend:
    """Adapter between :class:`~glm.core.graph.SubgraphBatch` and ``gammagl.data.Graph``.

    ``to_native`` builds a ``Graph`` holding the batch's tensors (GammaGL keeps torch tensors
    as they are, no copy); the batch fields travel as extra attributes. ``from_native`` also
    accepts a plain ``Graph`` (one graph, target at node 0).
    """

    name = NAME

    def to_native(self, batch: SubgraphBatch) -> Any:
        gammagl = compat.load_gammagl()
        extra = {k: getattr(batch, k) for k in _EXTRA_FIELDS if getattr(batch, k) is not None}
        return gammagl.data.Graph(x=batch.x, edge_index=batch.edge_index, **extra)

    def from_native(self, obj: Any) -> SubgraphBatch:
        store = obj._store  # Graph.__getattr__ raises on absent keys in some versions

        def get(key: str) -> Tensor | None:
            return store[key] if key in store else None

        x, edge_index = get("x"), get("edge_index")
        batch = get("batch")
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        ptr = get("ptr")
        if ptr is None:
            counts = torch.bincount(batch, minlength=1)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        target_index = get("target_index")
        return SubgraphBatch(
            x=x, edge_index=edge_index, batch=batch, ptr=ptr,
            target_index=ptr[:-1] if target_index is None else target_index,
            edge_weight=get("edge_weight"), hop=get("hop"), node_ids=get("node_ids"),
        )

    def unpack(self, obj: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        store = obj._store
        return store["x"], store["edge_index"], store["edge_weight"] if "edge_weight" in store else None

    def prepare_device(self, device: torch.device) -> None:
        """GammaGL creates helper tensors on torch's default device. glm never changes that
        default globally: each layer call runs in :func:`compat.device_scope` for its input's
        device. Here only the device kind is checked (tlx supports CPU and CUDA)."""
        device = torch.device(device)
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"gammagl backend: device {device} is not supported (cpu or cuda)")


@functools.cache
def load_backend() -> GammaglBackend:
    compat.load_gammagl()
    return GammaglBackend()


# -- layers ------------------------------------------------------------------------------------
class GammaglLayer(NeutralLayer):
    """Base: loads gammagl through the shim, keeps tlx's ``is_train`` flag in step with
    torch's ``train()``/``eval()``, and scopes the default device around each call."""

    backend = NAME

    @staticmethod
    def _convs() -> Any:
        """``gammagl.layers.conv``, imported through the shim."""
        return compat.load_gammagl().layers.conv

    def train(self, mode: bool = True) -> "GammaglLayer":
        super().train(mode)
        for module in self.modules():
            if hasattr(module, "is_train"):
                module.is_train = mode
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x = args[0] if args else kwargs["x"]
        with compat.device_scope(x.device):
            return super().__call__(*args, **kwargs)


class GammaglGCN(GammaglLayer):
    r"""Graph convolution on ``gammagl.layers.conv.GCNConv``; same maths as the PyG ``gcn``.

    GammaGL's own ``'both'`` normalisation uses unweighted out-/in-degrees and no self loops,
    so the conv runs with ``norm='none'`` on :func:`gcn_norm` weights (self loops included).
    Uses ``edge_weight``.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, ``[E]`` (optional)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``weight [out, in]`` (GammaGL ``linear.weights`` is ``[in, out]``),
    ``bias [out]`` (GammaGL ``[1, out]``).
    """

    layer_name = "gcn"

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        check_dims("gcn", in_dim, out_dim)
        self.conv = self._convs().GCNConv(in_dim, out_dim, norm="none", add_bias=bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        edge_index, weight = gcn_norm(edge_index, edge_weight, x.shape[0], x.dtype)
        return self.conv(x, edge_index, edge_weight=weight)

    def _neutral_map(self):
        out = {"weight": (self.conv.linear.weights, transpose, transpose)}
        if self.conv.add_bias:
            out["bias"] = (self.conv.bias, flat, row)
        return out


class GammaglGAT(GammaglLayer):
    r"""Graph attention on ``gammagl.layers.conv.GATConv``; same maths as the PyG ``gat``, in
    PyG's order of operations (see :func:`_gat_conv_cls`), so bf16 results round alike.

    Self loops are added here (existing ones replaced) and ``num_nodes`` is always passed.
    GammaGL's ``GATConv`` also creates a ``linear`` sub-layer that its forward never uses; it is
    removed so that it neither costs memory nor appears as a parameter without gradient.
    ``edge_weight`` is ignored.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``weight [heads*C, in]`` (GammaGL ``w`` is ``[in, heads*C]``),
    ``att_src``/``att_dst [heads, C]`` (GammaGL ``att [1, heads, 2C]`` = ``[src | dst]``), ``bias``.
    """

    layer_name = "gat"

    def __init__(self, in_dim: int, out_dim: int, heads: int = 1, concat: bool = True,
                 attn_dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.channels = check_dims("gat", in_dim, out_dim, heads if concat else None)
        self.conv = _gat_conv_cls()(
            in_dim, self.channels, heads=heads, concat=concat, dropout_rate=attn_dropout, add_bias=bias)
        del self.conv.linear  # unused by GATConv.forward
        if bias:
            nn.init.zeros_(self.conv.bias)  # as PyG (GammaGL draws a truncated normal)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        n = x.shape[0]
        return self.conv(x, with_self_loops(edge_index, n), num_nodes=n)

    def _neutral_map(self):
        c = self.channels
        out = {
            "weight": (self.conv.w, transpose, transpose),
            "att_src": (self.conv.att, lambda t: t[0, :, :c], None),
            "att_dst": (self.conv.att, lambda t: t[0, :, c:], None),
        }
        if self.conv.add_bias:
            out["bias"] = (self.conv.bias, identity, identity)
        return out

    def load_neutral_state_dict(self, state: dict[str, Tensor]) -> None:
        # att_src and att_dst share one GammaGL tensor: load them together
        from glm.core.encoder import check_neutral_state, copy_into

        check_neutral_state(state, self.neutral_shapes(), f"gat ({NAME})")
        copy_into(self.conv.w, state["weight"].t())
        copy_into(self.conv.att, torch.cat([state["att_src"], state["att_dst"]], -1).unsqueeze(0))
        if self.conv.add_bias:
            copy_into(self.conv.bias, state["bias"])


class GammaglSAGE(GammaglLayer):
    r"""GraphSAGE (mean) on ``gammagl.layers.conv.SAGEConv``; same maths as the PyG ``sage``, in
    PyG's order of operations (``fc_neigh(mean x_j)``, see :func:`_sage_conv_cls`).
    ``edge_weight`` is ignored.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``lin_neigh.weight`` (``fc_neigh.weights`` transposed), ``lin_root.weight``
    (``fc_self.weights`` transposed), ``bias [out]``.
    """

    layer_name = "sage"

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        check_dims("sage", in_dim, out_dim)
        self.conv = _sage_conv_cls()(in_dim, out_dim, aggr="mean", add_bias=bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index)

    def _neutral_map(self):
        out = {
            "lin_neigh.weight": (self.conv.fc_neigh.weights, transpose, transpose),
            "lin_root.weight": (self.conv.fc_self.weights, transpose, transpose),
        }
        if self.conv.add_bias:
            out["bias"] = (self.conv.bias, flat, row)
        return out


@functools.cache
def _gt_attention_cls() -> type:
    gammagl = compat.load_gammagl()
    from gammagl.mpops import unsorted_segment_sum

    class GTAttention(gammagl.layers.conv.MessagePassing):
        """Sparse multi-head attention of GraphLAMA's GTLayer on GammaGL's ``MessagePassing``
        (messages ``a_ij v_j`` summed at ``edge_index[1]``)."""

        def forward(self, q: Tensor, k: Tensor, v: Tensor, edge_index: Tensor) -> Tensor:
            n = q.shape[0]
            src, dst = edge_index[0], edge_index[1]
            score = gt_scores(q.index_select(0, dst), k.index_select(0, src))  # [E, H]
            denom = unsorted_segment_sum(score, dst, n)
            alpha = score / (denom.index_select(0, dst) + GT_EPS)
            return self.propagate(v, edge_index, edge_weight=alpha, num_nodes=n)

        def message(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
            return gather_rows(x, edge_index[0]) * edge_weight.unsqueeze(-1)

    return GTAttention


class GammaglGIN(GammaglLayer):
    r"""Graph isomorphism network layer on ``gammagl.layers.conv.GINConv``; same maths as the PyG ``gin``
    (eps 0: ``mlp(x_i + sum_j x_j)``). GammaGL keeps eps as a plain tensor; it becomes a buffer here so that
    it moves with the layer. ``edge_weight`` is ignored.

    Shapes:
        - **input:** ``[N, in_dim]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, out_dim]``

    Neutral layout: ``mlp.0.weight [out, in]``, ``mlp.0.bias [out]``, ``mlp.2.weight [out, out]``, ``mlp.2.bias [out]``.
    """

    layer_name = "gin"

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = _gin_conv_cls()(gin_mlp(in_dim, out_dim, bias), eps=0.0, train_eps=False)
        eps = torch.as_tensor(self.conv.eps, dtype=torch.float32).detach().clone()
        del self.conv.eps
        self.conv.register_buffer("eps", eps, persistent=False)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.conv(x, edge_index)

    def _neutral_map(self):
        return mlp_neutral_map(self.conv.nn)


class GammaglGT(GTLayer, GammaglLayer):
    """GraphLAMA's graph-transformer layer (:class:`glm.backends._layers.GTLayer`) on GammaGL's
    ``MessagePassing`` and segment ops; same maths as the PyG ``gt``."""

    def make_attention(self) -> nn.Module:
        return _gt_attention_cls()()


LAYERS: dict[str, tuple[type[NeutralLayer], str]] = {
    "gcn": (GammaglGCN, "GCN (gammagl GCNConv, norm='none' + gcn_norm), uses edge weights"),
    "gat": (GammaglGAT, "GAT (gammagl GATConv)"),
    "sage": (GammaglSAGE, "GraphSAGE mean (gammagl SAGEConv)"),
    "gt": (GammaglGT, "GraphLAMA graph transformer (gammagl MessagePassing)"),
    "gin": (GammaglGIN, "GIN, sum aggregation + 2-layer MLP (gammagl GINConv)"),
}


@hookimpl
def register_backends(register) -> None:
    register(BackendSpec(
        name=NAME, load=load_backend, requires=("gammagl", "tensorlayerx"), extra="gammagl",
        description="GammaGL on TensorLayerX (torch backend, compat shim applied)",
    ))


@hookimpl
def register_gnn_layers(register) -> None:
    for name, (cls, description) in LAYERS.items():
        register(name, cls, backends=(NAME,), description=description)
