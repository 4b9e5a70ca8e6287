"""``glm devcheck --dry-run``: the GPU check's own script runs on the CPU (CUDA parts skipped with a
reason, planner lines printed, parity and encoder speed measured for real), and the wheelhouse
list names exactly what the target GPU box lacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import run_glm  # noqa: E402

from glm.cli.main import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # 24 s; its steps (parity, recipes, tuning) are each tested in the fast suite
def test_dry_run_writes_a_report_with_every_step(tmp_path):
    proc = run_glm(tmp_path, "devcheck", "--dry-run", "--out", str(tmp_path / "dc"),
                   "--steps", "environment,parity,recipes,tuning,encoder_speed",
                   "--skip-checkout-tests", timeout=900)  # the suite runs test_deepspeed_parity.py itself
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "dc" / "devcheck.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["environment", "parity", "recipes", "tuning", "encoder_speed"]
    assert report["dry_run"] is True and report["device"] == "cpu"
    env = steps["environment"]["rows"][0]
    assert env["torch"] and "pyg" in env["backends"]
    if {"pyg", "gammagl"} <= set(env["backends"]):
        layers = {(r["layer"], r["dtype"]) for r in steps["parity"]["rows"] if r["layer"] in ("gcn", "gat", "sage", "gt")}
        assert {("gt", "float32"), ("gt", "bfloat16"), ("gcn", "float32")} <= layers
        assert all(r["ok"] for r in steps["parity"]["rows"]), steps["parity"]["rows"]
        assert "skipped" in " ".join(steps["parity"]["notes"])
        assert "GammaGL / PyG time ratio" in " ".join(steps["encoder_speed"]["notes"])
    vicuna = [r for r in steps["recipes"]["rows"] if r["llm"] == "vicuna-7b-v1.5-16k"]
    assert len(vicuna) == 4 and all(r["status"].startswith("skipped: no CUDA") for r in vicuna)
    by = {(r["recipe"], r["stage"]): r["plan_peak_mb"] for r in vicuna}
    assert by[("3090-zero2-offload", "adapt")] > 13_000  # 7B bf16 weights alone are 12.9 GiB on the card
    assert by[("3090-zero3-offload", "adapt")] < by[("3090-zero2-offload", "adapt")]  # parameters offloaded
    assert all(r["tokens"] == 111 + 1900 for r in vicuna)
    assert "18,642 MB" in " ".join(steps["recipes"]["notes"])
    tiny = [r for r in steps["recipes"]["rows"] if r["llm"] == "tiny-random-llama"]
    assert tiny and tiny[0]["status"] == "ok" and tiny[0]["loss"] > 0
    tuning = {(r["recipe"], r["llm"]): r for r in steps["tuning"]["rows"]}
    lora, qlora = tuning[("4090-lora", "vicuna-7b-v1.5-16k")], tuning[("3090-qlora", "vicuna-7b-v1.5-16k")]
    assert lora["status"].startswith("skipped") and lora["llm_trainable"] == 32 * 2 * 64 * (4096 + 4096)
    assert qlora["plan_peak_mb"] < lora["plan_peak_mb"]  # the 4-bit base
    assert [r["status"] for r in steps["tuning"]["rows"] if r["llm"] == "tiny-random-llama"][:1] == ["ok"]
    md = (tmp_path / "dc" / "devcheck.md").read_text()
    assert "## recipes" in md and "| recipe |" in md


def test_unknown_step_is_a_named_error(capsys):
    assert main(["devcheck", "--dry-run", "--steps", "parity,warp"]) == 2
    assert "warp" in capsys.readouterr().err


def test_wheelhouse_lists_what_the_box_lacks():
    wanted = {line.split("==")[0] for line in (ROOT / "tools" / "wheelhouse.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    for pkg in ("deepspeed", "gammagl-pt23", "tensorlayerx", "gguf", "hjson"):
        assert pkg in wanted
    for present in ("torch", "transformers", "torch-geometric", "numpy", "peft"):  # the box has these
        assert present not in wanted
    assert "wheelhouse:" in (ROOT / "Makefile").read_text()
