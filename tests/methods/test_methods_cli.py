"""Every method through the CLI on the tiny model: ``glm methods``, pretrain -> adapt -> eval, stage choice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import run_glm, subprocess_env, write_tiny_config  # noqa: E402

from glm.cli.main import main  # noqa: E402


def test_methods_lists_stages_and_trainable_counts(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    assert main(["methods", str(cfg), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) >= {"graphlama", "graphgpt", "llaga"}
    lama = {s["stage"]: s for s in rows["graphlama"]["stages"]}
    assert lama["adapt"]["trainable"] == 16 * 20 + 16 + 2  # task-related linear over [16 + 4 hop] + alphas
    gpt = {s["stage"]: s for s in rows["graphgpt"]["stages"]}
    assert gpt["match"]["trainable"] == gpt["task"]["trainable"] == 16 * 64 + 64  # projector only
    assert rows["llaga"]["tokens"] == "10 per graph"  # the tree follows data.fanout [3, 2] and not rows["llaga"]["uses_encoder"]
    assert main(["methods", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "match" in text and "[glm pretrain]" in text and "[glm adapt]" in text


def test_stage_flag_is_checked(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    assert main(["pretrain", str(cfg), "--method", "graphgpt", "--stage", "adapt", "--print-config"]) == 2
    assert "use glm adapt for it" in capsys.readouterr().err
    assert main(["pretrain", str(cfg), "--method", "graphgpt", "--stage", "nope", "--print-config"]) == 2
    assert "method 'graphgpt' has stages match, task, adapt" in capsys.readouterr().err
    assert main(["pretrain", str(cfg), "--method", "graphgpt", "--stage", "match", "--print-config"]) == 0
    assert "stage: match" in capsys.readouterr().out
    assert main(["adapt", str(cfg), "--method", "graphgpt", "--print-config"]) == 0
    assert "stage: adapt" in capsys.readouterr().out


@pytest.mark.parametrize("method,extra", [("graphgpt", []), ("llaga", [])])
def test_pretrain_adapt_eval(method, extra, tmp_path, capsys, monkeypatch):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0})
    pre, ada = tmp_path / "pre", tmp_path / "ada"
    r = run_glm(tmp_path, "pretrain", str(cfg), "--method", method, "--output-dir", str(pre), "--no-progress", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_glm(tmp_path, "adapt", str(cfg), "--method", method, "--output-dir", str(ada), f"training.init_from={pre}",
                "--no-progress", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "adapt: 2 steps" in r.stdout
    from glm.core.adapter import read_adapter

    tensors, meta = read_adapter(ada / "adapter_model.safetensors")
    assert meta["method"] == method and meta["stage"] == "adapt"
    assert any(k.startswith("projector.") for k in tensors) and not any(k.startswith(("llm.", "encoder.")) for k in tensors)
    for key, value in subprocess_env(tmp_path).items():
        if key.startswith(("GLM_", "HF_", "TRANSFORMERS_", "TL_")):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(cfg), "--method", method, "--adapter", str(ada), *extra]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and str(pre) in out
    assert main(["eval", str(cfg), "--method", "graphlama" if method != "graphlama" else "llaga", "--adapter", str(ada)]) == 2
    assert f"method: adapter '{method}'" in capsys.readouterr().err
