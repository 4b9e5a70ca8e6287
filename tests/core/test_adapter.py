"""Adapters: bit-exact round trip, named mismatch errors, swapping, atomic files, Vicuna-7B size."""

import os

import pytest
import torch

from glm.core.adapter import (AdapterBank, AdapterFormatError, AdapterMismatchError, load_adapter, read_adapter,
                              save_adapter)
from glm.core.llm import build_on_meta, tiny_tokenizer
from glm.methods.graphlama import GraphLAMAConfig, graphlama_model
from glm.core.stages import set_stage

from model_helpers import TinyEncoder, sample_batch, tiny_model


def train_step(model, stage, seed=0):
    set_stage(model, stage)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model(sample_batch(model, [[5], [4, 3]], seed=seed)).loss.backward()
    opt.step()
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("stage", ["adapt", "pretrain"])
def test_round_trip_is_bit_exact(tmp_path, stage):
    model = tiny_model("llama")
    train_step(model, stage)
    model.gate.set_task_embedding(torch.randn(16))
    path = save_adapter(model, tmp_path / "a.safetensors", stage=stage, task="node_classification")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temporary file left
    tensors, meta = read_adapter(path)
    assert meta["stage"] == stage and meta["task"] == "node_classification"
    assert meta["base"]["name_or_path"] == "tiny-random-llama" and meta["base"]["hidden_size"] == 64
    assert meta["graph_config"]["gate_dim"] == 16 and "glm_version" in meta
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    assert not any(k.startswith("llm.") for k in tensors)
    if stage == "adapt":
        assert set(tensors) == {"gate.task_related.weight", "gate.task_related.bias", "gate.alpha_l",
                                "gate.alpha_w", "gate.default_task_embedding", "gate.has_default_task_embedding"}
    other = tiny_model("llama", seed=0)  # same LLM, fresh graph side
    if stage == "adapt":  # an adapt adapter goes on top of the same pre-trained graph side
        other.load_state_dict({k: v for k, v in model.state_dict().items() if k not in tensors}, strict=False)
    load_adapter(other, path)
    mine = dict(other.named_parameters()) | dict(other.named_buffers())
    for k, v in tensors.items():
        assert torch.equal(mine[k], own[k]), k
    batch = sample_batch(model, [[6], [3, 2]], seed=3)
    with torch.no_grad():
        assert torch.equal(model(batch).logits, other(batch).logits)


def test_mismatched_adapters_are_rejected(tmp_path):
    model = tiny_model("llama")
    path = save_adapter(model, tmp_path / "a.safetensors", stage="adapt")
    with pytest.raises(AdapterMismatchError, match="base model_type: adapter 'llama', model 'qwen2'") as err:
        load_adapter(tiny_model("qwen2"), path)
    assert any("config_hash" in d for d in err.value.differences)
    with pytest.raises(AdapterMismatchError, match="base hidden_size: adapter 64, model 32"):
        load_adapter(tiny_model("llama", hidden_size=32), path)
    wider = tiny_model("llama", GraphLAMAConfig(graph_dim=16, gate_dim=24))
    with pytest.raises(AdapterMismatchError, match=r"shape gate.task_related.weight: adapter \(16, 20\), model \(24, 20\)"):
        load_adapter(wider, path)
    learned = tiny_model("llama", GraphLAMAConfig(graph_dim=16, gate_dim=16, hop_mode="learned"))
    learned_path = save_adapter(learned, tmp_path / "learned.safetensors", stage="adapt")
    with pytest.raises(AdapterMismatchError, match="key hop.table.weight: in adapter, not in model"):
        AdapterBank(model).add("learned", learned_path)


def test_adapter_with_a_wrong_shape_is_refused_naming_the_tensor(tmp_path):
    import json

    from safetensors.torch import save_file

    model = tiny_model("llama")
    path = save_adapter(model, tmp_path / "a.safetensors", stage="adapt")
    tensors, meta = read_adapter(path)
    tensors["gate.alpha_l"] = torch.tensor(0.75)  # 0-dim where the model has [1]
    save_file(tensors, str(path), metadata={"glm_adapter": json.dumps(meta)})
    before = model.gate.alpha_l.detach().clone()
    with pytest.raises(AdapterMismatchError, match=r"shape gate.alpha_l: adapter \(\), model \(1,\)"):
        load_adapter(model, path)
    assert torch.equal(model.gate.alpha_l.detach(), before)  # nothing half loaded


def test_not_an_adapter(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(AdapterFormatError, match="no 'glm_adapter' metadata"):
        load_adapter(tiny_model("llama"), tmp_path / "plain.safetensors")


def test_swapping_adapters_on_one_loaded_model(tmp_path):
    model = tiny_model("llama")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    llm_weight = model.llm.get_input_embeddings().weight
    batch = sample_batch(model, [[5], [4, 3]], seed=5)
    logits, paths = {}, {}
    for i, task in enumerate(["cora", "wikics"]):
        model.load_state_dict(base)
        train_step(model, "adapt", seed=i)
        model.gate.set_task_embedding(torch.randn(16))
        paths[task] = save_adapter(model, tmp_path / f"{task}.safetensors", stage="adapt", task=task)
        with torch.no_grad():
            logits[task] = model(batch).logits
    assert not torch.equal(logits["cora"], logits["wikics"])
    model.load_state_dict(base)
    bank = AdapterBank(model)
    for task, path in paths.items():
        assert bank.add(task, path)["task"] == task
    for task in ["cora", "wikics", "cora", "wikics"]:
        bank.activate(task)
        with torch.no_grad():
            assert torch.equal(model(batch).logits, logits[task]), task
    bank.activate(None)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())
    assert model.llm.get_input_embeddings().weight is llm_weight  # never reloaded
    with pytest.raises(KeyError, match="no adapter 'products'"):
        bank.activate("products")


def test_vicuna_7b_adapt_adapter_size(tmp_path):
    """Vicuna-7B-v1.5-16k on the meta device (no weights); GraphLAMA dims; adapt adapter <= 3 MB."""
    llm = build_on_meta("vicuna-7b-v1.5-16k")
    model = graphlama_model(llm, tiny_tokenizer(), TinyEncoder(128, 128), GraphLAMAConfig.paper_compatible())
    assert model.projector.net.weight.shape == (4096, 128)
    path = save_adapter(model, tmp_path / "vicuna-adapt.safetensors", stage="adapt", task="cora_5ways_1")
    size = os.path.getsize(path)
    assert size <= 3 * 1024 * 1024
    tensors, meta = read_adapter(path)
    assert sum(t.numel() for k, t in tensors.items() if k.startswith("gate.") and "task_embedding" not in k) == 16_770
    assert meta["base"]["name_or_path"] == "lmsys/vicuna-7b-v1.5-16k" and meta["base"]["hidden_size"] == 4096


def test_vicuna_7b_pretrain_adapter_matches_the_papers_3mb():
    """All graph-side tensors of GraphLAMA (GT encoder + gates + projector) for Vicuna-7B: ~2.97 MB (spec §2.2)."""
    from glm.core.encoder import EncoderConfig, GraphEncoder
    from glm.plugins.registry import RegistryError

    try:
        encoder = GraphEncoder(EncoderConfig(), "pyg")  # GraphLAMA's GT: 128 -> 128, 3 layers, 8 heads
    except (RegistryError, ImportError) as err:
        pytest.skip(f"pyg backend unavailable: {err}")
    model = graphlama_model(build_on_meta("vicuna-7b-v1.5-16k"), tiny_tokenizer(), encoder,
                               GraphLAMAConfig.paper_compatible())
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = save_adapter(model, os.path.join(tmp, "pretrain.safetensors"), stage="pretrain")
        size = os.path.getsize(path)
        tensors, meta = read_adapter(path)
    n = sum(t.numel() for k, t in tensors.items() if "task_embedding" not in k)
    assert 740_000 < n < 745_000 and size <= 3_000_000
    assert meta["backend"] == "pyg" and meta["encoder_config"]["layer"] == "gt"
