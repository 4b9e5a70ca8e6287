"""Validation while training: eval records every ``eval_steps`` equal to ``glm eval`` on the same
validation nodes, the best step in ``trainer_state.json``, the best tensors in the final adapter
(``load_best_model_at_end``), early stopping, and named errors. Real pieces: tiny LLM, synthetic TAG,
DeepSpeed on CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from glm.cli.main import main
from glm.core.config import ConfigError, config_from_dict
from glm.core.train.validation import BestTracker, _choice_loss

from train_helpers import TINY_CONFIG, run_glm, write_tiny_config

VAL = {"val_per_class": 3}


def _log(run):
    return [json.loads(line) for line in (run / "trainer_log.jsonl").read_text().splitlines() if line.strip()]


def test_eval_records_match_glm_eval_and_the_best_step_is_kept(tmp_path, capsys, monkeypatch):
    cfg = write_tiny_config(tmp_path, data={**TINY_CONFIG["data"], **VAL},
                            training={**TINY_CONFIG["training"], "max_steps": 6, "eval_steps": 2, "save_steps": 2,
                                      "save_total_limit": 5, "load_best_model_at_end": True, "logging_steps": 3})
    run = tmp_path / "run"
    r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    evals = [rec for rec in _log(run) if "eval_accuracy" in rec]
    assert [rec["current_steps"] for rec in evals] == [2, 4, 6]
    assert all(rec["eval_samples"] == 6 and 0 <= rec["eval_accuracy"] <= 1 and rec["eval_loss"] > 0 for rec in evals)
    state = json.loads((run / "trainer_state.json").read_text())
    best = max(evals, key=lambda rec: (rec["eval_accuracy"], -rec["current_steps"]))
    assert state["best_global_step"] == best["current_steps"] and state["best_metric"] == best["eval_accuracy"]
    # the eval record at a step is what glm eval --split val says of that step's checkpoint
    step = evals[0]["current_steps"]
    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))  # the cache the run used (run_glm's)
    assert main(["eval", str(cfg), "--adapter", str(run / f"checkpoint-{step}"), "--split", "val"]) == 0
    assert f"accuracy {evals[0]['eval_accuracy']:.4f}" in capsys.readouterr().out
    # load_best_model_at_end: the final adapter holds the best step's tensors
    final = load_file(str(run / "adapter_model.safetensors"))
    kept = load_file(str(run / f"checkpoint-{state['best_global_step']}" / "adapter_model.safetensors"))
    assert all(torch.equal(final[k], kept[k]) for k in kept)
    assert state.get("loaded_best_model_at_end") == (state["best_global_step"] != 6)


def test_early_stopping_stops_after_patience_evaluations(tmp_path):
    cfg = write_tiny_config(tmp_path, data={**TINY_CONFIG["data"], **VAL},
                            training={**TINY_CONFIG["training"], "max_steps": 40, "eval_steps": 1, "save_steps": 0,
                                      "learning_rate": 1e-12, "early_stopping_patience": 2,
                                      "metric_for_best_model": "eval_loss"})
    run = tmp_path / "run"
    r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    evals = [rec for rec in _log(run) if "eval_loss" in rec]
    state = json.loads((run / "trainer_state.json").read_text())
    assert "early stopping at step" in r.stderr
    assert state["global_step"] < 40 and (run / f"checkpoint-{state['global_step']}").is_dir()
    assert state["evaluations_since_best"] == 2 and len(evals) == state["global_step"]
    assert state["best_global_step"] == state["global_step"] - 2


def test_choice_loss_and_tracker_directions():
    assert _choice_loss({"a": 0.0, "b": 0.0}, "a") == pytest.approx(math.log(2))
    acc, loss = BestTracker("eval_accuracy"), BestTracker("eval_loss")
    for step, (a, l) in enumerate([(0.5, 1.0), (0.7, 1.2), (0.7, 0.8), (0.6, 0.9)], start=1):
        acc.update(step, {"eval_accuracy": a}, engine=None)
        loss.update(step, {"eval_loss": l}, engine=None)
    assert (acc.best, acc.best_step, acc.since_best) == (0.7, 2, 2)
    assert (loss.best, loss.best_step, loss.since_best) == (0.8, 3, 1)
    assert acc.should_stop(2) and not loss.should_stop(2)


@pytest.mark.parametrize("training, match", [
    ({"load_best_model_at_end": True}, "training.load_best_model_at_end needs validation"),
    ({"early_stopping_patience": 3}, "training.early_stopping_patience needs validation"),
    ({"eval_steps": 2, "metric_for_best_model": "f1"}, "training.metric_for_best_model must be one of"),
    ({"eval_steps": -1}, "training.eval_steps must be >= 0"),
])
def test_bad_validation_settings_are_named(training, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"training": training}, "<t>")


def test_eval_steps_without_validation_nodes_is_a_named_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path, training={**TINY_CONFIG["training"], "eval_steps": 2})
    assert main(["adapt", str(cfg), "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "data.val_per_class > 0" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_load_best_model_at_end_under_zero3_offload(tmp_path):
    """The best tensors are written back through DeepSpeed's gathered parameters under ZeRO-3."""
    cfg = write_tiny_config(tmp_path, data={**TINY_CONFIG["data"], **VAL}, recipe="3090-zero3-offload",
                            training={**TINY_CONFIG["training"], "max_steps": 4, "eval_steps": 1, "save_steps": 1,
                                      "save_total_limit": 5, "load_best_model_at_end": True,
                                      "metric_for_best_model": "eval_loss", "learning_rate": 0.5})
    run = tmp_path / "run"
    r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((run / "trainer_state.json").read_text())
    best = state["best_global_step"]
    final = load_file(str(run / "adapter_model.safetensors"))
    kept = load_file(str(run / f"checkpoint-{best}" / "adapter_model.safetensors"))
    assert all(torch.equal(final[k], kept[k]) for k in kept)
    # lr 0.5 overshoots: an early step is best (deterministic run), so the restore path ran
    assert best < 4 and state["loaded_best_model_at_end"] and "loaded the best model at the end" in r.stderr
