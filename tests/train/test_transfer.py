"""Transfer to a graph the pre-training never saw: pre-train on one TAG, adapt with data.split=new_graph on
another (every class new), refuse other node features and pre-training on a new-graph split."""

from __future__ import annotations

import subprocess

import pytest
from train_helpers import glm_cmd, subprocess_env, write_tiny_config


def _run(tmp_path, *args):
    return subprocess.run(glm_cmd(*args), cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # 35 s; the transfer path runs in the fast suite through test_pretrain_graph_split_and_the_transfer_bench
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
    done = _run(tmp_path, "adapt", str(cfg), "--output-dir", str(tmp_path / "a3"), f"training.init_from={pre}",
                "--no-progress", "model.token_norm=embedding", *other)
    assert done.returncode == 2 and "model.token_norm differs (pre-trained with 'none', now 'embedding')" in done.stderr


def test_pretrain_graph_split_and_the_transfer_bench(tmp_path, capsys):
    import json

    import yaml

    from glm.cli.main import main
    from glm.core.config import load_config
    from glm.core.train.pipeline import PipelineError, fewshot_samples, prepare_data

    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0},
                            data={"split": "pretrain_graph", "test_per_class": 3, "cache_dir": str(tmp_path / "cache")})
    pre_cfg = tmp_path / "pre.yaml"
    cfg.rename(pre_cfg)
    new = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0},
                            data={"split": "new_graph", "options": {"seed": 1, "num_nodes": 40, "num_classes": 3},
                                  "k_shot": 2, "test_per_class": 3})
    # every class pre-trains; nothing is held out, so there is nothing to adapt to on that graph
    pre = load_config(pre_cfg)
    data = prepare_data(pre)
    assert not data.split.heldout_classes and len(data.split.pretrain) == data.tag.num_nodes
    with pytest.raises(PipelineError, match="holds no class out"):
        fewshot_samples(pre, data)

    out = tmp_path / "bench"
    rows = ["--rows", "linear_probe,graphlama", "--seeds", "1", "--output-dir", str(out), "--no-progress"]
    assert main(["bench", "fewshot", str(new), *rows]) == 2  # a new graph cannot pre-train itself
    assert "--pretrain-config" in capsys.readouterr().err
    assert main(["bench", "fewshot", str(pre_cfg), *rows]) == 2  # nothing held out: nothing to score
    assert "holds no class out" in capsys.readouterr().err
    done = _run(tmp_path, "bench", "fewshot", str(new), "--pretrain-config", str(pre_cfg), *rows)
    assert done.returncode == 0, done.stderr[-3000:]
    run = next((tmp_path / "bench-cache").glob("graphlama-*"))  # the shared cache ($GLM_BENCH_CACHE) of this test
    pretrained = yaml.safe_load((run / "glm_config.yaml").read_text())
    assert pretrained["data"]["split"] == "pretrain_graph" and pretrained["data"]["options"].get("seed") is None
    report = json.loads((out / "bench.json").read_text())
    assert "(methods pre-trained on synthetic)" in report["title"]
    assert {s["row"]: s["test_nodes"] for s in report["summary"]} == {"linear_probe": 9, "graphlama": 9}
    # a k-curve on the new graph pre-trains once: --shots sets the new graph's k, not the pre-training's
    assert main(["bench", "fewshot", str(new), "--pretrain-config", str(pre_cfg), *rows[:-3], "--shots", "1,2",
                 "--output-dir", str(tmp_path / "curve"), "--no-progress"]) == 0
    assert [p.name for p in (tmp_path / "bench-cache").glob("graphlama-*")] == [run.name]
    for k in (1, 2):
        assert f"{k}-shot" in json.loads((tmp_path / "curve" / f"k{k}" / "bench.json").read_text())["title"]
