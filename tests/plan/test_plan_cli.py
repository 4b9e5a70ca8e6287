"""``glm plan``: JSON and human output, verdicts and named errors."""

import json
import os
import subprocess
import sys

from glm.cli.main import main

VICUNA = ["model.llm.name=vicuna-7b-v1.5-16k", "recipe=3090-zero2-offload", "training.stage=adapt",
          "model.llm.max_length=2011"]


def test_plan_json_vicuna_on_a_3090(capsys):
    assert main(["plan", *VICUNA, "--gpu", "3090", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] in ("fits", "tight")
    assert out["input"]["seq_len"] == 2011 and out["input"]["zero_stage"] == 2
    assert out["input"]["offload_optimizer"] and out["input"]["gradient_checkpointing"]
    names = [it["name"] for it in out["items"]]
    assert {"frozen LLM weights", "activations", "logits + loss", "CUDA context"} <= set(names)


def test_plan_human_does_not_fit_prints_fixes(capsys):
    assert main(["plan", *VICUNA, "recipe=single-gpu", "training.micro_batch_size=4", "--attention", "eager",
                 "--gpu", "24"]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "cheapest changes that fit" in out


def test_plan_bad_gpu_is_a_named_error(capsys):
    assert main(["plan", *VICUNA, "--gpu", "rtx9999"]) == 2
    assert "unknown GPU" in capsys.readouterr().err


def test_plan_per_rank_under_zero_partitioning(capsys):
    """--nproc N: ZeRO-2 divides optimizer states and gradients by N, ZeRO-0 divides nothing."""
    import json

    from glm.cli.main import main

    def plan(*args):
        assert main(["plan", "model.llm.name=vicuna-7b-v1.5-16k", "training.stage=pretrain", "--json", *args]) == 0
        out = json.loads(capsys.readouterr().out)
        return {it["name"]: it for it in out["items"]}, out

    one, _ = plan("recipe=3090-zero2-offload")
    two, _ = plan("recipe=3090-zero2-offload", "--nproc", "2")
    for name in ("optimizer states", "gradients"):
        assert abs(two[name]["gpu"] + two[name]["cpu"] - (one[name]["gpu"] + one[name]["cpu"]) / 2) < 1, name
    assert two["frozen LLM weights"]["gpu"] == one["frozen LLM weights"]["gpu"]
    zero0, _ = plan("recipe=cpu", "--nproc", "4")
    alone, _ = plan("recipe=cpu")
    assert zero0["optimizer states"] == alone["optimizer states"]
    assert main(["plan", "--nproc", "0"]) == 2
    assert "--nproc must be >= 1" in capsys.readouterr().err


def test_plan_on_a_gammagl_only_install():
    """Without PyG (its plugin disabled, as on an install without it) the encoder is built on GammaGL, the
    first installed backend, not counted by formula; with no backend at all the formula is named."""
    def plan(disabled: str) -> dict:
        env = {**os.environ, "GLM_DISABLED_PLUGINS": disabled, "TL_BACKEND": "torch"}
        done = subprocess.run([sys.executable, "-m", "glm.cli.main", "plan", *VICUNA, "--gpu", "3090", "--json"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    assert "encoder built on backend gammagl" in json.dumps(plan("pyg"))
    assert "encoder counted by formula" in json.dumps(plan("pyg,gammagl"))
