"""Shared plumbing of the built-in backends' GNN layers (pure torch, no framework import).

Every built-in layer maps its framework parameters to the backend-neutral layout documented in
:mod:`glm.core.encoder` through :meth:`NeutralLayer._neutral_map`; saving, loading and checking
are implemented once here.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from glm.core.encoder import check_neutral_state, copy_into

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
    #: whether ``forward`` uses ``edge_weight``; layers that do not ignore it (documented).
    supports_edge_weight = False

    def _neutral_map(self) -> dict[str, tuple[Tensor, Transform, Transform]]:
        raise NotImplementedError

    def neutral_state_dict(self) -> dict[str, Tensor]:
        """Parameters in the backend-neutral layout (detached copies)."""
        return {k: to(p.detach()).clone() for k, (p, to, _) in self._neutral_map().items()}

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


def gt_neutral_map(layer: nn.Module) -> dict[str, tuple[Tensor, Transform, Transform]]:
    """The ``gt`` layout for layers holding torch ``wq``/``wk``/``wv`` Linears and ``norm``."""
    out = {k: (getattr(layer, k).weight, identity, identity) for k in ("wq", "wk", "wv")}
    if isinstance(layer.norm, nn.LayerNorm):
        out["norm.weight"] = (layer.norm.weight, identity, identity)
        out["norm.bias"] = (layer.norm.bias, identity, identity)
    return out


GT_EPS = 1e-8  # added to each softmax denominator, as GraphLAMA's GTLayer
GT_CLAMP = 10.0


def gt_scores(q_dst: Tensor, k_src: Tensor) -> Tensor:
    """``exp(clamp(<q_i, k_j>, -10, 10))`` per edge and head: ``[E, H, C] x2 -> [E, H]``."""
    return (q_dst * k_src).sum(dim=-1).clamp(-GT_CLAMP, GT_CLAMP).exp()
