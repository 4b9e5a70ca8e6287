"""Shared plumbing of the built-in backends' GNN layers (pure torch, no framework import).

Every built-in layer maps its framework parameters to the backend-neutral layout documented in
:mod:`glm.core.encoder` through :meth:`NeutralLayer._neutral_map`; saving, loading and checking
are implemented once here.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from glm.core.encoder import check_neutral_state, copy_into
from glm.core.layouts import LAYOUTS

Transform = Callable[[Tensor], Tensor]


def identity(t: Tensor) -> Tensor:
    return t


def transpose(t: Tensor) -> Tensor:
    return t.t()


def row(t: Tensor) -> Tensor:
    """``[out]`` -> ``[1, out]`` (GammaGL keeps biases as rows)."""
    return t.reshape(1, -1)


def flat(t: Tensor) -> Tensor:
    return t.reshape(-1)


class NeutralLayer(nn.Module):
    """Base class: ``neutral_state_dict`` / ``load_neutral_state_dict`` from a parameter map.

    Subclasses set ``layer_name`` and ``backend`` and implement :meth:`_neutral_map`, which
    returns ``{neutral_key: (parameter, to_neutral, from_neutral)}``.
    """

    layer_name = "?"
    backend = "?"

    @property
    def supports_edge_weight(self) -> bool:
        """Whether ``forward`` uses ``edge_weight`` (:data:`glm.core.layouts.LAYOUTS`); others ignore it."""
        return LAYOUTS[self.layer_name].edge_weight

    def _neutral_map(self) -> dict[str, tuple[Tensor, Transform, Transform]]:
        raise NotImplementedError

    def _checked_map(self) -> dict[str, tuple[Tensor, Transform, Transform]]:
        found = self._neutral_map()
        unknown = sorted(set(found) - set(LAYOUTS[self.layer_name].keys))
        if unknown:
            raise NotImplementedError(f"{self.layer_name} ({self.backend}): keys {unknown} are not in its neutral "
                                      f"layout {sorted(LAYOUTS[self.layer_name].keys)} (glm.core.layouts)")
        return found

    def neutral_state_dict(self) -> dict[str, Tensor]:
        """Parameters in the backend-neutral layout (detached copies)."""
        return {k: to(p.detach()).clone() for k, (p, to, _) in self._checked_map().items()}

    def neutral_grads(self) -> dict[str, Tensor | None]:
        """Gradients of the parameters in the neutral layout (``None`` where there is none)."""
        return {k: None if p.grad is None else to(p.grad).clone() for k, (p, to, _) in self._neutral_map().items()}

    def neutral_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(to(p.detach()).shape) for k, (p, to, _) in self._neutral_map().items()}

    def load_neutral_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load a neutral state; :class:`~glm.core.encoder.NeutralStateError` names any
        missing, unexpected or mis-shaped key."""
        check_neutral_state(state, self.neutral_shapes(), f"{self.layer_name} ({self.backend})")
        for key, (param, _, back) in self._neutral_map().items():
            copy_into(param, back(state[key]))


def gin_mlp(in_dim: int, out_dim: int, bias: bool = True) -> nn.Sequential:
    """GIN's update ``Linear(in, out) -> ReLU -> Linear(out, out)``, plain torch on every backend."""
    check_dims("gin", in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=bias), nn.ReLU(), nn.Linear(out_dim, out_dim, bias=bias))


def mlp_neutral_map(mlp: nn.Sequential) -> dict[str, tuple[Tensor, Transform, Transform]]:
    """``mlp.<i>.weight`` / ``mlp.<i>.bias`` of every linear of ``mlp`` (torch's own layout)."""
    return {f"mlp.{i}.{kind}": (getattr(m, kind), identity, identity) for i, m in enumerate(mlp)
            if isinstance(m, nn.Linear) for kind in ("weight", "bias") if getattr(m, kind) is not None}


def check_dims(layer: str, in_dim: int, out_dim: int, heads: int | None = None, *, square: bool = False) -> int:
    """Validate layer sizes; returns the per-head width (``out_dim // heads``) or ``out_dim``."""
    if in_dim <= 0 or out_dim <= 0:
        raise ValueError(f"{layer}: in_dim and out_dim must be positive, found {in_dim}, {out_dim}")
    if square and in_dim != out_dim:
        raise ValueError(f"{layer}: needs in_dim == out_dim (residual), found {in_dim} != {out_dim}")
    if heads is None:
        return out_dim
    if heads <= 0 or out_dim % heads:
        raise ValueError(f"{layer}: out_dim {out_dim} must be divisible by heads {heads}")
    return out_dim // heads


def init_gt_weights(*linears: nn.Linear) -> None:
    """Xavier-uniform, as GraphLAMA's GTLayer."""
    for lin in linears:
        nn.init.xavier_uniform_(lin.weight)


GT_EPS = 1e-8  # added to each softmax denominator, as GraphLAMA's GTLayer
GT_CLAMP = 10.0


def gt_scores(q_dst: Tensor, k_src: Tensor) -> Tensor:
    """``exp(clamp(<q_i, k_j>, -10, 10))`` per edge and head: ``[E, H, C] x2 -> [E, H]``."""
    return (q_dst * k_src).sum(dim=-1).clamp(-GT_CLAMP, GT_CLAMP).exp()


class GTLayer(NeutralLayer):
    r"""GraphLAMA's sparse graph-transformer layer; backends supply the attention module.

    .. math::
        a_{ij} = \frac{\exp(\mathrm{clamp}(\langle \mathbf{q}_i, \mathbf{k}_j \rangle, -10, 10))}
        {\sum_{j' \in \mathcal{N}(i)} \exp(\cdots) + 10^{-8}}, \qquad
        \mathbf{x}_i' = \mathrm{LayerNorm}\big(\mathbf{x}_i + \Vert_h \sum_{j \in \mathcal{N}(i)}
        a^h_{ij} \mathbf{v}^h_j\big)

    per head, with ``q = x Wq^T``, ``k = x Wk^T``, ``v = x Wv^T`` (no biases, no ``sqrt(d)``
    scaling, no activation, LayerNorm eps 1e-6). ``edge_weight`` is ignored.

    Args:
        in_dim: model width ``d``. out_dim: must equal ``in_dim`` (residual).
        heads: attention heads (``d`` divisible by it). norm: apply the LayerNorm.
        aggregate_at: ``"target"`` (``edge_index[1]``, PyG's source -> target flow) or
            ``"source"`` (``edge_index[0]``, the official GraphGPT/GraphLAMA ``GTLayer``: queries,
            normalisation and sums at the row index). Equal on symmetric subgraphs (glm's
            samplers); set ``"source"`` with converted official weights on directed subgraphs.

    Shapes:
        - **input:** ``[N, d]``, ``[2, E]``, (``[E]``, ignored)
        - **output:** ``[N, d]``

    Neutral layout: ``wq``, ``wk``, ``wv`` ``[d, d]``, ``norm.weight [d]``, ``norm.bias [d]``.
    Subclasses implement :meth:`make_attention` returning a module
    ``(q, k, v [N, H, C], edge_index [2, E]) -> [N, H, C]`` that sums ``a_ij v_j`` at ``edge_index[1]``.
    """

    layer_name = "gt"

    def __init__(self, in_dim: int, out_dim: int, heads: int = 8, norm: bool = True,
                 aggregate_at: str = "target") -> None:
        super().__init__()
        if aggregate_at not in ("target", "source"):
            raise ValueError(f"gt: aggregate_at must be 'target' or 'source', found {aggregate_at!r}")
        self.aggregate_at = aggregate_at
        self.heads = heads
        self.head_dim = check_dims("gt", in_dim, out_dim, heads, square=True)
        self.wq, self.wk, self.wv = (nn.Linear(in_dim, in_dim, bias=False) for _ in range(3))
        init_gt_weights(self.wq, self.wk, self.wv)
        self.norm = nn.LayerNorm(in_dim, eps=1e-6) if norm else nn.Identity()
        self.attention = self.make_attention()

    def make_attention(self) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        shape = (-1, self.heads, self.head_dim)
        q, k, v = (lin(x).view(shape) for lin in (self.wq, self.wk, self.wv))
        if self.aggregate_at == "source":
            edge_index = edge_index.flip(0)
        return self.norm(x + self.attention(q, k, v, edge_index).reshape(x.shape[0], -1))

    def _neutral_map(self) -> dict[str, tuple[Tensor, Transform, Transform]]:
        out = {k: (getattr(self, k).weight, identity, identity) for k in ("wq", "wk", "wv")}
        if isinstance(self.norm, nn.LayerNorm):
            out["norm.weight"] = (self.norm.weight, identity, identity)
            out["norm.bias"] = (self.norm.bias, identity, identity)
        return out
