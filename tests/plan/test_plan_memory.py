"""The analytic planner: saved-tensor model per layer, parameter counts, verdicts and fixes."""

import pytest
import torch

from glm.core.plan.fixes import suggestions
from glm.core.plan.memory import GIB, PlanError, PlanInput, estimate, layer_saved_bytes
from glm.core.plan.models import PlanModelError, builtin_configs, gpu_gib, resolve_llm, shape_from_config


def _saved_layer_bytes(attention: str, dtype: torch.dtype, padded: bool, layers: int) -> int:
    """Bytes autograd saves for a frozen tiny Llama whose input requires grad (weights excluded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=160, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, attn_implementation=attention)
    model = LlamaForCausalLM(cfg).to(dtype).requires_grad_(False).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    x = torch.randn(2, 24, 48, dtype=dtype, requires_grad=True)
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[0, :3] = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(inputs_embeds=x, labels=torch.randint(0, 300, (2, 24)), attention_mask=mask if padded else None)
    return sum(seen.values())


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("padded", [False, True])
def test_layer_model_matches_autograd_saved_tensors(attention, dtype, padded):
    measured = _saved_layer_bytes(attention, dtype, padded, 2) - _saved_layer_bytes(attention, dtype, padded, 1)
    shape = shape_from_config({"model_type": "llama", "hidden_size": 48, "intermediate_size": 160,
                               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                               "vocab_size": 300})
    p = PlanInput(shape, dtype="float32" if dtype == torch.float32 else "bfloat16", attention=attention,
                  micro_batch=2, text_tokens=24, nodes_per_graph=0, padded=padded)
    assert layer_saved_bytes(p, 2, 24) == pytest.approx(measured, rel=0.01)


@pytest.mark.parametrize("name", sorted(builtin_configs()))
def test_builtin_param_counts_match_meta_build(name):
    from glm.core.llm import build_on_meta

    model = build_on_meta(builtin_configs()[name])
    expected = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    assert resolve_llm(name).num_params == expected


def test_vicuna_without_checkpointing_does_not_fit_a_3090_and_checkpointing_fixes_it():
    p = PlanInput(resolve_llm("vicuna-7b"), trainable_params=17_026, frozen_graph_params=739_072,
                  zero_stage=2, offload_optimizer=True, text_tokens=1900, nodes_per_graph=111)
    plan = estimate(p)
    assert plan.item("frozen LLM weights").gpu == pytest.approx(6.74e9 * 2, rel=0.01)
    assert plan.verdict(24)[0] == "does not fit"
    fixes = suggestions(p, 24)
    assert fixes and "checkpointing" in fixes[0]["change"]
    fixed = estimate(p.replace(gradient_checkpointing=True))
    assert fixed.verdict(24)[0] == "fits" and fixed.peak < plan.peak
    assert estimate(p).verdict(80)[0] == "fits"


def test_items_scale_with_sequence_batch_and_eager_attention():
    base = PlanInput(resolve_llm("smollm2"), text_tokens=400, nodes_per_graph=111)
    act = lambda **kw: estimate(base.replace(**kw)).item("activations").gpu  # noqa: E731
    assert act(micro_batch=2, padded=False) == pytest.approx(2 * act(), rel=0.01)
    assert act(attention="eager") > act()
    assert act(gradient_checkpointing=True) < act() / 5
    logits = estimate(base).item("logits + loss").gpu
    assert logits == pytest.approx(base.seq_len * 49152 * 14, rel=0.01)
    # training runs the LM head at the positions the loss reads only
    at_reply = estimate(base.replace(loss_positions=16)).item("logits + loss").gpu
    assert at_reply == pytest.approx(16 * 49152 * 14, rel=0.01)
    assert estimate(base.replace(loss_positions=10**6)).item("logits + loss").gpu == logits  # capped at L
    assert estimate(base.replace(quantization="4bit")).item("frozen LLM weights").gpu < \
        estimate(base).item("frozen LLM weights").gpu
    zero3 = estimate(base.replace(llm=resolve_llm("vicuna-7b"), zero_stage=3, offload_param=True))
    assert zero3.item("frozen LLM weights").gpu < 3 * GIB and zero3.item("frozen LLM weights").cpu > 12 * GIB


def test_generation_phase_adds_kv_cache():
    p = PlanInput(resolve_llm("vicuna-7b"), stage="infer", text_tokens=1900, generate_tokens=64, eval_batch=4)
    plan = estimate(p)
    kv = plan.item("generation KV cache").gpu
    assert kv == pytest.approx(2 * 32 * 4 * 4096 * (2011 + 64) * 2, rel=1e-6)
    assert plan.generate_peak > plan.item("frozen LLM weights").gpu + kv


def test_bad_inputs_raise_named_errors():
    with pytest.raises(PlanError, match="attention"):
        estimate(PlanInput(resolve_llm("smollm2"), attention="flash"))
    with pytest.raises(PlanModelError, match="unknown LLM"):
        resolve_llm("no-such-model")
    with pytest.raises(PlanModelError, match="unknown GPU"):
        gpu_gib("rtx9999")
    assert gpu_gib("3090") == ("3090", 24.0) and gpu_gib("40") == ("40 GiB", 40.0)


def test_local_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,'
                                          ' "num_hidden_layers": 2, "num_attention_heads": 4,'
                                          ' "num_key_value_heads": 2, "vocab_size": 100}')
    shape = resolve_llm(str(tmp_path))
    assert shape.kv_heads == 2 and shape.qkv_bias and shape.layers == 2


def test_run_config_plans_the_head_at_reply_positions(tmp_path):
    from glm.core.config import load_config
    from glm.core.plan.from_config import REPLY_TOKENS, from_run_config

    cfg = load_config(None, ["model.llm.name=vicuna-7b-v1.5-16k", "model.llm.max_length=2011",
                             "training.micro_batch_size=2"])
    p = from_run_config(cfg)
    assert p.loss_positions == 2 * REPLY_TOKENS < p.seq_len
