"""Choice scoring with the prompts' shared head run once equals the full forward (glm.core.eval.prefix_cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import write_tiny_config  # noqa: E402


@pytest.fixture()
def scoring(tmp_path, monkeypatch):
    from glm.core.config import load_config
    from glm.core.data import tasks as T
    from glm.core.train.pipeline import build_model, make_collator, prepare_data

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    config = load_config(write_tiny_config(tmp_path, data={"max_text_words": 12}))
    model, data = build_model(config).eval(), prepare_data(config)
    held = data.split.class_indices(data.tag, "heldout")
    samples = T.node_classification(data.source, list(range(20)), classes=held, max_text_words=12, unlabelled=True)
    return model, samples, make_collator(config, model, data), make_collator(config, model, data, inference=True)


def test_shared_head_stops_before_graph_tokens_and_differences():
    from glm.core.eval.prefix_cache import shared_head

    assert shared_head([[1, 2, 3, 9, 5], [1, 2, 3, 9, 6, 7]], stop_ids=[9]) == [1, 2, 3]
    assert shared_head([[1, 2, 4, 8], [1, 2, 5, 8]], stop_ids=[9]) == [1, 2]
    assert shared_head([[1, 2, 3], [1, 2, 3]], stop_ids=[]) == [1, 2], "one token is left for the forward"


@torch.no_grad()
def test_cached_head_gives_the_full_forwards_logits_and_scores(scoring):
    from dataclasses import replace

    from glm.core.eval.predict import score_first_tokens
    from glm.core.eval.prefix_cache import MIN_PREFIX, PrefixCache, shared_head

    model, samples, train_collate, infer_collate = scoring
    encoded = [infer_collate.encode(s)[0] for s in samples]
    head = shared_head(encoded, model.graph_token_ids.tolist())
    assert len(head) >= MIN_PREFIX, "the tiny prompts must share a head, or this test checks the fallback only"
    batch = infer_collate(samples[:8])
    assert int((batch.attention_mask == 0).sum()) > 0, "rows of several lengths: the pads sit between head and rest"
    cached = PrefixCache(model, head).last_logits(model, batch)
    full = model(replace(batch, labels=None)).logits[:, -1]
    assert cached is not None and torch.allclose(cached, full, atol=1e-4, rtol=1e-4)
    with_head = score_first_tokens(model, samples, train_collate, infer_collate, batch_size=8)
    without = score_first_tokens(model, samples, train_collate, infer_collate, batch_size=8, reuse_head=False)
    assert with_head is not None and without is not None
    for a, b in zip(with_head, without):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)


@torch.no_grad()
def test_a_batch_that_does_not_start_with_the_head_falls_back(scoring):
    from glm.core.eval.prefix_cache import PrefixCache

    model, samples, _, infer_collate = scoring
    batch = infer_collate(samples[:2])
    other = PrefixCache(model, [int(t) for t in batch.input_ids[0, -9:-1]])  # not the rows' first tokens
    assert other.last_logits(model, batch) is None


def _prompts_with_a_shared_head(vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    head = torch.randint(5, vocab, (20,), generator=g).tolist()  # the repeated demonstrations
    return [head + torch.randint(5, vocab, (n,), generator=g).tolist() for n in (3, 9, 5, 12)]


@torch.no_grad()
def test_prompt_head_forward_and_generate_equal_the_full_left_padded_prompts(scoring):
    from glm.core.eval.prefix_cache import MIN_PREFIX, PromptHead, left_pad

    llm = scoring[0].llm
    rows = _prompts_with_a_shared_head(llm.config.vocab_size)
    head = PromptHead(llm, rows)
    assert len(head.head) == 20 >= MIN_PREFIX and head.cache is not None
    batch = head.batch(rows, pad_id=0)
    assert batch.input_ids.shape == (4, 20 + 12) and int((batch.attention_mask == 0).sum()) == 3 * 12 - 3 - 9 - 5
    ids, mask = left_pad(rows, 0)
    full = llm(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
    cached = llm(**batch.forward_inputs()).logits[:, -1]
    assert torch.allclose(cached, full, atol=1e-4, rtol=1e-4)

    plain = llm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    reused = llm.generate(**head.batch(rows, 0).generate_inputs(), max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(reused[:, batch.input_ids.shape[1]:], plain[:, ids.shape[1]:]), "the same greedy tokens"
    assert head.cache.get_seq_length() == 20, "each batch extends its own copy of the head's cache"


def test_prompt_head_without_a_long_shared_start_is_plain_left_padding(scoring):
    from glm.core.eval.prefix_cache import PromptHead, left_pad

    llm = scoring[0].llm
    rows = [[7, 8, 9, 10], [7, 11, 12]]
    head = PromptHead(llm, rows)
    assert head.head == [] and head.cache is None
    batch = head.batch(rows, pad_id=0)
    ids, mask = left_pad(rows, 0)
    assert torch.equal(batch.input_ids, ids) and torch.equal(batch.attention_mask, mask)
    assert set(batch.forward_inputs()) == {"input_ids", "attention_mask", "position_ids", "logits_to_keep"}
    with pytest.raises(ValueError, match="does not start with the head"):
        PromptHead(llm, _prompts_with_a_shared_head(llm.config.vocab_size)).batch(rows, 0)
