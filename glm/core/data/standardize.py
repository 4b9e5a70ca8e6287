"""``data.standardize``: the encoder's input features z-scored per dimension over all nodes (label-free).

Text embeddings (MiniLM's, unit length) share one large mean direction and vary by ~0.05 per dimension
around it, so an encoder initialised for unit-variance inputs sees nearly the same vector at every node;
a linear probe never notices (it standardizes its inputs), a graph side trained from 20 shots does.

Shapes:
    - **x:** ``[N, F]``; **output:** ``[N, F]`` float32, each column mean 0 and standard deviation 1
      (a constant column becomes 0)

Cost: two passes over ``x`` (column means and standard deviations), memory ``O(N F)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def standardize(x: Tensor) -> Tensor:
    x = x.float()
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, keepdim=True)
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
