"""``glm bench choose``: the rules on reports with hand-computed answers, and its refusals (exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from glm.bench.choose import choose, read_candidate
from glm.bench.settings import BenchError
from glm.cli.main import main


def _fewshot(folder: Path, accuracies: list[float], train_s: float, overrides: list[str], pretrain_s: float = 0.0,
             name: str = "bench-val.json") -> Path:
    """A few-shot report of one row (graphlama) with one result per seed."""
    folder.mkdir(parents=True, exist_ok=True)
    results = [{"row": "graphlama", "seed": k, "accuracy": a, "test_nodes": 40, "train_seconds": train_s,
                "infer_seconds_per_node": 0.5, "extra": {"token_probe": 0.5}} for k, a in enumerate(accuracies)]
    (folder / name).write_text(json.dumps({"title": "t", "overrides": overrides, "results": results,
                                           "pretrain_seconds": {"graphlama": pretrain_s}, "pretrain_reused": {}}))
    return folder


def test_best_and_one_standard_error_rules(tmp_path):
    strong = _fewshot(tmp_path / "a", [0.80, 0.70, 0.75], 100.0, ["x=1"], pretrain_s=300.0)
    cheap = _fewshot(tmp_path / "b", [0.78, 0.72, 0.72], 40.0, ["x=2"])  # paired diffs -0.02, +0.02, -0.03
    weak = _fewshot(tmp_path / "c", [0.60, 0.55, 0.50], 10.0, ["x=3"])
    cands = [read_candidate(f, "graphlama", None)[0] for f in (strong, cheap, weak)]
    assert cands[0].cost_seconds == pytest.approx(300 + 100 + 0.5 * 40)  # pre-training + train + inference
    assert choose(cands, "best") is cands[0]
    assert choose(cands, "within-se") is cands[1]  # mean diff -0.01, SE of the diffs sqrt(7e-4 / 3) = 0.0153
    assert cands[1].diff == pytest.approx(-0.01) and cands[1].diff_se == pytest.approx(math.sqrt(7e-4 / 3))
    tighter = _fewshot(tmp_path / "d", [0.78, 0.68, 0.73], 40.0, ["x=4"])  # diffs -0.02 each: SE 0, outside
    assert choose([read_candidate(f, "graphlama", None)[0] for f in (strong, tighter)], "within-se").settings == "x=1"
    assert cands[2].diff == pytest.approx(-0.2)  # far outside one SE: never chosen
    assert read_candidate(strong, "graphlama", "token_probe")[0].mean == pytest.approx(0.5)


def test_a_reused_pre_training_of_unknown_seconds_makes_the_cost_unknown(tmp_path):
    """An older cache's stamp has no seconds: the candidate's cost is unknown ('-'), never the cheaper one."""
    known = _fewshot(tmp_path / "a", [0.80, 0.70, 0.75], 100.0, ["x=1"], pretrain_s=300.0)
    old = _fewshot(tmp_path / "b", [0.78, 0.72, 0.72], 40.0, ["x=2"])  # within one SE of the best
    report = json.loads((old / "bench-val.json").read_text())
    (old / "bench-val.json").write_text(json.dumps({**report, "pretrain_seconds": {},
                                                     "pretrain_reused": {"graphlama": None}}))
    cands = [read_candidate(f, "graphlama", None)[0] for f in (known, old)]
    assert cands[1].cost_seconds is None
    assert choose(cands, "within-se") is cands[0]
    (old / "bench-val.json").write_text(json.dumps({**report, "pretrain_seconds": {}, "pretrain_reused": {}}))
    assert read_candidate(old, "graphlama", None)[0].cost_seconds == pytest.approx(40 + 0.5 * 40)  # none: the row's


def test_generation_reports_default_to_rouge1(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    results = [{"row": "graphlama@0.8", "draw": d, "rouge1": r, "bleu": 1.0, "test_nodes": 40, "train_seconds": 5.0,
                "infer_seconds_per_node": 0.1} for d, r in enumerate([20.0, 22.0])]
    (folder / "bench-val.json").write_text(json.dumps({"overrides": [], "results": results,
                                                       "time": {"pretrain_seconds": {}, "pretrain_reused": {"graphlama": 7.0}}}))
    cand, metric = read_candidate(folder, "graphlama@0.8", None)
    assert metric == "rouge1" and cand.mean == 21.0 and cand.cost_seconds == pytest.approx(7.0 + 5.0 + 4.0)
    assert cand.settings == "(the config as is)"
    report = json.loads((folder / "bench-val.json").read_text())  # candidates that differ in their CONFIG file
    for overrides, label in (([], "own.yaml"), (["x=1"], "own.yaml x=1")):
        (folder / "bench-val.json").write_text(json.dumps({**report, "config": "own.yaml", "overrides": overrides}))
        assert read_candidate(folder, "graphlama@0.8", None)[0].settings == label


def test_refusals_name_the_problem(tmp_path, capsys):
    test_only = _fewshot(tmp_path / "t", [0.9], 1.0, [], name="bench.json")
    with pytest.raises(BenchError, match="validation nodes only"):
        read_candidate(test_only, "graphlama", None)  # a test report is never used to choose
    ok = _fewshot(tmp_path / "v", [0.9], 1.0, [])
    with pytest.raises(BenchError, match="no row 'llaga'; it has graphlama"):
        read_candidate(ok, "llaga", None)
    with pytest.raises(BenchError, match="no metric 'bleu'"):
        read_candidate(ok, "graphlama", "bleu")
    other = _fewshot(tmp_path / "w", [0.9], 1.0, [])
    data = json.loads((other / "bench-val.json").read_text())
    data["results"][0]["test_nodes"] = 80
    (other / "bench-val.json").write_text(json.dumps(data))
    cands = [read_candidate(f, "graphlama", None)[0] for f in (ok, other)]
    with pytest.raises(BenchError, match="different numbers of validation nodes"):
        choose(cands)
    assert main(["bench", "choose", str(test_only), "--row", "graphlama"]) == 2
    assert "glm: error:" in capsys.readouterr().err


def test_cli_prints_the_choice(tmp_path, capsys):
    a = _fewshot(tmp_path / "a", [0.6, 0.7], 10.0, ["data.propagate=2"])
    b = _fewshot(tmp_path / "b", [0.5, 0.6], 10.0, [])
    assert main(["bench", "choose", str(a), str(b), "--row", "graphlama"]) == 0
    out = capsys.readouterr().out
    assert f"chosen: {a}: data.propagate=2" in out and "| **chosen** |" in out.splitlines()[4]


def test_adapt_configs_are_shown_as_the_options_that_made_them():
    """A report's adaptation record (file and changes; an older report's ``FILE + KEY=VALUE`` string) as the
    bench options that made it."""
    from glm.bench.choose import _split_label, adapt_options

    assert adapt_options("llaga", "x/own.yaml", [], "cfg.yaml") == "--adapt-config llaga=x/own.yaml"
    assert adapt_options("*", "x/own.yaml", [], "cfg.yaml") == "--adapt-config x/own.yaml"
    assert adapt_options("graphlama", "cfg.yaml", ["training.learning_rate=1e-2"], "cfg.yaml") == \
        "--adapt-set graphlama:training.learning_rate=1e-2"  # changes on CONFIG itself: no file to name
    assert adapt_options("*", "x/own.yaml", ["training.max_steps=2", "training.seed=3"], "cfg.yaml") == \
        "--adapt-config x/own.yaml --adapt-set training.max_steps=2 --adapt-set training.seed=3"
    assert adapt_options("*", "x/own.yaml", ['training.lr_groups={"a + b": 1e-3}'], "cfg.yaml") == \
        "--adapt-config x/own.yaml --adapt-set training.lr_groups={\"a + b\": 1e-3}"  # kept whole
    assert _split_label("x/own.yaml + training.max_steps=2") == {"file": "x/own.yaml",
                                                                  "changes": ["training.max_steps=2"]}


def test_recorded_adaptation_reaches_the_candidate_settings(tmp_path):
    """``adapt_settings`` (file and changes apart) is read in preference to an older ``adapt_configs`` string."""
    folder = _fewshot(tmp_path / "a", [0.6], 1.0, ["data.propagate=2"])
    report = json.loads((folder / "bench-val.json").read_text())
    report.update(config="cfg.yaml", adapt_configs={"graphlama": "cfg.yaml + training.num_epochs=20"})
    (folder / "bench-val.json").write_text(json.dumps(report))
    old = read_candidate(folder, "graphlama", None)[0].settings
    assert old == "cfg.yaml data.propagate=2 --adapt-set graphlama:training.num_epochs=20"
    report["adapt_settings"] = {"graphlama": {"file": "cfg.yaml", "changes": ['training.lr_groups={"a + b": 1}']}}
    (folder / "bench-val.json").write_text(json.dumps(report))
    assert read_candidate(folder, "graphlama", None)[0].settings == \
        'cfg.yaml data.propagate=2 --adapt-set graphlama:training.lr_groups={"a + b": 1}'
