"""``GraphLanguageModel.answer_loss``: the LM head only where the loss reads it; ``lm`` equals the
LLM's own loss, ``choice`` is the softmax over the candidates' first reply tokens (eval's rule)."""

import pytest
import torch
import torch.nn.functional as F

from glm.core.data.collate import GraphCollator
from glm.core.sample import Sample

from model_helpers import random_subgraph, tiny_model

CHOICES = ["alpha", "beta", "gamma"]


def _samples(with_choices=(True, False, True), answers=None):
    gen = torch.Generator().manual_seed(1)
    out = []
    for i, wc in enumerate(with_choices):
        meta = {"choices": CHOICES} if wc else {}
        out.append(Sample(prompt=f"Row {i}{' long' * i}: <graph> which one?", answer=answers[i] if answers else CHOICES[i % 3],
                          graphs=[random_subgraph(3 + i, 6, 8, gen)], task="node_classification",
                          task_text="which one?", meta=meta))
    return out


def _model_and_batch(with_choices=(True, False, True), answers=None):
    model = tiny_model("llama")
    model.set_task_embedding(torch.randn(model.config.gate_dim, generator=torch.Generator().manual_seed(2)))
    collate = GraphCollator(model.tokenizer)
    batch = collate(_samples(with_choices, answers))
    return model, collate, batch


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_collator_marks_choices():
    _, collate, batch = _model_and_batch()
    assert batch.choice_ids.shape == (3, 3)
    assert batch.choice_target.tolist() == [0, -100, 2]
    firsts = [collate.first_reply_token(_samples()[0], c) for c in CHOICES]
    assert batch.choice_ids[0].tolist() == firsts and len(set(firsts)) == 3
    # the first reply token is where the labels start
    first_label = (batch.labels[0] != -100).nonzero()[0, 0]
    assert int(batch.labels[0, first_label]) == firsts[0]


def test_inference_batches_have_no_choice_targets():
    model = tiny_model("llama")
    batch = GraphCollator(model.tokenizer, inference=True, padding_side="left")(_samples())
    assert batch.choice_ids is None and batch.choice_target is None


def test_lm_loss_equals_the_llm_loss_and_gradients():
    model, _, batch = _model_and_batch()
    ref = model(batch).loss
    ref_grads = _grads(model, ref)
    model.train_loss = "lm"
    out = model(batch)
    assert out.logits.shape[1] < batch.input_ids.shape[1]  # the head ran on answer positions only
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-6)
    got = _grads(model, out.loss)
    assert sorted(got) == sorted(ref_grads)
    for n in ref_grads:
        torch.testing.assert_close(got[n], ref_grads[n], rtol=1e-4, atol=1e-6)


def test_choice_loss_is_the_softmax_over_first_reply_tokens():
    model, _, batch = _model_and_batch()
    with torch.no_grad():
        logits = model(batch).logits.float()  # full logits: train_loss unset
        model.train_loss = "choice"
        got = model(batch).loss
        model.train_loss = "lm+choice"
        both = model(batch).loss
    target = batch.labels[:, 1:]
    rows = []
    choice_terms = []
    for b in range(3):
        pos = int((target[b] != -100).nonzero()[0, 0])
        if int(batch.choice_target[b]) >= 0:
            lp = torch.log_softmax(logits[b, pos, batch.choice_ids[b]], dim=-1)
            rows.append(-lp[batch.choice_target[b]])
            choice_terms.append(rows[-1])
        else:
            mask = target[b] != -100
            rows.append(F.cross_entropy(logits[b, :-1][mask], target[b][mask]))
    torch.testing.assert_close(got, torch.stack(rows).mean(), rtol=1e-5, atol=1e-6)
    lm = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(both, lm + torch.stack(choice_terms).mean(), rtol=1e-5, atol=1e-6)


def test_choice_loss_trains_towards_the_answer():
    model, _, batch = _model_and_batch((True, True, True), ["beta"] * 3)
    model.train_loss = "choice"
    opt = torch.optim.AdamW([p for p in model.graph_parameters().values() if p.requires_grad], lr=3e-2)
    losses = []
    for _ in range(20):
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.95 * losses[0], losses  # a random tiny LLM is only weakly steerable


def test_unknown_loss_is_named():
    model, _, batch = _model_and_batch()
    with pytest.raises(ValueError, match="train_loss"):
        model.answer_loss(model.embed(batch), batch, "mse")
