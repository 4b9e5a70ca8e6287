"""Transfer to a graph the pre-training never saw: pre-train on one TAG, adapt with data.split=new_graph on
another (every class new), refuse other node features and pre-training on a new-graph split."""

from __future__ import annotations

import subprocess

from train_helpers import glm_cmd, subprocess_env, write_tiny_config


def _run(tmp_path, *args):
    return subprocess.run(glm_cmd(*args), cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=600)


def test_pretrain_on_one_graph_adapt_on_another(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0})
    pre = tmp_path / "pre"
    assert _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(pre), "--no-progress").returncode == 0
    other = ["data.options={seed: 1, num_nodes: 40, num_classes: 3}", "data.split=new_graph", "data.k_shot=2",
             "data.test_per_class=3"]
    done = _run(tmp_path, "adapt", str(cfg), "--output-dir", str(tmp_path / "ada"), f"training.init_from={pre}",
                "--no-progress", *other)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 samples" in done.stderr  # 2 shots of each of the 3 (new) classes
    done = _run(tmp_path, "eval", str(cfg), "--adapter", str(tmp_path / "ada"), *other)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "9 nodes" in done.stdout

    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(tmp_path / "p2"), "--no-progress", *other)
    assert done.returncode == 2 and "data.split=new_graph" in done.stderr and "training.init_from" in done.stderr
    done = _run(tmp_path, "adapt", str(cfg), "--output-dir", str(tmp_path / "a2"), f"training.init_from={pre}",
                "--no-progress", "data.embedder=hashing-other", *other)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "node features differ (embedder: pre-trained with 'hashing' (on synthetic), now 'hashing-other')" \
        in done.stderr
