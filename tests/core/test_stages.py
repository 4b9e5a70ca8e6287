"""Stages: after one optimizer step exactly the intended parameters changed and the LLM did not."""

import pytest
import torch

from glm.methods.graphlama import SPEC, GraphLAMAConfig
from glm.core.stages import (FrozenLLMError, UnknownStageError, format_parameter_table,
                             set_stage, trainable_parameters)

from model_helpers import sample_batch, tiny_model

PRETRAIN = {"encoder.lin1.weight", "encoder.lin1.bias", "encoder.lin2.weight", "encoder.lin2.bias",
            "gate.task_related.weight", "gate.task_related.bias", "gate.task_invariant.weight",
            "gate.task_invariant.bias", "gate.invariant_mask", "gate.alpha_l", "gate.alpha_w",
            "projector.net.weight", "projector.net.bias"}
ADAPT = {"gate.task_related.weight", "gate.task_related.bias", "gate.alpha_l", "gate.alpha_w"}


def step_and_diff(model, stage, **stage_kwargs):
    """One AdamW step (with weight decay) in ``stage``; return the names of changed parameters."""
    trained = set_stage(model, stage, **stage_kwargs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    model.train()
    model(sample_batch(model, [[5], [4, 3]])).loss.backward()
    opt.step()
    model.eval()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return set(trained), changed


@pytest.mark.parametrize("stage,expected", [("pretrain", PRETRAIN), ("adapt", ADAPT),
                                            ("adapt_official", ADAPT | {"gate.invariant_mask"})])
def test_exactly_the_stage_parameters_change(stage, expected):
    model = tiny_model("llama")
    trained, changed = step_and_diff(model, stage)
    assert trained == expected
    assert changed == expected
    assert all(not p.requires_grad for p in model.llm.parameters())


def test_learned_hop_table_trains_in_both_stages():
    cfg = GraphLAMAConfig(graph_dim=16, gate_dim=16, hop_mode="learned")
    for stage, expected in (("pretrain", PRETRAIN), ("adapt", ADAPT)):
        model = tiny_model("llama", cfg)
        _, changed = step_and_diff(model, stage)
        assert changed == expected | {"hop.table.weight"}


def test_graph_token_rows_train_without_touching_the_llm_embeddings():
    model = tiny_model("smollm2", GraphLAMAConfig(graph_dim=16, gate_dim=16, train_graph_token_rows=True))
    emb = model.llm.get_input_embeddings().weight.detach().clone()
    trained, changed = step_and_diff(model, "adapt")
    assert "graph_token_embeddings" in trained and "graph_token_embeddings" in changed
    assert changed == ADAPT | {"graph_token_embeddings"}
    assert torch.equal(model.llm.get_input_embeddings().weight, emb)  # tied with lm_head here


def test_configurable_table_and_extra_patterns():
    model = tiny_model("llama")
    table = dict(SPEC.stage_table(), alphas=("gate.alpha_*",))
    _, changed = step_and_diff(model, "alphas", stages=table)
    assert changed == {"gate.alpha_l", "gate.alpha_w"}
    assert set(set_stage(model, "adapt", extra=["gate.invariant_mask"])) == ADAPT | {"gate.invariant_mask"}
    with pytest.raises(UnknownStageError, match=r"model.stage_extra: \['projectr\.\*'\] match no parameter of "
                                                r"method 'graphlama' \(parameters: \['encoder', 'gate'"):
        set_stage(model, "adapt", extra=["projector.*", "projectr.*"])  # a typo used to widen nothing, silently


def test_llm_cannot_be_unfrozen_and_unknown_stage():
    model = tiny_model("llama")
    with pytest.raises(FrozenLLMError, match="LLM"):
        set_stage(model, "bad", stages={"bad": ("llm.*",)})
    with pytest.raises(UnknownStageError, match="known"):
        set_stage(model, "finetune")


def test_parameter_table_paper_dims():
    """GraphLAMA's numbers (spec §2.2): adapt = 130*128+128 + 2 = 16,770; gates/masks/α = 33,794
    including the frozen 128-d task embedding, i.e. 33,666 trainable."""
    cfg = GraphLAMAConfig.paper_compatible()
    model = tiny_model("llama", cfg, feat_dim=128)
    rows = {r.module: r for r in trainable_parameters(model, "adapt")}
    assert rows["gate.task_related"].trainable == 16_768
    assert rows["gate"].trainable == 2  # α_l, α_w (m_inv frozen)
    assert rows["total"].trainable == 16_770
    assert rows["llm"].trainable == 0 and rows["llm"].total > 0
    pre = {r.module: r for r in trainable_parameters(model, "pretrain")}
    gates = pre["gate.task_related"].trainable + pre["gate.task_invariant"].trainable + pre["gate"].trainable
    assert gates == 33_794 - 128
    assert model.gate.default_task_embedding.numel() == 128  # the frozen e_task (a buffer)
    assert pre["projector"].trainable == 128 * 64 + 64
    text = format_parameter_table(trainable_parameters(model, "adapt"))
    assert "gate.task_related" in text and "16,768" in text
    # without a stage the table reports the current requires_grad flags
    set_stage(model, "adapt")
    assert {r.module: r.trainable for r in trainable_parameters(model)} == \
        {r.module: r.trainable for r in trainable_parameters(model, "adapt")}
