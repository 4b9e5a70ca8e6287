"""Projector: linear (GraphLAMA) and 2-layer MLP."""

import pytest
import torch

from glm.core.projector import Projector


def test_linear_projector_is_one_linear_of_paper_size():
    proj = Projector(128, 4096)
    assert sum(p.numel() for p in proj.parameters()) == 528_384  # spec §1.6
    assert proj(torch.randn(7, 128)).shape == (7, 4096)


def test_mlp_projector():
    proj = Projector(16, 32, kind="mlp", hidden_dim=8)
    assert [m.__class__.__name__ for m in proj.net] == ["Linear", "GELU", "Linear"]
    assert proj(torch.randn(3, 16)).shape == (3, 32)
    assert sum(p.numel() for p in proj.parameters()) == 16 * 8 + 8 + 8 * 32 + 32


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be"):
        Projector(4, 4, kind="conv")
