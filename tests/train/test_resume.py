"""Kill -9 in the middle of training, resume, and land on the same final loss and tensors.

Real pieces: GraphLanguageModel over a tiny random-init LLM, the synthetic TAG through the
real samplers/tasks/collator, a real DeepSpeed engine (CPU, gloo), deterministic settings.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file

from train_helpers import TINY_CONFIG, glm_cmd, sigkill_at, subprocess_env, write_tiny_config

STEPS = 12


def _log(run: Path) -> list[dict]:
    return [json.loads(l) for l in (run / "trainer_log.jsonl").read_text().splitlines() if l.strip()]


def test_sigkill_mid_training_then_resume_matches_uninterrupted(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": STEPS, "save_steps": 2, "save_total_limit": 3})
    env = subprocess_env(tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"

    ref = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={full}", "--no-progress"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]

    code = sigkill_at(glm_cmd("pretrain", str(cfg), f"training.output_dir={killed}", "--no-progress"),
                      killed / "checkpoint-4" / "trainer_state.json", tmp_path, env, poll=0.02)
    assert code == -signal.SIGKILL
    assert not (killed / f"checkpoint-{STEPS}").exists(), "the kill came too late to interrupt training"

    # debris a crash can leave: a half-written checkpoint and one whose state file never came
    (killed / "checkpoint-98.tmp" / "global_step98").mkdir(parents=True)
    (killed / "checkpoint-99").mkdir()
    (killed / "checkpoint-99" / "adapter_model.safetensors").write_bytes(b"partial")

    res = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={killed}", "--resume",
                                 "--no-progress"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr and "checkpoint-9" not in res.stderr.split("resumed from")[1][:80]

    ref_log, res_log = _log(full), _log(killed)
    assert [r["current_steps"] for r in res_log] == list(range(1, STEPS + 1))
    # deterministic CPU settings: bit-exact, not merely close
    assert res_log[-1]["loss"] == ref_log[-1]["loss"]
    assert [r["loss"] for r in res_log] == [r["loss"] for r in ref_log]

    a = load_file(str(full / "adapter_model.safetensors"))
    b = load_file(str(killed / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # never the frozen LLM: the adapter and the DeepSpeed module file hold graph-side tensors only
    assert not [k for k in a if k.startswith("llm.")]
    ds_state = torch.load(full / f"checkpoint-{STEPS}" / f"global_step{STEPS}" / "mp_rank_00_model_states.pt",
                          weights_only=False)
    assert ds_state["module"] and not [k for k in ds_state["module"] if k.startswith("llm.")]
    # rotation kept the newest save_total_limit checkpoints
    assert sorted(p.name for p in full.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-12", "checkpoint-8"]


def test_checkpoints_leave_out_a_tied_lm_head_and_resume(tmp_path):
    # a tied-embedding LLM (SmolLM2's layout): named_parameters() lists the LM head once, under the
    # embedding's name, so DeepSpeed's exclude_frozen_parameters alone kept the head in every checkpoint
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 1, "save_total_limit": 3},
                            model={**TINY_CONFIG["model"], "llm": {"name": "tiny-random-smollm2", "max_length": 1024}})
    env, out = subprocess_env(tmp_path), tmp_path / "run"
    done = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={out}", "--no-progress"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ds_state = torch.load(out / "checkpoint-1" / "global_step1" / "mp_rank_00_model_states.pt", weights_only=False)
    assert ds_state["module"] and not [k for k in ds_state["module"] if k.startswith("llm.")]
    shutil.rmtree(out / "checkpoint-2")
    res = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={out}", "--resume", "--no-progress"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "resumed from" in res.stderr, res.stderr[-3000:]
    assert [r["current_steps"] for r in _log(out)] == [1, 2]
