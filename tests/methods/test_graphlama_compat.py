"""GraphLAMA behind the method seam equals glm 0.1: same parameter names, the same random init, logits,
loss and trained tensors, and adapters written by glm 0.1 load (fixture written by
tools/make_graphlama_fixture.py at the commit before the seam).

Values are compared within float32 rounding (:data:`ROUNDING`), not bit for bit: the fixture was written
with an older torch, and torch releases change CPU kernels' summation order in the last bits (torch
2.13: at most 2.4e-7 on these logits). A changed init or forward differs by orders of magnitude more."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glm.core.adapter import load_adapter, read_adapter, save_adapter
from glm.core.stages import set_stage
from glm.methods.graphlama import GraphLAMAConfig

from model_helpers import sample_batch, tiny_model

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "graphlama_v01"
ROUNDING = {"rtol": 1e-5, "atol": 1e-6}


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, **ROUNDING)


@pytest.fixture()
def expected():
    return load_file(str(FIXTURE / "expected.safetensors"))


def _fresh():
    model = tiny_model("llama")
    return model, sample_batch(model, [[5], [4, 6]], seed=3)


def test_init_logits_and_loss_match(expected):
    model, batch = _fresh()
    with torch.no_grad():
        out = model(batch)
    assert same(out.logits, expected["init_logits"])
    assert same(out.loss.reshape(1), expected["init_loss"])


def test_training_steps_and_adapters_are_identical(expected, tmp_path):
    """The same two AdamW steps give the same weights, and adapters hold the same tensors and names."""
    model, batch = _fresh()
    for stage in ("pretrain", "adapt"):
        set_stage(model, stage)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        model(batch).loss.backward()
        opt.step()
        opt.zero_grad()
        save_adapter(model, tmp_path / f"{stage}.safetensors", stage)
        new, meta = read_adapter(tmp_path / f"{stage}.safetensors")
        old, old_meta = read_adapter(FIXTURE / f"{stage}.safetensors")
        assert sorted(new) == sorted(old)
        assert all(same(new[k], old[k]) for k in old)
        assert meta["method"] == "graphlama" and "method" not in old_meta
        mine, theirs = meta["graph_config"], old_meta["graph_config"]
        assert {k: mine[k] for k in theirs} == theirs
        assert all(mine[k] == getattr(GraphLAMAConfig(), k) for k in set(mine) - set(theirs))  # options added since: off
    state = {n: p for n, p in model.graph_parameters().items()}
    saved = {k[len("state."):]: v for k, v in expected.items() if k.startswith("state.")}
    assert sorted(state) == sorted(saved)
    assert all(same(state[k], saved[k]) for k in saved)
    with torch.no_grad():
        out = model(batch)
    assert same(out.logits, expected["logits"])
    assert same(out.loss.reshape(1), expected["loss"])


def test_old_adapters_load_into_a_fresh_model(expected):
    """Adapters from glm 0.1 (no "method" key) load as GraphLAMA's and reproduce the trained outputs."""
    model, batch = _fresh()
    load_adapter(model, FIXTURE / "pretrain.safetensors")
    load_adapter(model, FIXTURE / "adapt.safetensors")
    with torch.no_grad():
        out = model(batch)
    assert same(out.logits, expected["logits"])
