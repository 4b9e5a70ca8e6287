"""The dequantised GGUF copy (glm.core.llm_cache) loads the same model as the GGUF file itself."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def gguf():
    from glm.core.llm import LLMLoadError, smollm2_gguf_path

    try:
        return smollm2_gguf_path()
    except LLMLoadError as exc:
        pytest.skip(f"the SmolLM2 package is not installed: {exc}")


def test_cached_copy_equals_the_gguf_path(gguf, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glm.core.llm import llm_identity, load_smollm2
    from glm.core.llm_cache import SOURCE_FILE, cache_key

    monkeypatch.setenv("GLM_LLM_CACHE", str(tmp_path))
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
                                                  local_files_only=True)
    direct_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    from glm.core.llm import SMOLLM2_PACKAGE

    direct.config._name_or_path = f"{SMOLLM2_PACKAGE}/{gguf.name}"
    model, tok = load_smollm2(torch.bfloat16)  # builds the copy
    folder = tmp_path / cache_key(gguf)
    assert (folder / SOURCE_FILE).is_file() and not getattr(model, "is_quantized", False)
    made = (folder / "model.safetensors").stat().st_mtime_ns
    again, _ = load_smollm2(torch.bfloat16)  # reads it
    assert (folder / "model.safetensors").stat().st_mtime_ns == made, "the second load must not rebuild"
    for m in (model, again):
        assert llm_identity(m) == llm_identity(direct), "adapters made on either path must stay compatible"
        own = m.state_dict()
        assert all(torch.equal(v, own[k]) for k, v in direct.state_dict().items())
    ids = direct_tok.apply_chat_template([{"role": "user", "content": "Name a graph."}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)["input_ids"]
    assert tok.apply_chat_template([{"role": "user", "content": "Name a graph."}], add_generation_prompt=True,
                                   return_tensors="pt", return_dict=True)["input_ids"].tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, again(ids).logits)


@pytest.mark.slow  # a third GGUF parse (15 s); the copy itself is checked in the fast suite above
def test_an_unwritable_cache_falls_back_to_the_gguf_file(gguf, tmp_path, monkeypatch, caplog):
    from glm.core.llm import load_smollm2

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GLM_LLM_CACHE", str(blocker / "llm"))
    model, _ = load_smollm2(torch.float32)
    assert getattr(model, "is_quantized", False) and "could not write the dequantised copy" in caplog.text
