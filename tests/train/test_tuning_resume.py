"""A LoRA run under the ``4090-lora`` recipe (ZeRO-2, optimizer offloaded to the CPU, micro-batch 1 x
accumulation 16, LoRA r=64, all from the recipe) through the real DeepSpeed engine on CPU (gloo):
killed with SIGKILL after its first checkpoint, resumed, and bit-identical to an uninterrupted run --
LoRA tensors, graph side, losses. Only trainable tensors reach the optimizer and the checkpoints."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from train_helpers import glm_cmd, sigkill_at, subprocess_env, write_tiny_config

pytest.importorskip("peft", reason='PEFT is not installed: pip install -e ".[quant]"')
STEPS = 4


def _losses(run):
    return [json.loads(l)["loss"] for l in (run / "trainer_log.jsonl").read_text().splitlines() if l.strip()]


@pytest.mark.slow  # 38 s; kill -9 resume stays in the fast suite (test_resume.py), LoRA under ZeRO-3 below
def test_4090_lora_recipe_kill9_resume_is_bit_exact(tmp_path):
    cfg = write_tiny_config(tmp_path, recipe="4090-lora",
                            training={"max_steps": STEPS, "save_steps": 2, "learning_rate": 1e-2,
                                      "deterministic": True, "warmup_steps": 1, "logging_steps": 1})
    env = subprocess_env(tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"
    ref = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={full}", "--no-progress"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert "recipe 4090-lora (ZeRO-2)" in ref.stderr and "accumulation 16" in ref.stderr

    code = sigkill_at(glm_cmd("pretrain", str(cfg), f"training.output_dir={killed}", "--no-progress"),
                      killed / "checkpoint-2" / "trainer_state.json", tmp_path, env, poll=0.01)
    assert code == -signal.SIGKILL
    assert not (killed / f"checkpoint-{STEPS}").exists(), "the kill came too late to interrupt training"
    res = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={killed}", "--resume", "--no-progress"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr

    assert _losses(killed) == _losses(full)
    a, b = (load_file(str(run / "adapter_model.safetensors")) for run in (full, killed))
    assert a.keys() == b.keys()
    lora = [k for k in a if ".lora_A." in k or ".lora_B." in k]
    assert lora and all(k.startswith("base_model.model.") for k in lora)
    assert a[lora[0]].shape[0] == 64 or a[lora[0]].shape[1] == 64  # r=64 from the recipe
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # only trainable tensors: LoRA + graph side, never a base weight (adapter and DeepSpeed module file)
    assert not [k for k in a if k.startswith("llm.") or ".base_layer." in k]
    ds = torch.load(full / f"checkpoint-{STEPS}" / f"global_step{STEPS}" / "mp_rank_00_model_states.pt",
                    weights_only=False)
    base = [k for k in ds["module"] if k.startswith("llm.") and ".lora_" not in k]
    assert ds["module"] and not base, base[:3]
    assert (full / "adapter_config.json").is_file()


def test_lora_under_zero3_offload_then_a_frozen_overwrite(tmp_path):
    """ZeRO-3 gathers the LoRA tensors into the adapter; overwriting that LoRA run with a frozen one
    removes its adapter_config.json (PEFT would otherwise look for LoRA tensors that are gone)."""
    from safetensors import safe_open

    cfg = write_tiny_config(tmp_path, recipe="3090-zero3-offload",
                            training={"max_steps": 2, "save_steps": 2, "learning_rate": 1e-2})
    run, env = tmp_path / "run", subprocess_env(tmp_path)
    r = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={run}", "model.llm.tuning=lora",
                               "model.llm.lora.r=4", "--no-progress"),
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(ZeRO-3)" in r.stderr and (run / "adapter_config.json").is_file()
    with safe_open(str(run / "adapter_model.safetensors"), "pt") as f:
        b = [f.get_tensor(k) for k in f.keys() if ".lora_B." in k]
        a = [f.get_tensor(k) for k in f.keys() if ".lora_A." in k]
    assert a and b and all(t.shape[1] == 4 for t in b) and all(t.shape[0] == 4 for t in a)  # gathered, not partitions
    assert any(float(t.abs().max()) > 0 for t in b), "LoRA B did not train under ZeRO-3"
    r = subprocess.run(glm_cmd("pretrain", str(cfg), f"training.output_dir={run}", "recipe=cpu",
                               "training.max_steps=1", "--overwrite", "--no-progress"),
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "adapter_model.safetensors").is_file() and not (run / "adapter_config.json").exists()
