"""data.propagate / data.standardize: the encoder reads SGC-smoothed and / or z-scored features; adapters record
it; the bench's feature rows do not."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import write_tiny_config  # noqa: E402


def test_propagate_is_the_normalised_adjacency_power():
    from glm.core.data.propagate import propagate

    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a path 0 - 1 - 2
    x = torch.eye(3)
    a = torch.tensor([[1., 1, 0], [1, 1, 1], [0, 1, 1]])  # A + I
    d = a.sum(1).rsqrt()
    norm = d[:, None] * a * d[None, :]
    assert torch.allclose(propagate(x, edge_index, 2), norm @ norm @ x, atol=1e-6)
    assert torch.equal(propagate(x, edge_index, 0), x)


def test_prepare_data_smooths_the_encoder_input_and_keeps_the_raw_features(tmp_path, monkeypatch):
    from glm.core.config import load_config
    from glm.core.data.matrix import feature_source
    from glm.core.data.propagate import propagate
    from glm.core.train.pipeline import prepare_data

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    plain = prepare_data(load_config(write_tiny_config(tmp_path)))
    config = load_config(write_tiny_config(tmp_path, data={"propagate": 2}))
    smooth = prepare_data(config)
    assert torch.equal(smooth.raw_x, plain.source.x) and plain.raw_x is None
    assert torch.allclose(smooth.source.x, propagate(plain.source.x, plain.tag.edge_index, 2))
    assert feature_source(config.data) == "hashing+propagate2"


def test_a_graph_side_trained_on_other_propagation_is_refused(tmp_path, monkeypatch, capsys):
    from glm.cli.main import main

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path, training={"max_steps": 1, "save_steps": 0, "logging_steps": 1})
    assert main(["pretrain", str(cfg), "--output-dir", str(tmp_path / "pre")]) == 0
    assert main(["adapt", str(cfg), "--output-dir", str(tmp_path / "ad"), f"training.init_from={tmp_path / 'pre'}",
                 "data.propagate=2"]) == 2
    assert "now 'hashing+propagate2'" in capsys.readouterr().err
    assert main(["adapt", str(cfg), "--output-dir", str(tmp_path / "ad"), f"training.init_from={tmp_path / 'pre'}",
                 "data.standardize=true"]) == 2
    assert "now 'hashing+standardize'" in capsys.readouterr().err


def test_standardize_z_scores_each_column():
    from glm.core.data.standardize import standardize

    x = torch.tensor([[1.0, 5.0, 0.9], [3.0, 5.0, 1.1], [5.0, 5.0, 1.0]])
    z = standardize(x)
    assert torch.allclose(z[:, 0], torch.tensor([-1.0, 0.0, 1.0])) and torch.equal(z[:, 1], torch.zeros(3))
    assert torch.allclose(z[:, 2], torch.tensor([-1.0, 1.0, 0.0]), atol=1e-5)  # a tiny spread becomes unit


def test_prepare_data_standardizes_after_propagating_and_keeps_the_raw_features(tmp_path, monkeypatch):
    from glm.core.config import load_config
    from glm.core.data.matrix import feature_source
    from glm.core.data.propagate import propagate
    from glm.core.data.standardize import standardize
    from glm.core.train.pipeline import prepare_data

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    plain = prepare_data(load_config(write_tiny_config(tmp_path)))
    config = load_config(write_tiny_config(tmp_path, data={"propagate": 2, "standardize": True}))
    both = prepare_data(config)
    assert torch.equal(both.raw_x, plain.source.x)
    assert torch.allclose(both.source.x, standardize(propagate(plain.source.x, plain.tag.edge_index, 2)), atol=1e-6)
    assert feature_source(config.data) == "hashing+propagate2+standardize"
    only = prepare_data(load_config(write_tiny_config(tmp_path, data={"standardize": True})))
    assert torch.equal(only.raw_x, plain.source.x) and torch.allclose(only.source.x, standardize(plain.source.x))
