"""Every shipped example config loads, validates and plans (``glm plan``): a renamed field, a stage_extra or
lr_groups pattern that no longer matches, or a method setting that no longer fits is caught here, not by a
user's first run."""

from __future__ import annotations

from pathlib import Path

import pytest

from glm.cli.main import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_config_plans(path, capsys):
    assert main(["plan", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "trainable" in out.lower()


def test_plan_names_an_lr_group_that_gets_no_parameter(capsys):
    """``glm plan`` sees the stage's trainable set, so it refuses what the trainer would refuse at its start."""
    gate_only = next(p for p in EXAMPLES if p.stem == "demo_adapt_gate")
    assert main(["plan", str(gate_only), "training.lr_groups={encoder.*: 1.0e-3}"]) == 2
    err = capsys.readouterr().err
    assert "training.lr_groups: ['encoder.*'] match no trainable parameter of this stage" in err
    assert "Traceback" not in err


def test_plan_refuses_the_warm_up_for_a_method_with_k_tokens_per_graph(capsys):
    pretrain = next(p for p in EXAMPLES if p.stem == "demo_pretrain")
    assert main(["plan", str(pretrain), "model.method=llaga"]) == 2
    assert "training.align.steps=300: LLaGANodeTokens places a fixed number of soft tokens" in capsys.readouterr().err
    assert main(["plan", str(pretrain), "model.method=llaga", "training.align.steps=0"]) == 0
