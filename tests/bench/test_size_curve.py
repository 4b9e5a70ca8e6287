"""``bench/new_graph_size.py``: one bench per synthetic graph size, then every row's accuracy against the size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import subprocess_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_size_curve_runs_one_bench_per_size(tmp_path):
    out = tmp_path / "size"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "new_graph_size.py"), "--nodes", "400,300",
                           "--seeds", "2", "--rows", "linear_probe,sgc", "--output-dir", str(out),
                           "--config", str(ROOT / "examples" / "new_graph_adapt.yaml"),
                           "--pretrain-config", str(ROOT / "examples" / "new_graph_pretrain.yaml"), "--", "data.propagate=2"],
                          cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    curve = json.loads((out / "size-curve.json").read_text())
    assert curve["axis"] == "nodes" and curve["values"] == [300, 400] and "shots" not in curve
    for n in (300, 400):
        report = json.loads((out / f"n{n}" / "bench.json").read_text())
        assert "data.propagate=2" in report["overrides"] and f"n{n}" in " ".join(report["overrides"])
        assert {s["row"] for s in report["summary"]} == {"linear_probe", "sgc"}
        assert curve["rows"]["sgc"][str(n)]["accuracy"] == next(s["accuracy"] for s in report["summary"]
                                                                if s["row"] == "sgc")
    md = (out / "size-curve.md").read_text()
    assert "| row | nodes=300 | nodes=400 |" in md and (out / "size-curve.png").stat().st_size > 0


def test_curve_lists_the_method_rows_probes(tmp_path):
    """Beside the accuracy table, a curve's markdown gives each method row's probes and fit on its shots per
    value; without method rows it has none."""
    from glm.bench.curve import write_curve

    def row(name, acc, **extra):
        return {"row": name, "accuracy": acc, "accuracy_std": 0.01, "token_probe": None, **extra}

    summaries = {2: [row("sgc", 0.5), row("graphlama", 0.4, token_probe=0.45, encoder_probe=0.5, shot_accuracy=1.0)],
                 5: [row("sgc", 0.7), row("graphlama", 0.6, token_probe=0.65, encoder_probe=None, shot_accuracy=0.9)]}
    md = write_curve(tmp_path, summaries, "t")["markdown"].read_text().splitlines()
    assert "| 2 | graphlama | 0.400 | 0.500 / 0.450 | 1.000 |" in md and "| 5 | graphlama | 0.600 | – / 0.650 | 0.900 |" in md
    assert not any(line.startswith("| 2 | sgc") for line in md)
    only_features = write_curve(tmp_path / "f", {2: [row("sgc", 0.5)]}, "t", axis="nodes")["markdown"]
    assert only_features.name == "size-curve.md" and "probes" not in only_features.read_text()
