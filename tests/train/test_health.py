"""Training health: per-group gradient norms equal the norm over the group's gradients, the soft-token
scale is reported against the embedding norm, and warnings fire once on planted NaN / exploding /
vanishing gradients and never on a normal run."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from model_helpers import sample_batch, tiny_model  # noqa: E402

from glm.core.stages import set_stage  # noqa: E402
from glm.core.train.health import TrainingHealth, parameter_groups  # noqa: E402


def _trained_once():
    model = tiny_model("llama")
    set_stage(model, "pretrain")
    batch = sample_batch(model, [[5], [4, 6]], seed=3)
    model.train()
    model(batch).loss.backward()
    return model


def test_group_norms_match_a_direct_computation():
    model = _trained_once()
    health = TrainingHealth(model)
    norms = health.grad_norms()
    assert {"encoder", "gate.task_related", "gate.task_invariant", "projector"} <= set(norms)
    for group, params in parameter_groups(model, model.method.parameter_groups).items():
        direct = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for _, p in params if p.grad is not None))
        assert math.isclose(norms[group], direct, rel_tol=1e-5), group
    health.observe(norms)
    rec = health.record()
    assert rec["grad_norm/projector"] == norms["projector"]
    emb = float(model.llm.get_input_embeddings().weight.norm(dim=1).mean())
    assert math.isclose(rec["token_norm_ratio"], rec["token_norm"] / emb, rel_tol=1e-3)


def test_warnings_fire_once_on_planted_faults_and_not_on_a_normal_run(caplog):
    model = _trained_once()
    health = TrainingHealth(model)
    normal = health.grad_norms()
    with caplog.at_level(logging.WARNING, logger="glm.train"):
        for _ in range(5):
            health.observe(normal)
        assert not caplog.records
        health.observe({**normal, "projector": float("nan")})
        health.observe({**normal, "projector": float("nan")})
        health.observe({**normal, "encoder": normal["encoder"] * 1e6})
        health.observe({**normal, "hop": 1e-12})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "projector is nan" in messages[0] and "exploding" in messages[1] and "vanishing" in messages[2]


def test_planted_nan_gradient_is_seen_in_a_real_backward(caplog):
    model = _trained_once()
    health = TrainingHealth(model)
    model.projector.net.weight.grad[0, 0] = float("nan")
    with caplog.at_level(logging.WARNING, logger="glm.train"):
        health.observe(health.grad_norms())
    assert any("projector is nan" in r.getMessage() for r in caplog.records)
    assert torch.isnan(torch.tensor(health.record()["grad_norm/projector"]))


def test_update_ratio_and_activation_statistics_match_direct_computation():
    model = _trained_once()
    health = TrainingHealth(model)
    before = model.projector.net.weight.detach().clone(), model.projector.net.bias.detach().clone()
    with torch.no_grad():
        model.projector.net.weight.add_(0.01)
    batch = sample_batch(model, [[5], [4, 6]], seed=4)
    model.train()
    model(batch)
    rec = health.record()
    w, b = before
    direct = math.sqrt(float((0.01 * torch.ones_like(w)).pow(2).sum())) / math.sqrt(float(w.pow(2).sum() + b.pow(2).sum()))
    assert math.isclose(rec["update_ratio/projector"], direct, rel_tol=1e-4)
    assert rec["update_ratio/encoder"] == 0.0
    with torch.no_grad():
        enc = model.encoder(batch.graphs)
    assert math.isclose(rec["act/encoder/mean"], float(enc.mean()), rel_tol=1e-4, abs_tol=1e-6)
    assert math.isclose(rec["act/encoder/zero"], float((enc == 0).float().mean()), abs_tol=1e-6)
    assert {"act/tokens/mean", "act/tokens/std", "act/tokens/zero"} <= set(rec)
    health.close()
    model(batch)  # hooks removed: nothing recorded any more
    assert not model.encoder._forward_hooks


def test_plot_draws_one_png_per_signal_family(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from glm.core.train.plot import plot_run

    records = [{"current_steps": s, "loss": 1.0 / s, "grad_norm/encoder": 0.1 * s, "grad_norm/projector": 0.2,
                "act/tokens/mean": 0.01 * s} for s in range(1, 6)]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    paths = plot_run(tmp_path, ["loss", "grad_norm", "act", "update_ratio"])
    assert [p.name for p in paths] == ["training_loss.png", "training_grad_norm.png", "training_act.png"]
    img = np.asarray(Image.open(paths[1]).convert("L"))
    assert img.std() > 10

