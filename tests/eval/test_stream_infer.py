"""Streaming inference: ``glm infer --nodes all|FILE`` chunk by chunk, resumable, equal to one pass."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import write_tiny_config  # noqa: E402

from glm.cli.main import main  # noqa: E402
from glm.core.eval import stream  # noqa: E402


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    from glm.core.adapter import save_adapter
    from glm.core.config import load_config
    from glm.core.factory import build_model

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path)
    adapter = save_adapter(build_model(load_config(cfg)), tmp_path / "a.safetensors", "adapt")
    return cfg, adapter


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_all_nodes_in_chunks_then_resume_after_a_torn_line(tiny, tmp_path, capsys, monkeypatch):
    cfg, adapter = tiny
    monkeypatch.setattr(stream, "CHUNK_NODES", 10)
    out = tmp_path / "all.jsonl"
    args = ["infer", str(cfg), "--adapter", str(adapter), "--nodes", "all", "--mode", "choice", "--output", str(out),
            "--no-progress"]
    assert main(args) == 0
    full = _rows(out)
    assert [r["node"] for r in full] == list(range(48)), "every node once, in order (unlabelled nodes too)"
    assert "infer: 48 nodes in" in capsys.readouterr().err
    # stopped after 2 chunks, the third torn mid-line: --resume keeps 20 lines and predicts the other 28
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:20]) + lines[20][:15], encoding="utf-8")
    assert main(args + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "infer: 28 nodes in" in err and "20 were already in" in err
    assert _rows(out) == full
    # another node list cannot resume this output
    picked = tmp_path / "nodes.npy"
    np.save(picked, np.array([5, 3, 1]))
    assert main(["infer", str(cfg), "--adapter", str(adapter), "--nodes", str(picked), "--output", str(out),
                 "--resume", "--mode", "choice"]) == 2
    assert "not where this node list is" in capsys.readouterr().err and _rows(out) == full
    assert main(["infer", str(cfg), "--adapter", str(adapter), "--nodes", str(picked), "--output", str(out),
                 "--mode", "choice", "--no-progress"]) == 0
    assert [r["node"] for r in _rows(out)] == [5, 3, 1]
    assert [r["prediction"] for r in _rows(out)] == [full[5]["prediction"], full[3]["prediction"], full[1]["prediction"]]


def test_node_files_are_checked(tmp_path):
    (tmp_path / "n.txt").write_text("1\n2\nx\n", encoding="utf-8")
    with pytest.raises(stream.NodeListError, match="expected node indices"):
        stream.read_node_list(str(tmp_path / "n.txt"), 10)
    (tmp_path / "m.txt").write_text("1\n20\n", encoding="utf-8")
    with pytest.raises(stream.NodeListError, match=r"\[20\] outside g's nodes 0..9"):
        stream.read_node_list(str(tmp_path / "m.txt"), 10, "g")
    assert stream.read_node_list("all", 3).tolist() == [0, 1, 2]


def test_choice_scoring_says_when_it_falls_back_to_one_pass_per_class(tiny, caplog):
    """Two class names with one first token: every class gets its own forward pass, and the log says so."""
    import logging

    from glm.core.config import load_config
    from glm.core.data import tasks as T
    from glm.core.eval.predict import evaluate
    from glm.core.factory import build_model
    from glm.core.train.pipeline import make_collator, prepare_data

    cfg, _ = tiny
    config = load_config(cfg)
    data = prepare_data(config)
    model = build_model(config)
    held = data.split.class_indices(data.tag, "heldout")
    collators = make_collator(config, model, data), make_collator(config, model, data, inference=True)
    for names, warned in ((["Alpha", "Beta"], False), (["Robot arms", "Robotics"], True)):
        for c, name in zip(held, names):
            data.tag.class_names[c] = name
        samples = T.node_classification(data.source, data.split.test[:2], classes=held, max_text_words=4)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="glm.core.eval.predict"):
            evaluate(model, samples, *collators)
        assert ("begin with the same token" in caplog.text) == warned, names
