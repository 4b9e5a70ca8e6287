"""The options that make a graph side learnable on a small LLM: soft-token norm, text-free prompts,
the training loss -- each checked against a direct computation, and named in config errors."""

import pytest
import torch

from glm.core.config import ConfigError, config_from_dict
from glm.core.data.tag import synthetic_tag
from glm.core.data.tasks import GraphSource, TASKS

from model_helpers import sample_batch, tiny_model


def test_token_norm_rescales_every_soft_token_to_the_embedding_norm():
    model = tiny_model("llama")
    batch = sample_batch(model, [[5], [4, 6]], seed=3)
    model.set_token_norm("embedding")
    expected = float(model.llm.get_input_embeddings().weight.norm(dim=1).mean())
    assert model.token_norm == pytest.approx(expected)
    embeds = model.embed(batch)
    patch = batch.input_ids == model.patch_token_id
    torch.testing.assert_close(embeds[patch].norm(dim=-1), torch.full((int(patch.sum()),), expected), rtol=1e-5, atol=1e-5)
    model.set_token_norm("none")
    raw = model.embed(batch)[patch].norm(dim=-1)
    assert not torch.allclose(raw, torch.full_like(raw, expected), rtol=1e-2)
    with pytest.raises(ValueError, match="token_norm"):
        model.set_token_norm("unit")


def test_node_text_off_leaves_only_the_graph_in_prompts():
    tag = synthetic_tag(num_nodes=48, num_classes=4, seed=0)
    source = GraphSource(tag, torch.randn(48, 8), fanouts=[2, 2], cache_dir=False)
    with_text = TASKS["node_classification"](source, [0, 1], classes=None, node_text=True)
    without = TASKS["node_classification"](source, [0, 1], classes=None, node_text=False)
    assert all("Title:" in s.prompt or "Text:" in s.prompt for s in with_text)
    assert not any("Title:" in s.prompt or "Text:" in s.prompt or "Abstract:" in s.prompt for s in without)
    assert [s.answer for s in with_text] == [s.answer for s in without]
    pairs = TASKS["link_prediction"](source, [0, 1, 2, 3], seed=0, pool=list(range(48)), node_text=False)
    assert pairs and all(s.meta["choices"] == ["yes", "no"] and s.answer in ("yes", "no") for s in pairs)
    assert not any("Title:" in s.prompt for s in pairs)


@pytest.mark.parametrize("section, key, value", [("training", "loss", "mse"), ("model", "token_norm", "unit")])
def test_bad_lever_values_are_named(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        config_from_dict({section: {key: value}}, "<t>").validate("<t>")
