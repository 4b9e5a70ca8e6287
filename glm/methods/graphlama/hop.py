"""GraphLAMA's hop code: hop distances from the target turned into a per-node code.

GraphLAMA (KDD'25) concatenates a 2-bit code of each node's hop distance from the target to the
encoder output before the dual gate (official code: BUPT-GAMMA/GraphLAMA
``grapht3/model/utils.py``, ``concat_position_encoding``). Distances come from
:func:`glm.core.hop_distance.hop_distances` (computed at sampling time in glm).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import Tensor, nn

HopMode = Literal["onehot", "official", "learned"]
HOP_MODES = ("onehot", "official", "learned")


class HopEncoding(nn.Module):
    r"""Turns hop distances into the per-node code concatenated to the encoder output.

    Modes:
        * ``"onehot"`` (default): one-hot over ``K + 2`` classes ``{target, 1, ..., K, far}``;
          ``out_dim = K + 2``. Far nodes get their own class.
        * ``"official"`` (paper-compatible): the binary code of the distance, most significant
          bit first, ``ceil(log2(K + 1))`` bits, with far coded as all zeros -- for ``K = 2``
          exactly GraphLAMA's 2-bit code: target ``00``, 1-hop ``01``, 2-hop ``10``, farther
          ``00`` (far shares the target's code, the paper's behaviour).
        * ``"learned"``: ``nn.Embedding(K + 2, dim)``; ``out_dim = dim`` (default 2).

    In every mode the code is learned through the gate linears' extra input columns; the
    ``"learned"`` table adds its own parameters (``hop.table.weight``).

    Shapes:
        - input: ``hop [N]`` int64 distances (values above ``K`` or negative are treated as far)
        - output: ``[N, out_dim]`` in the table's / requested dtype
    """

    def __init__(self, max_hops: int = 2, mode: HopMode = "onehot", dim: int = 2) -> None:
        super().__init__()
        if mode not in HOP_MODES:
            raise ValueError(f"HopEncoding: mode must be one of {HOP_MODES}, found {mode!r}")
        if max_hops < 1:
            raise ValueError(f"HopEncoding: max_hops must be >= 1, found {max_hops}")
        self.max_hops = max_hops
        self.mode = mode
        self.num_classes = max_hops + 2
        if mode == "onehot":
            self.out_dim = self.num_classes
        elif mode == "official":
            self.out_dim = max(1, math.ceil(math.log2(max_hops + 1)))
        else:
            self.out_dim = dim
            self.table = nn.Embedding(self.num_classes, dim)
        if mode != "learned":
            self.register_buffer("codes", self._fixed_codes(), persistent=False)

    def _fixed_codes(self) -> Tensor:
        """``[K + 2, out_dim]`` float rows, indexed by clamped distance."""
        if self.mode == "onehot":
            return torch.eye(self.num_classes)
        bits = self.out_dim
        values = torch.arange(self.num_classes)
        values[-1] = 0  # far shares the target's code (paper behaviour)
        shifts = torch.arange(bits - 1, -1, -1)
        return ((values[:, None] >> shifts[None, :]) & 1).float()

    def classes(self, hop: Tensor) -> Tensor:
        """Clamp distances into class indices ``[0, K + 1]``; ``[N]`` int64."""
        far = self.max_hops + 1
        hop = hop.long()
        return torch.where((hop < 0) | (hop > far), torch.full_like(hop, far), hop)

    def forward(self, hop: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
        idx = self.classes(hop)
        out = self.table(idx) if self.mode == "learned" else self.codes[idx]
        return out if dtype is None else out.to(dtype)

    def extra_repr(self) -> str:
        return f"max_hops={self.max_hops}, mode={self.mode!r}, out_dim={self.out_dim}"
