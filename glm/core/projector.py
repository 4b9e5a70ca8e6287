"""Projector from the graph side to the LLM's hidden size, shared by the built-in methods
(GraphLAMA and GraphGPT: one linear layer; LLaGA: a 2-layer GELU MLP, LLaGA's ``2-layer-mlp``)."""

from __future__ import annotations

from typing import Literal, Optional

from torch import Tensor, nn

ProjectorKind = Literal["linear", "mlp"]


class Projector(nn.Module):
    r"""Maps gated node vectors to LLM input embeddings.

    Args:
        in_dim: gate output size (128).
        out_dim: LLM hidden size (4096 for Vicuna-7B, 576 for SmolLM2-135M).
        kind: ``"linear"`` (default, GraphLAMA: one ``nn.Linear``) or ``"mlp"``
            (``Linear -> GELU -> Linear``, LLaGA's ``2-layer-mlp``).
        hidden_dim: width of the MLP's hidden layer (default ``out_dim``).

    Shapes:
        - input: ``[N, in_dim]``
        - output: ``[N, out_dim]``
    """

    def __init__(self, in_dim: int, out_dim: int, kind: ProjectorKind = "linear",
                 hidden_dim: Optional[int] = None) -> None:
        super().__init__()
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        elif kind == "mlp":
            hidden = hidden_dim or out_dim
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        else:
            raise ValueError(f"Projector: kind must be 'linear' or 'mlp', found {kind!r}")
        self.in_dim, self.out_dim, self.kind = in_dim, out_dim, kind

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, kind={self.kind!r}"
