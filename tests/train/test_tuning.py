"""``model.llm.tuning``: each mode trains exactly its tensors (LoRA A/B, the last layers, the graph
side), a 4-bit base never changes, adapters round-trip (glm, PEFT, AdapterBank, merged export), and
PyG / GammaGL agree under LoRA. Real pieces: tiny random-init LLM, synthetic TAG through the real
samplers and collator, real PEFT and bitsandbytes (4-bit layers on the CPU)."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import yaml

from glm.core.config import ConfigError, config_from_dict
from glm.core.stages import FrozenLLMError, set_stage, stage_parameter_names
from glm.core.train.pipeline import build_model, make_collator, prepare_data, stage_samples
from glm.core.tuning import TuningError, is_4bit

from train_helpers import TINY_CONFIG

pytest.importorskip("peft", reason='PEFT is not installed: pip install -e ".[quant]"')


def tiny(tmp_path, backend="pyg", **llm):
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data["model"]["llm"].update(llm)
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    data["backend"] = backend
    return config_from_dict(data, "<tiny>")


def batch_of(config, model, stage="adapt"):
    config.training.stage = stage
    data = prepare_data(config)
    samples = stage_samples(config, data)
    return make_collator(config, model, data)(samples[:2])


def snapshot(model):
    out = {}
    for n, p in model.named_parameters():
        out[n] = p.detach().clone()
    for n, m in model.named_modules():
        if is_4bit(m):
            out[n + ".weight(4bit)"] = m.weight.data.detach().clone()
    return out


def steps(model, batch, n=2, lr=1e-2):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses = []
    for _ in range(n):
        opt.zero_grad()
        loss = model(batch).loss
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def changed(before, after):
    return {n for n in before if not torch.equal(before[n], after[n])}


@pytest.mark.parametrize("mode", ["frozen", "lora", "qlora", "freeze"])
def test_each_mode_trains_exactly_its_tensors(tmp_path, mode):
    if mode == "qlora":
        pytest.importorskip("bitsandbytes", reason='bitsandbytes is not installed: pip install -e ".[quant]"')
    config = tiny(tmp_path, tuning=mode, freeze={"last_n": 1}, lora={"r": 4, "dropout": 0.0})
    model = build_model(config)
    batch = batch_of(config, model)
    trained = set(set_stage(model, "adapt"))
    llm_trained = {n for n in trained if n.startswith("llm.")}
    expected_llm = {
        "frozen": set(),
        "lora": {n for n, _ in model.named_parameters() if ".lora_A." in n or ".lora_B." in n},
        "freeze": {n for n, _ in model.named_parameters() if n.startswith("llm.model.layers.1.")},
    }
    expected_llm["qlora"] = expected_llm["lora"]
    assert llm_trained == expected_llm[mode]
    if mode != "frozen":
        assert llm_trained, "the mode must train some LLM tensors"
    if mode in ("lora", "qlora"):
        targets = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in llm_trained}
        assert targets == {"q_proj", "v_proj"}
    if mode == "qlora":
        assert sum(is_4bit(m) for m in model.llm.modules()) == 2 * 7  # 2 layers x (q k v o gate up down)

    before = snapshot(model)
    losses = steps(model, batch)
    moved = changed(before, snapshot(model))
    # LoRA's B starts at zero, so A moves from the second step on: two steps move both
    assert moved == trained, (sorted(moved ^ trained))[:6]
    assert not [n for n in moved if n.endswith("(4bit)")], "a 4-bit base weight changed"
    assert all(torch.isfinite(torch.tensor(losses)))


def test_train_stages_limit_where_the_llm_trains(tmp_path):
    config = tiny(tmp_path, tuning="lora", train_stages=["adapt"])
    model = build_model(config)
    assert not [n for n in stage_parameter_names(model, "pretrain") if n.startswith("llm.")]
    assert [n for n in stage_parameter_names(model, "adapt") if ".lora_B." in n]


def test_stage_patterns_still_cannot_unfreeze_the_base(tmp_path):
    config = tiny(tmp_path, tuning="lora")
    model = build_model(config)
    with pytest.raises(FrozenLLMError, match="tuning=lora keeps frozen"):
        stage_parameter_names(model, "adapt", extra=["llm.*.q_proj.base_layer.weight"])


def test_lora_adapter_round_trips_through_glm_peft_bank_and_merge(tmp_path):
    from peft import PeftModel

    from glm.core.adapter import AdapterBank, load_adapter
    from glm.core.export import GRAPH_SIDE_FILE, export_adapter
    from glm.core.llm import load_llm_from_config
    from glm.core.train.checkpoint import write_adapter

    config = tiny(tmp_path, tuning="lora", lora={"r": 4, "dropout": 0.0})
    model = build_model(config)
    batch = batch_of(config, model)
    set_stage(model, "adapt")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    write_adapter(model, untrained / "adapter_model.safetensors", "adapt")
    steps(model, batch, n=3)
    model.eval()
    with torch.no_grad():
        want = model(batch).logits
        text = batch.input_ids[:, :5].clamp(max=200)
        want_llm = model.llm(input_ids=text).logits
    run = tmp_path / "run"
    run.mkdir()
    write_adapter(model, run / "adapter_model.safetensors", "adapt")
    assert (run / "adapter_config.json").is_file()

    # glm: a config without tuning gets the LoRA attached from the adapter's metadata
    plain = copy.deepcopy(config)
    plain.model.llm.tuning = "frozen"
    fresh = build_model(plain)
    meta = load_adapter(fresh, run / "adapter_model.safetensors")
    assert meta["llm_tuning"]["mode"] == "lora" and meta["llm_tuning"]["peft_config"]["r"] == 4
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch).logits, want, rtol=0, atol=0)

    # PEFT reads the run folder as it is (adapter_config.json + adapter_model.safetensors)
    base, _ = load_llm_from_config(plain.model.llm)
    peft_model = PeftModel.from_pretrained(base, str(run)).eval()
    with torch.no_grad():
        torch.testing.assert_close(peft_model(input_ids=text).logits, want_llm, rtol=0, atol=0)

    # AdapterBank: swap trained / untrained LoRA on one model, no reload, no leak
    bank = AdapterBank(fresh)
    bank.add("trained", run / "adapter_model.safetensors")
    bank.add("untrained", untrained / "adapter_model.safetensors")
    with torch.no_grad():
        bank.activate("untrained")
        other = fresh(batch).logits
        bank.activate("trained")
        again = fresh(batch).logits
    assert not torch.allclose(other, want)
    torch.testing.assert_close(again, want, rtol=0, atol=0)

    # glm export --merge: a plain HF folder computing what the LoRA model computed
    (run / "glm_config.yaml").write_text(config.to_yaml())
    out = export_adapter(run, config, tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=text).logits, want_llm, rtol=1e-4, atol=1e-4)
    assert (out / GRAPH_SIDE_FILE).is_file()
    assert not any(".lora_" in n for n, _ in merged.named_parameters())


def test_freeze_adapter_holds_only_the_trained_layers(tmp_path):
    from glm.core.adapter import load_adapter, read_adapter, save_adapter

    config = tiny(tmp_path, tuning="freeze", freeze={"last_n": 1, "modules": ["model.norm"]})
    model = build_model(config)
    batch = batch_of(config, model)
    set_stage(model, "adapt")
    steps(model, batch)
    path = save_adapter(model, tmp_path / "a.safetensors", "adapt")
    tensors, meta = read_adapter(path)
    llm_keys = {k for k in tensors if k.startswith("llm.")}
    assert llm_keys == {n for n, _ in model.named_parameters()
                        if n.startswith("llm.model.layers.1.") or n == "llm.model.norm.weight"}
    assert meta["llm_tuning"]["freeze"] == {"last_n": 1, "modules": ["model.norm"]}
    fresh = build_model(config)
    load_adapter(fresh, path)
    model.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch).logits, model(batch).logits, rtol=0, atol=0)


def test_pyg_and_gammagl_give_identical_losses_under_lora(tmp_path):
    from glm.plugins import get_registry

    if not get_registry().backends["gammagl"].available:
        pytest.skip("GammaGL is not installed: pip install -e '.[gammagl]'")
    models, batches, losses = {}, {}, {}
    for backend in ("pyg", "gammagl"):
        config = tiny(tmp_path, backend=backend, tuning="lora", lora={"r": 4, "dropout": 0.0})
        config.model.encoder.dropout = 0.0
        models[backend] = build_model(config)
        batches[backend] = batch_of(config, models[backend])
    ref, other = models["pyg"], models["gammagl"]
    # the same weights (the backends draw their initial encoder weights differently)
    other.encoder.load_neutral_state_dict(ref.encoder.neutral_state_dict())
    other.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("encoder.")}, strict=False)
    for backend, model in models.items():
        set_stage(model, "adapt")
        torch.manual_seed(0)
        losses[backend] = steps(model, batches[backend], n=3)
    assert losses["pyg"] == losses["gammagl"], losses
    after = dict(other.named_parameters())
    lora = {n: p for n, p in ref.named_parameters() if ".lora_" in n}
    assert lora and all(torch.equal(p, after[n]) for n, p in lora.items())


@pytest.mark.parametrize("llm, match", [
    ({"tuning": "adapter"}, "model.llm.tuning must be one of frozen, lora, qlora, freeze"),
    ({"tuning": "lora", "lora": {"r": 0}}, "model.llm.lora.r must be >= 1"),
    ({"tuning": "lora", "lora": {"rank": 8}}, "unknown key 'model.llm.lora.rank'"),
    ({"tuning": "qlora", "quant": {"type": "int3"}}, "model.llm.quant.type must be one of nf4, fp4"),
    ({"tuning": "lora", "train_stages": ["finetune"]}, "model.llm.train_stages"),
    ({"tuning": "freeze", "freeze": {"last_n": 0}}, "trains nothing of the LLM"),
    ({"attention": "xformers"}, "model.llm.attention must be one of"),
])
def test_bad_tuning_settings_are_named(tmp_path, llm, match):
    with pytest.raises(ConfigError, match=match):
        tiny(tmp_path, **llm)


@pytest.mark.parametrize("llm, match", [
    ({"tuning": "lora", "lora": {"target_modules": ["qkv_proj"]}}, "model.llm.lora.target_modules"),
    ({"tuning": "freeze", "freeze": {"last_n": 9}}, "last_n is 9 but the LLM has 2 decoder layers"),
    ({"tuning": "freeze", "freeze": {"last_n": 1, "modules": ["model.nrom"]}}, "'model.nrom' matches no LLM parameter"),
])
def test_tuning_that_does_not_fit_the_llm_is_named(tmp_path, llm, match):
    with pytest.raises(TuningError, match=match):
        build_model(tiny(tmp_path, **llm))


def test_recipe_carries_tuning_defaults_and_the_config_wins(tmp_path):
    config = tiny(tmp_path, tuning="frozen")
    data = yaml.safe_load(config.to_yaml())
    data["model"]["llm"].pop("tuning")
    data["model"]["llm"].pop("lora")
    data["training"].pop("micro_batch_size")
    data["training"].pop("gradient_accumulation_steps")
    data["recipe"] = "4090-lora"
    c = config_from_dict(copy.deepcopy(data), "<t>")
    assert (c.model.llm.tuning, c.model.llm.lora.r, c.training.micro_batch_size,
            c.training.gradient_accumulation_steps) == ("lora", 64, 1, 16)
    data["model"]["llm"]["lora"] = {"r": 16}
    c = config_from_dict(data, "<t>")
    assert (c.model.llm.lora.r, c.model.llm.lora.alpha) == (16, 128.0)
    data["recipe"] = "3090-qlora"
    data["model"]["llm"]["tuning"] = "frozen"
    assert config_from_dict(data, "<t>").model.llm.tuning == "frozen"


def test_llm_learning_rate_puts_the_llm_part_in_its_own_group(tmp_path):
    from glm.core.train.loop import parameter_groups

    config = tiny(tmp_path, tuning="lora")
    model = build_model(config)
    set_stage(model, "adapt")
    flat = parameter_groups(model, None)
    assert len(flat) == sum(p.requires_grad for p in model.parameters())
    graph, llm = parameter_groups(model, 1e-4)
    lora = {id(p) for n, p in model.named_parameters() if ".lora_" in n}
    assert llm["lr"] == 1e-4 and {id(p) for p in llm["params"]} == lora
    assert not lora & {id(p) for p in graph["params"]} and graph["params"]


def test_lr_groups_give_graph_side_patterns_their_own_rate(tmp_path):
    from glm.core.stages import LrGroupError
    from glm.core.train.loop import parameter_groups

    config = tiny(tmp_path, tuning="lora")
    model = build_model(config)
    set_stage(model, "adapt", extra=["projector.*"])
    rest, proj, llm = parameter_groups(model, 1e-4, {"projector.*": 1e-3})
    names = {id(p): n for n, p in model.named_parameters()}
    assert proj["lr"] == 1e-3 and {names[id(p)] for p in proj["params"]} == {
        n for n, p in model.named_parameters() if n.startswith("projector.")}
    assert "lr" not in rest and all(names[id(p)].startswith("gate.") for p in rest["params"])
    assert llm["lr"] == 1e-4 and all(".lora_" in names[id(p)] for p in llm["params"])
    with pytest.raises(LrGroupError, match=r"\['encoder\.\*'\] match no trainable parameter"):
        parameter_groups(model, None, {"encoder.*": 1e-3})  # the encoder is frozen in adaptation

    base = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    base["training"]["lr_groups"] = {"projector.*": "1e-3"}  # YAML reads 1e-3 as a string
    assert config_from_dict(copy.deepcopy(base), "<t>").training.lr_groups == {"projector.*": 1e-3}
    for bad, message in (({"projector.*": 0}, "must be a learning rate > 0, found 0"),
                         ({"projector.*": "fast"}, "found 'fast'"),
                         ({"llm.*": 1e-3}, "model.llm.learning_rate")):
        base["training"]["lr_groups"] = bad
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_dict(copy.deepcopy(base), "<t>")


def test_health_log_has_a_lora_group(tmp_path):
    from glm.core.train.health import TrainingHealth

    config = tiny(tmp_path, tuning="lora", lora={"r": 4, "dropout": 0.0})
    model = build_model(config)
    batch = batch_of(config, model)
    set_stage(model, "adapt")
    health = TrainingHealth(model)
    model(batch).loss.backward()
    norms = health.grad_norms()
    health.close()
    lora = [p.grad for n, p in model.named_parameters() if ".lora_" in n]
    assert "lora" in norms and not [k for k in norms if k.startswith("llm")]
    assert norms["lora"] == pytest.approx(float(torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for g in lora]))), rel=1e-5)


def test_qlora_with_a_zero3_recipe_is_a_named_config_error(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data["model"]["llm"]["tuning"] = "qlora"
    data["recipe"] = "3090-zero3-offload"
    with pytest.raises(ConfigError, match="ZeRO-3, which cannot partition a 4-bit base"):
        config_from_dict(data, "<t>")


def test_export_cli_names_what_is_wrong(tmp_path, capsys):
    from glm.cli.main import main
    from glm.core.adapter import save_adapter

    config = tiny(tmp_path)
    model = build_model(config)
    set_stage(model, "adapt")
    run = tmp_path / "run"
    run.mkdir()
    save_adapter(model, run / "adapter_model.safetensors", "adapt")
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert "no run config" in capsys.readouterr().err
    (run / "glm_config.yaml").write_text(config.to_yaml())
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert "nothing to merge" in capsys.readouterr().err
    assert main(["export", str(run), str(tmp_path / "out"), "--peft"]) == 2
    assert "no LoRA tensors" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()
