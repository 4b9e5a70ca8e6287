"""``glm plan``: JSON and human output, verdicts and named errors."""

import json

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
