"""Precomputed node features (data.features) and the synthetic TAG generator behind the scale bench."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.numpy import save_file

from glm.cli.main import main
from glm.core.data.errors import DataValidationError
from glm.core.data.matrix import feature_source_id, matrix_features


def test_npy_of_the_encoder_width_is_used_in_place(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    feats = matrix_features(str(tmp_path / "f.npy"), 6, 4)
    assert torch.equal(feats, torch.from_numpy(x))
    (tmp_path / "f.npy").unlink()  # the tensor reads the mapped pages, not a copy made at load
    assert torch.equal(feats, torch.from_numpy(x))


def test_formats_agree_and_other_widths_are_projected(tmp_path):
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    save_file({"emb": x, "other": x[:, :2].copy()}, str(tmp_path / "f.safetensors"))
    pq.write_table(pa.table({"id": list("abcde"), "vec": pa.array(list(x), pa.list_(pa.float32(), 8))}),
                   tmp_path / "n.parquet")
    a = matrix_features(str(tmp_path / "f.npy"), 5, 3)
    b = matrix_features(f"{tmp_path / 'f.safetensors'}:emb", 5, 3)
    c = matrix_features(f"{tmp_path / 'n.parquet'}:vec", 5, 3)
    assert a.shape == (5, 3) and torch.equal(a, b) and torch.equal(a, c)
    assert feature_source_id(f"{tmp_path / 'n.parquet'}:vec") == "matrix:n.parquet:vec"


@pytest.mark.parametrize("array,rows,match", [
    (np.zeros((4, 3), np.float32), 5, "5 rows .one per node, in node order., found 4 rows"),
    (np.zeros((5,), np.float32), 5, "a 2-D matrix"),
    (np.zeros((5, 3), np.int64), 5, "float16, float32 or float64, found int64"),
    (np.array([[0.0, np.nan]] * 5, np.float32), 5, "NaN/inf in row 0"),
])
def test_bad_matrices_are_named(tmp_path, array, rows, match):
    np.save(tmp_path / "f.npy", array)
    with pytest.raises(DataValidationError, match=match):
        matrix_features(str(tmp_path / "f.npy"), rows, 3)


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "f.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(DataValidationError, match="never unpickled"):
        matrix_features(str(tmp_path / "f.npy"), 3, 2)
    save_file({"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 2), np.float32)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(DataValidationError, match="PATH:KEY"):
        matrix_features(str(tmp_path / "two.safetensors"), 3, 2)


def test_synth_then_prepare_with_the_matrix(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["data", "synth", str(out), "--nodes", "500", "--classes", "5", "--feature-dim", "16"]) == 0
    assert main(["data", "prepare", "tag_files", "--nodes", str(out / "nodes.parquet"), "--edges",
                 str(out / "edges.parquet"), "--features", str(out / "features.npy"), "--dim", "16",
                 "--cache-dir", str(tmp_path / "c"), "--subgraphs"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("g: 500 nodes") and "features (500, 16)" in line and "500 subgraphs" in line
    from glm.core.data.loaders import load_tag_files

    tag = load_tag_files(out / "nodes.parquet", out / "edges.parquet")
    same = (tag.labels[tag.edge_index[0]] == tag.labels[tag.edge_index[1]]).float().mean()
    assert tag.num_classes == 5 and same > 0.7, "homophilous by structure"
    assert main(["data", "synth", str(out), "--nodes", "1"]) == 2


def test_an_adapter_from_other_features_is_refused(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from train_helpers import write_tiny_config

    from glm.core.adapter import save_adapter
    from glm.core.config import load_config
    from glm.core.factory import build_model
    from glm.core.train.pipeline import PipelineError, check_feature_compatibility

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path)
    path = save_adapter(build_model(load_config(cfg)), tmp_path / "a.safetensors", "pretrain",
                        extra_metadata={"features": {"embedder": "matrix:arxiv_sbert.npy", "dim": 16, "dataset": "x"}})
    with pytest.raises(PipelineError, match="embedder: pre-trained with 'matrix:arxiv_sbert.npy'"):
        check_feature_compatibility(load_config(cfg), path)
    check_feature_compatibility(load_config(cfg, [f"data.features={tmp_path / 'arxiv_sbert.npy'}"]), path)
