"""``glm eval --task link_prediction``: hop distances against a hand-checked graph, the report against
direct counts, and the CLI end to end on a tiny run (real model, synthetic TAG)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from glm.core.eval.link import link_report, pair_distances
from glm.core.eval.predict import EvalResult, Prediction

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import write_tiny_config  # noqa: E402


def test_pair_distances_on_a_path_and_a_separate_component():
    # 0 - 1 - 2 - 3 - 4   and   5 - 6 (another component)
    und = [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6)]
    ei = torch.tensor(und + [(b, a) for a, b in und]).t()
    pairs = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (2, 1), (6, 5)]
    assert pair_distances(ei, 7, pairs) == [1, 2, 3, 3, 3, 1, 1]


def test_link_report_matches_direct_counts():
    from sklearn.metrics import roc_auc_score

    rows = [("yes", 2.0, 1), ("yes", -1.0, 1), ("no", 0.5, 2), ("no", -2.0, 3), ("no", -0.5, 2), ("yes", 1.0, 1)]
    preds = [Prediction(None, lab, "yes" if s > 0 else "no", "yes" if s > 0 else "no", (s > 0) == (lab == "yes"),
                        {"yes": s, "no": 0.0}) for lab, s, _ in rows]
    result = EvalResult("choice", "exact", 0.0, 0.0, 0.0, preds)
    report = link_report(result, [d for *_, d in rows])
    assert report["auc"] == pytest.approx(roc_auc_score([lab == "yes" for lab, *_ in rows], [s for _, s, _ in rows]))
    assert report["accuracy"] == pytest.approx(4 / 6) and report["recall"] == pytest.approx(2 / 3)
    assert report["precision"] == pytest.approx(2 / 3)
    by = report["by_distance"]
    assert {k: v["pairs"] for k, v in by.items()} == {"1": 3, "2": 2, ">=3": 1}
    assert by["1"]["linked"] == 3 and by["2"]["said_yes"] == pytest.approx(0.5) and by[">=3"]["accuracy"] == 1.0


def test_cli_link_prediction_eval(tmp_path, capsys, monkeypatch):
    import yaml

    from glm.cli.main import main
    from glm.core.adapter import save_adapter
    from glm.core.config import config_from_dict
    from glm.core.train.pipeline import build_model

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path)
    config = config_from_dict(yaml.safe_load(cfg.read_text()), str(cfg))
    run = tmp_path / "run"
    run.mkdir()
    save_adapter(build_model(config), run / "adapter_model.safetensors", "adapt")  # an untrained graph side
    out, rep = tmp_path / "lp.jsonl", tmp_path / "rep"
    assert main(["eval", str(cfg), "--adapter", str(run), "--task", "link_prediction", "--pairs", "16",
                 "--output", str(out), "--report-dir", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert "link prediction: 16 pairs, AUC" in printed and "hop distance" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and all((row["hop_distance"] == 1) == (row["label"] == "yes") for row in rows)
    report = json.loads((rep / "link_report.json").read_text())
    assert sum(v["pairs"] for v in report["by_distance"].values()) == 16
    assert main(["eval", str(cfg), "--adapter", str(run), "--task", "link_prediction", "--pairs", "1"]) == 2
    assert "--pairs must be >= 2" in capsys.readouterr().err
