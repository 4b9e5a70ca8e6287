"""Validation gaps from the fault catalogue: each bad input is a named, one-line error (or, for the
128 KiB field and the torn cases, just works)."""

from __future__ import annotations

import json

import pytest
import torch

from glm.cli.main import main
from glm.core.config import ConfigError, load_config
from glm.core.data.errors import DataValidationError, InsufficientNodesError, MalformedRecordError
from glm.core.data.loaders import load_tag_files
from glm.core.data.splits import make_few_shot_split
from glm.core.data.tag import build_tag, synthetic_tag
from glm.core.data.tasks import link_pairs
from glm.core.graph import GraphValidationError, Subgraph
from glm.core.plan.models import PlanModelError, shape_from_config
from glm.core.sample import Sample


@pytest.mark.parametrize("override,named", [
    ("model.llm.max_length=-5", "model.llm.max_length must be >= 2, found -5"),
    ("data.k_shot=0", "data.k_shot must be >= 1, found 0"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens must be >= 1"),
])
def test_config_ranges(override, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        load_config(None, [override])


def _write_nodes(tmp_path, text: str):
    nodes, edges = tmp_path / "nodes.csv", tmp_path / "edges.csv"
    nodes.write_text("id,text,label\na,%s,x\nb,short,y\n" % text, encoding="utf-8")
    edges.write_text("source,target\na,b\n", encoding="utf-8")
    return nodes, edges


def test_a_csv_field_over_128_kib_loads(tmp_path):
    nodes, edges = _write_nodes(tmp_path, "w " * 100_000)  # 200 KB
    assert load_tag_files(nodes, edges).num_nodes == 2


def test_non_utf8_file_names_itself(tmp_path):
    nodes, edges = _write_nodes(tmp_path, "fine")
    nodes.write_bytes(nodes.read_bytes().replace(b"fine", b"caf\xe9"))
    with pytest.raises(MalformedRecordError, match=r"nodes\.csv: field 'encoding': expected UTF-8 text"):
        load_tag_files(nodes, edges)


def test_n_way_error_names_the_config_key():
    with pytest.raises(DataValidationError, match=r"config: field 'data.n_way': expected 1\.\.4"):
        make_few_shot_split(synthetic_tag(), 9, 2, 0)


def test_link_prediction_on_an_edgeless_graph_is_refused():
    tag = build_tag("lonely", ["a", "b", "c"], ["x", "y", "z"], ["p", "q", "p"], [])
    with pytest.raises(InsufficientNodesError, match="link prediction needs edges"):
        link_pairs(tag, 4)


@pytest.mark.parametrize("gpu", ["nan", "inf", "-3"])
def test_plan_gpu_must_be_a_positive_size(gpu, capsys):
    assert main(["plan", "model.llm.name=smollm2-135m", "--gpu", gpu]) == 2
    assert "glm: error:" in capsys.readouterr().err


@pytest.mark.parametrize("config,named", [([1, 2], "expected a JSON object"),
                                          ({"hidden_size": 64, "num_attention_heads": 0, "num_hidden_layers": 2,
                                            "vocab_size": 10}, "num_attention_heads must be a positive integer")])
def test_bad_llm_config_json(config, named, tmp_path, capsys):
    with pytest.raises(PlanModelError, match=named):
        shape_from_config(config, "x")
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["plan", f"model.llm.name={folder}"]) == 2
    assert named in capsys.readouterr().err


def test_collator_validates_subgraphs():
    from glm.core.data.collate import GraphCollator
    from glm.core.llm import tiny_tokenizer

    collate = GraphCollator(tiny_tokenizer())
    nan = Subgraph(x=torch.tensor([[0.0], [float("nan")]]), edge_index=torch.tensor([[0], [1]]))
    moved = Subgraph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]), target=1)
    for graph, named in ((nan, "NaN/inf"), (moved, "target must be local node 0")):
        sample = Sample(prompt="see <graph>", answer="a", graphs=[graph], task="node_classification", task_text="t",
                        meta={"node": 7, "dataset": "toy"})
        with pytest.raises(GraphValidationError, match=f"node_classification sample 7 \\(toy\\) graph 0: .*{named}"):
            collate([sample])
    assert GraphCollator(tiny_tokenizer(), validate=False)([sample]).graphs.num_graphs == 1


def test_eval_and_infer_refuse_bad_requests(tmp_path, capsys, monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from train_helpers import write_tiny_config

    from glm.core.adapter import save_adapter
    from glm.core.factory import build_model

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path)
    model = build_model(load_config(cfg))
    adapter = save_adapter(model, tmp_path / "a.safetensors", "adapt")
    assert main(["eval", str(cfg), "--adapter", str(adapter), "--split", "val"]) == 2
    assert "--split val: the split has no val nodes" in capsys.readouterr().err
    assert main(["infer", str(cfg), "--adapter", str(adapter), "--nodes", "1,99999"]) == 2
    assert "--nodes: [99999] outside synthetic's nodes" in capsys.readouterr().err
    (tmp_path / "outdir").mkdir()
    assert main(["eval", str(cfg), "--adapter", str(adapter), "--output", str(tmp_path / "outdir")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_recipe_rejected_by_deepspeed_is_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from train_helpers import glm_cmd, subprocess_env, write_tiny_config

    cfg = write_tiny_config(tmp_path, training={"max_steps": 1})
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                                  "zero_optimization": {"stage": 9}}))
    done = subprocess.run(glm_cmd("pretrain", str(cfg), "--recipe", str(recipe), "--output-dir", str(tmp_path / "o"),
                                  "--no-progress"), cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "glm: error:" in done.stderr and not (tmp_path / "o").exists()
