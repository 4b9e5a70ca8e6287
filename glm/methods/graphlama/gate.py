"""GraphLAMA's dual gate: a task-related and a task-invariant branch (GraphLAMA,
KDD'25; official code: BUPT-GAMMA/GraphLAMA ``grapht3/model/GraphLlama.py``, ``task_prompt_linear`` /
``intrinsic_prompt_linear``).

For the node rows ``Z = [H ; P]`` of one graph (encoder output plus hop code)::

    T = Z W_t^T + b_t                      task-related linear   (in_dim -> dim)
    I = Z W_i^T + b_i                      task-invariant linear (in_dim -> dim)
    U = a_l * T + (1 - a_l) * I
    m = a_w * e_task + (1 - a_w) * m_inv   e_task: frozen task-text embedding, m_inv: learnable
    G = U * m                              feature-wise gate, m broadcast over the graph's nodes

``a_l`` and ``a_w`` are scalars initialised to 0.5, stored as shape-``[1]`` parameters (not 0-dim:
DeepSpeed's initial broadcast and gradient clipping cannot handle 0-dim tensors; a state dict
written with 0-dim mixing weights still loads). ``alpha_mode="free"`` (paper-compatible)
keeps them unconstrained, as the official code does; ``alpha_mode="sigmoid"`` (default)
stores logits and uses ``sigmoid(logit)`` so the mixtures stay convex.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor, nn

from glm.errors import GlmError

AlphaMode = Literal["sigmoid", "free"]
ALPHA_NAMES = ("alpha_l", "alpha_w")


class TaskEmbeddingError(GlmError, ValueError):
    """The task embedding is missing or has the wrong shape."""


class DualGate(nn.Module):
    r"""Task-related / task-invariant dual gate.

    Args:
        in_dim: encoder output size plus hop-code size (``128 + 2`` in GraphLAMA).
        dim: gate output size; also the size of the task embedding and of ``m_inv`` (128).
        alpha_init: initial value of both mixing weights.
        alpha_mode: ``"sigmoid"`` (convex mixtures) or ``"free"`` (paper-compatible).

    Parameters:
        ``task_related.{weight,bias}``, ``task_invariant.{weight,bias}`` (``[dim, in_dim]``, ``[dim]``),
        ``invariant_mask`` ``[1, dim]`` (``m_inv``), ``alpha_l``, ``alpha_w`` (``[1]``, stored as
        logits in ``"sigmoid"`` mode). Buffer ``default_task_embedding`` ``[1, dim]`` (used when a
        batch carries no task embedding; set it with :meth:`set_task_embedding`).

    Shapes:
        - ``z``: ``[N, in_dim]`` node rows of all graphs
        - ``task_embedding``: ``[N, dim]`` (one row per node, already gathered from its sample),
          ``[1, dim]`` / ``[dim]`` (shared), or ``None`` (use ``default_task_embedding``)
        - output: ``[N, dim]``
    """

    def __init__(self, in_dim: int = 130, dim: int = 128, alpha_init: float = 0.5,
                 alpha_mode: AlphaMode = "sigmoid") -> None:
        super().__init__()
        if alpha_mode not in ("sigmoid", "free"):
            raise ValueError(f"DualGate: alpha_mode must be 'sigmoid' or 'free', found {alpha_mode!r}")
        if alpha_mode == "sigmoid" and not 0.0 < alpha_init < 1.0:
            raise ValueError(f"DualGate: alpha_init must be in (0, 1) with alpha_mode='sigmoid', found {alpha_init}")
        self.in_dim, self.dim, self.alpha_mode = in_dim, dim, alpha_mode
        self.task_related = nn.Linear(in_dim, dim)
        self.task_invariant = nn.Linear(in_dim, dim)
        self.invariant_mask = nn.Parameter(torch.empty(1, dim))
        raw = torch.logit(torch.tensor(alpha_init)) if alpha_mode == "sigmoid" else torch.tensor(alpha_init)
        self.alpha_l = nn.Parameter(raw.clone().float().reshape(1))
        self.alpha_w = nn.Parameter(raw.clone().float().reshape(1))
        self.register_buffer("default_task_embedding", torch.zeros(1, dim))
        self.register_buffer("has_default_task_embedding", torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform on both linear weights and on ``m_inv`` (as the official code); default biases."""
        for lin in (self.task_related, self.task_invariant):
            nn.init.xavier_uniform_(lin.weight)
        nn.init.xavier_uniform_(self.invariant_mask)

    def mixing_weights(self) -> tuple[Tensor, Tensor]:
        """The effective ``(a_l, a_w)``, each ``[1]``."""
        if self.alpha_mode == "sigmoid":
            return torch.sigmoid(self.alpha_l), torch.sigmoid(self.alpha_w)
        return self.alpha_l, self.alpha_w

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in ALPHA_NAMES:  # state dicts from before the [1] layout hold 0-dim tensors
            key = prefix + name
            if key in state_dict and state_dict[key].dim() == 0:
                state_dict[key] = state_dict[key].reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def set_task_embedding(self, embedding: Optional[Tensor]) -> None:
        """Store a frozen default task embedding ``[dim]`` or ``[1, dim]``; ``None`` clears it."""
        if embedding is None:
            self.default_task_embedding.zero_()
            self.has_default_task_embedding.fill_(False)
            return
        embedding = self._check_task_embedding(embedding.reshape(1, -1), 1)
        self.default_task_embedding.copy_(embedding)
        self.has_default_task_embedding.fill_(True)

    def _check_task_embedding(self, e: Tensor, n: int) -> Tensor:
        if e.dim() == 1:
            e = e.unsqueeze(0)
        if e.dim() != 2 or e.shape[1] != self.dim or e.shape[0] not in (1, n):
            raise TaskEmbeddingError(
                f"DualGate: task_embedding must be [N={n}, {self.dim}] or [1, {self.dim}], found {tuple(e.shape)}"
            )
        return e

    def forward(self, z: Tensor, task_embedding: Optional[Tensor] = None) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.in_dim:
            raise ValueError(f"DualGate: z must be [N, {self.in_dim}], found {tuple(z.shape)}")
        if task_embedding is None:
            if not bool(self.has_default_task_embedding):
                raise TaskEmbeddingError(
                    "DualGate: no task embedding: the batch has none and no default was set "
                    "(GraphBatch.task_embedding or DualGate.set_task_embedding)"
                )
            task_embedding = self.default_task_embedding
        e = self._check_task_embedding(task_embedding, z.shape[0]).to(z.dtype).detach()
        a_l, a_w = self.mixing_weights()
        u = a_l * self.task_related(z) + (1 - a_l) * self.task_invariant(z)
        mask = a_w * e + (1 - a_w) * self.invariant_mask.to(z.dtype)
        return u * mask

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, dim={self.dim}, alpha_mode={self.alpha_mode!r}"
