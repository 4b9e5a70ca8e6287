"""Slow: every built-in method pre-trains, adapts and evaluates with the real SmolLM2 on CiteSeer TAG."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import run_glm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["graphlama", "graphgpt", "llaga"])
def test_method_with_smollm2(method, tmp_path, data_dir):
    cfg = ROOT / "examples" / "demo_pretrain_quick.yaml"
    common = ["--method", method, "--backend", "pyg", "--no-progress", "training.max_steps=3", "data.test_per_class=4"]
    pre, ada = tmp_path / "pre", tmp_path / "ada"
    no_align = ["training.align.steps=0"] if method == "llaga" else []  # a fixed token count has no node text to align
    r = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(pre), *common, *no_align, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(ada), f"training.init_from={pre}", *common, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_glm(tmp_path, "eval", str(cfg), "--adapter", str(ada), *[c for c in common if c != "--no-progress"],
                timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    accuracy = float(re.search(r"accuracy ([0-9.]+)", r.stdout).group(1))
    assert 0.0 <= accuracy <= 1.0 and "8 nodes" in r.stdout
