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

    from glm.core.llm import SMOLLM2_PACKAGE, llm_identity, load_smollm2
    from glm.core.llm_cache import SOURCE_FILE, cached_gguf_folder

    monkeypatch.setenv("GLM_LLM_CACHE", str(tmp_path))
    seen = {}

    def load_gguf():  # the GGUF path itself, kept to compare with (one parse of the file in this test)
        seen["model"] = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                             local_files_only=True)
        seen["tok"] = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        return seen["model"], seen["tok"]

    folder = cached_gguf_folder(gguf.parent, gguf.name, load_gguf)
    assert folder is not None and (folder / SOURCE_FILE).is_file()
    made = (folder / "model.safetensors").stat().st_mtime_ns
    direct, direct_tok = seen["model"], seen["tok"]
    direct.config._name_or_path = f"{SMOLLM2_PACKAGE}/{gguf.name}"
    model, tok = load_smollm2(torch.float32)  # reads the copy
    half, _ = load_smollm2(torch.bfloat16)
    assert (folder / "model.safetensors").stat().st_mtime_ns == made, "a load must not rebuild the copy"
    assert not getattr(model, "is_quantized", False)
    for m in (model, half):
        assert llm_identity(m) == llm_identity(direct), "adapters made on either path must stay compatible"
    own, own_half = model.state_dict(), half.state_dict()
    for k, v in direct.state_dict().items():
        assert torch.equal(v, own[k]) and torch.equal(v.to(torch.bfloat16), own_half[k]), k
    msgs = [{"role": "user", "content": "Name a graph."}]
    ids = direct_tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    mine = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert mine["input_ids"].tolist() == ids["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(direct(ids["input_ids"]).logits, model(ids["input_ids"]).logits)


@pytest.mark.slow  # a third GGUF parse (15 s); the copy itself is checked in the fast suite above
def test_an_unwritable_cache_falls_back_to_the_gguf_file(gguf, tmp_path, monkeypatch, caplog):
    from glm.core.llm import load_smollm2

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GLM_LLM_CACHE", str(blocker / "llm"))
    model, _ = load_smollm2(torch.float32)
    assert getattr(model, "is_quantized", False) and "could not write the dequantised copy" in caplog.text
