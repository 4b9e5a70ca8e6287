"""bench/scale.py end to end on a small graph with the tiny LLM (the real sizes run in bench/, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import ROOT, subprocess_env  # noqa: E402


def test_scale_bench_runs_every_stage_and_prints_its_last_line(tmp_path):
    out = tmp_path / "r.json"
    cmd = [sys.executable, str(ROOT / "bench" / "scale.py"), "--nodes", "3000", "--llm", "tiny-random", "--steps", "2",
           "--seeds", "2000", "--infer-nodes", "20", "--work", str(tmp_path / "w"), "--json", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["stages"]) == {"synth", "load", "features", "index", "sample", "pretrain", "infer"}
    assert result["nodes"] == 3000 and result["edges"] > 15_000
    assert result["stages"]["sample"]["mean_nodes"] > 10 and result["stages"]["infer"]["per_second"] > 0
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("scale 3000 nodes: end-to-end ") and last.endswith(" GiB")
