"""Few-shot splits: reproducibility, disjointness, held-out classes, manifest round trip and version check."""

import json

import pytest
import torch

from glm.core.data.errors import DataValidationError, InsufficientNodesError, SplitMismatchError
from glm.core.data.splits import K_SHOTS, load_split, make_few_shot_split
from glm.core.data.tag import load_citeseer_tag, synthetic_tag


@pytest.fixture(scope="module")
def tag():
    return synthetic_tag(num_nodes=200, num_classes=4, seed=0)


def test_split_reproducible_and_seed_sensitive(tag):
    a = make_few_shot_split(tag, 2, 5, seed=3)
    b = make_few_shot_split(tag, 2, 5, seed=3)
    c = make_few_shot_split(tag, 2, 5, seed=4)
    assert a == b
    assert (a.train, a.heldout_classes) != (c.train, c.heldout_classes)


def test_split_structure(tag):
    s = make_few_shot_split(tag, 2, 5, seed=1, val_per_class=4, test_per_class=20)
    held = s.class_indices(tag)
    assert len(s.train) == 10 and len(s.val) == 8 and len(s.test) == 40
    assert not (set(s.train) & set(s.val) or set(s.train) & set(s.test) or set(s.val) & set(s.test))
    for part in (s.train, s.val, s.test):
        assert set(tag.labels[part].tolist()) == set(held)
    counts = torch.bincount(tag.labels[s.train], minlength=tag.num_classes)
    assert all(int(counts[c]) == 5 for c in held)
    assert set(s.pretrain_classes) | set(s.heldout_classes) == set(tag.class_names)
    assert not set(s.pretrain_classes) & set(s.heldout_classes)
    assert set(tag.labels[s.pretrain].tolist()) == set(s.class_indices(tag, "pretrain"))
    assert len(s.pretrain) == int(torch.isin(tag.labels, torch.tensor(s.class_indices(tag, "pretrain"))).sum())


def test_explicit_heldout_classes(tag):
    s = make_few_shot_split(tag, 2, 1, heldout_classes=["Vision", 0])
    assert s.heldout_classes == ["Vision", "Robotics"]
    with pytest.raises(DataValidationError, match="heldout_classes"):
        make_few_shot_split(tag, 2, 1, heldout_classes=["Vision", "Nope"])


def test_manifest_round_trip_and_mismatch(tag, tmp_path):
    s = make_few_shot_split(tag, 3, 5, seed=2)
    path = s.save(tmp_path / "split.json")
    assert not list(tmp_path.glob(".*tmp"))
    raw = json.loads(path.read_text())
    assert raw["dataset"] == "synthetic" and raw["dataset_hash"] == tag.content_hash() and raw["k_shot"] == 5
    assert load_split(path, tag) == s
    other = synthetic_tag(num_nodes=200, num_classes=4, seed=1)
    with pytest.raises(SplitMismatchError, match="content hash"):
        load_split(path, other)
    raw.pop("train")
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(DataValidationError, match="train"):
        load_split(tmp_path / "bad.json")


def test_insufficient_nodes():
    small = synthetic_tag(num_nodes=24, num_classes=4)
    with pytest.raises(InsufficientNodesError, match="has 6 nodes"):
        make_few_shot_split(small, 2, 5, val_per_class=5)
    with pytest.raises(DataValidationError, match="n_way"):
        make_few_shot_split(small, 5, 1)


def test_citeseer_paper_shots(data_dir):
    tag = load_citeseer_tag(data_dir)
    for k in K_SHOTS:
        s = make_few_shot_split(tag, 3, k, seed=0)
        assert len(s.train) == 3 * k and len(s.test) == 300
        assert make_few_shot_split(tag, 3, k, seed=0).train == s.train
