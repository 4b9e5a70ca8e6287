"""Pre-training on two graphs (data.datasets): each graph's share, its own prompt words, one feature source."""

from __future__ import annotations

import pytest

from glm.core.config import ConfigError, load_config
from train_helpers import write_tiny_config

EXTRA = {"dataset": "synthetic", "options": {"num_nodes": 40, "seed": 1}, "weight": 0.5,
         "prompt": {"graph": "web graph", "node": "page", "nodes": "pages"}}


def test_two_graph_pretraining_mix(tmp_path, monkeypatch):
    from glm.core.train.pipeline import prepare_data, run_stage, stage_samples

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path, data={"datasets": [EXTRA], "tasks": ["node_classification", "link_prediction"]},
                            training={"max_steps": 2, "save_steps": 0, "output_dir": str(tmp_path / "run")})
    config = load_config(cfg)
    data = prepare_data(config)
    samples = stage_samples(config, data)
    own = [s for s in samples if "citation graph" in s.prompt]
    extra = [s for s in samples if "web graph" in s.prompt]
    assert len(own) == 2 * 4 and len(extra) == 2 * 2, "4 samples per task on the run's graph, weight 0.5 on the other"
    assert len(own) + len(extra) == len(samples)
    classes = {s.meta.get("label") for s in extra if s.task == "node_classification"}
    assert classes, "every class of the extra graph pre-trains (the held-out ones of data.dataset included)"
    result, _, _ = run_stage(config, progress=False)
    assert result.global_step == 2


@pytest.mark.parametrize("entry,named", [
    ({"dataset": "synthetic", "weight": 0}, r"data.datasets\[0\].weight must be a number > 0"),
    ({"dataset": "synthetic", "features": "x.npy"}, "node features from a matrix, but data.dataset's from the embedder"),
    ({"dataset": "synthetic", "embedder": "minilm"}, "differs from data.embedder 'hashing'"),
    ({"dataset": "synthetic", "fanout": [3]}, "unknown keys \\['fanout'\\]"),
    ({"options": {}}, "with at least 'dataset'"),
])
def test_bad_entries_are_named_when_the_config_is_read(tmp_path, entry, named):
    cfg = write_tiny_config(tmp_path, data={"datasets": [entry]})
    with pytest.raises(ConfigError, match=named):
        load_config(cfg)
