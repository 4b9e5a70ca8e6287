"""The planner's tuning rows: LLM trainable counts equal the real model's, the tensors a trained layer
saves match saved-tensor hooks on a real layer, and ``glm plan`` gives the 24 GB recipes' verdicts
and suggests switching tuning mode. (End-to-end accuracy against measured peaks:
``python bench/plan_accuracy.py --part 3``.)"""

from __future__ import annotations

from fnmatch import fnmatch

import pytest
import torch

from glm.core.config import FreezeSettings, LlmConfig, LoraSettings
from glm.core.llm import tiny_llm
from glm.core.plan.fixes import suggestions
from glm.core.plan.memory import PlanInput, estimate, tuning_saved_bytes
from glm.core.plan.models import shape_from_config
from glm.core.tuning import apply_tuning, base_llm

pytest.importorskip("peft", reason='PEFT is not installed: pip install -e ".[quant]"')

MODES = {
    "lora q/v": dict(tuning="lora", lora=LoraSettings(r=8, dropout=0.0)),
    "lora all, dropout": dict(tuning="lora", lora=LoraSettings(r=16, dropout=0.1, target_modules=["all-linear"])),
    "lora all": dict(tuning="lora", lora=LoraSettings(r=16, dropout=0.0, target_modules=["all-linear"])),
    "freeze 1": dict(tuning="freeze", freeze=FreezeSettings(last_n=1)),
}


def plan_input(shape, cfg: LlmConfig, **kw) -> PlanInput:
    return PlanInput(llm=shape, dtype="float32", device="cpu", tuning=cfg.tuning, lora_r=cfg.lora.r,
                     lora_targets=tuple(cfg.lora.target_modules), lora_dropout=cfg.lora.dropout,
                     freeze_layers=cfg.freeze.last_n, **kw)


def tuned(cfg: LlmConfig, layers: int = 2, hidden: int = 128):
    llm, _ = tiny_llm("llama", hidden_size=hidden, num_layers=layers)
    shape = shape_from_config(llm.config.to_dict())
    llm, tuning = apply_tuning(llm, cfg)
    for n, p in llm.named_parameters():
        p.requires_grad_(any(fnmatch(n, pat) for pat in tuning.llm_patterns))
    return llm, shape


@pytest.mark.parametrize("mode", list(MODES))
def test_llm_trainable_count_is_the_models(mode):
    cfg = LlmConfig(name="tiny-random", **MODES[mode])
    llm, shape = tuned(cfg)
    real = sum(p.numel() for p in llm.parameters() if p.requires_grad)
    assert plan_input(shape, cfg).llm_trainable_params == real > 0


def _saved_bytes(llm, seq: int, hidden: int) -> float:
    """Bytes of the distinct tensors autograd saves, weights (resident anyway) left out."""
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in llm.parameters()}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    x = torch.randn(1, seq, hidden, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        base_llm(llm).model(inputs_embeds=x)
    return float(sum(seen.values()))


@pytest.mark.parametrize("mode", list(MODES))
def test_saved_tensors_of_a_trained_layer_match_the_formula(mode):
    seq, hidden = 512, 256
    frozen, _ = tuned(LlmConfig(name="tiny-random"), layers=1, hidden=hidden)
    cfg = LlmConfig(name="tiny-random", **MODES[mode])
    llm, shape = tuned(cfg, layers=1, hidden=hidden)
    measured = _saved_bytes(llm, seq, hidden) - _saved_bytes(frozen, seq, hidden)
    formula = tuning_saved_bytes(plan_input(shape, cfg), 1, seq)
    assert measured > 0
    assert abs(formula / measured - 1) < 0.05, (formula, measured)


def test_4bit_base_and_lora_states_in_the_plan():
    from glm.core.plan.models import resolve_llm

    vicuna = resolve_llm("vicuna-7b-v1.5-16k")
    frozen = estimate(PlanInput(llm=vicuna, text_tokens=1900, gradient_checkpointing=True))
    lora = estimate(PlanInput(llm=vicuna, text_tokens=1900, gradient_checkpointing=True, tuning="lora", lora_r=64))
    qlora = estimate(PlanInput(llm=vicuna, text_tokens=1900, gradient_checkpointing=True, tuning="qlora", lora_r=64))
    assert lora.item("LoRA weights").gpu == 64 * 2 * (4096 + 4096) * 32 * 2
    assert qlora.item("frozen LLM weights").gpu < 0.3 * frozen.item("frozen LLM weights").gpu
    assert frozen.peak < lora.peak and qlora.peak < lora.peak
    fixes = [f["change"] for f in suggestions(PlanInput(llm=vicuna, text_tokens=1900, tuning="lora", lora_r=64), 12)]
    assert any("QLoRA" in f for f in fixes), fixes


@pytest.mark.parametrize("recipe, words", [("4090-lora", "LoRA r=64 on q_proj/v_proj"), ("3090-qlora", "4bit base")])
def test_glm_plan_vicuna_under_the_24gb_recipes(capsys, recipe, words):
    from glm.cli.main import main

    assert main(["plan", f"recipe={recipe}", "model.llm.name=vicuna-7b-v1.5-16k", "--gpu", "4090",
                 "--text-tokens", "1900"]) == 0
    out = capsys.readouterr().out
    assert words in out and "-> FITS" in out

def test_probe_runs_a_4bit_base_when_asked():
    pytest.importorskip("bitsandbytes", reason='bitsandbytes is not installed: pip install -e ".[quant]"')
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed")
    from glm.core.config import config_from_dict
    from glm.core.plan.probe import compare, plan_input_for, run_probe, spec_from_config

    cfg = config_from_dict({"model": {"llm": {"name": "tiny-random", "options": {"hidden_size": 256, "num_layers": 2},
                                              "max_length": 2048}},
                            "data": {"fanout": [10, 10]}, "training": {"stage": "adapt"}, "recipe": "cpu",
                            "backend": "pyg"}, "<t>")
    spec = spec_from_config(cfg, device="cpu", text_tokens=1024)
    spec.quantization = "4bit"
    result = run_probe(spec)
    assert plan_input_for(result).quant == "4bit"
    c = compare(result)
    assert abs(c["error"]) < 0.10, c
