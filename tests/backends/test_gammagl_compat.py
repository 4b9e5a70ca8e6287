"""The GammaGL compat shim: environment checks, pure-torch kernels, device containment."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import skip_unless_available

from glm.backends import _gammagl_compat as compat


def test_other_tl_backend_is_refused(monkeypatch):
    monkeypatch.setenv("TL_BACKEND", "tensorflow")
    with pytest.raises(compat.GammaglBackendError, match="TL_BACKEND='tensorflow'"):
        compat.ensure_torch_backend()


def test_unset_tl_backend_becomes_torch(monkeypatch):
    monkeypatch.delenv("TL_BACKEND", raising=False)
    compat.ensure_torch_backend()
    import os

    assert os.environ["TL_BACKEND"] == "torch"


def _reference_segment(x, index, n, reduce):
    out = []
    for i in range(n):
        rows = x[index == i]
        if rows.numel() == 0:
            fill = torch.finfo(x.dtype).min if reduce == "max" else 0.0
            out.append(torch.full(x.shape[1:], fill, dtype=x.dtype))
        else:
            out.append({"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0)}[reduce])
    return torch.stack(out)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_kernels_match_a_loop(reduce):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 2, generator=gen)
    index = torch.randint(0, 9, (40,), generator=gen)  # 9 segments; some may be empty
    n = 11  # segments 9 and 10 are empty
    got = getattr(compat, f"c_segment_{reduce}")(x, index, n)
    torch.testing.assert_close(got, _reference_segment(x, index, n, reduce))
    edges = torch.randint(0, 7, (2, 25), generator=gen)
    w = torch.rand(25, generator=gen)
    feats = torch.randn(7, 4, generator=gen)
    messages = feats[edges[0]] * w[:, None]
    torch.testing.assert_close(getattr(compat, f"c_spmm_{reduce}")(edges, w, feats),
                               _reference_segment(messages, edges[1], 7, reduce))
    heads = torch.randn(7, 2, 4, generator=gen)
    wh = torch.rand(25, 2, generator=gen)
    torch.testing.assert_close(compat.c_bspmm_sum(edges, wh, heads),
                               _reference_segment(heads[edges[0]] * wh[..., None], edges[1], 7, "sum"))


def test_device_scope_restores_defaults():
    before = torch.get_default_device()
    with compat.device_scope(torch.device("meta")):
        assert torch.ones(1).device.type == "meta"
    assert torch.get_default_device() == before and torch.ones(1).device == before
    with compat.restore_torch_defaults():
        torch.set_default_dtype(torch.float64)
        torch.set_default_device("meta")
    assert torch.get_default_dtype() == torch.float32 and torch.ones(1).device.type == "cpu"


def test_load_gammagl_applies_fixes_and_stays_quiet():
    skip_unless_available("gammagl")
    code = (
        "import sys, io, contextlib\n"
        "from glm.backends import _gammagl_compat as c\n"
        "g = c.load_gammagl()\n"
        "assert 'torchvision' not in sys.modules or sys.modules['torchvision'].__spec__ is not None\n"
        "import tensorlayerx as tlx\n"
        "assert '_named_members' not in tlx.nn.Module.__dict__\n"
        "mp = sys.modules['gammagl.mpops.torch']\n"
        "assert c.kernels() == ('native' if mp.use_ext else 'pure-torch')\n"
        "conv = g.layers.conv.GCNConv(4, 3)\n"
        "print(len(list(conv.named_parameters())))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "TL_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"  # no banner, no 'Using PyTorch backend', no layer log
    assert "Using PyTorch backend" not in result.stderr and "[TLX]" not in result.stderr
