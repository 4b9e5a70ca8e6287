"""``glm export``: an adapter's LLM part as a merged Hugging Face folder or a PEFT folder.

``merge``: the base LLM (``model.llm`` of the run's config, in its dtype; a 4-bit base is loaded
unquantised) with the adapter's LoRA merged into its weights (``W + (alpha / r) B A``) or its
trained last layers copied in, written with ``save_pretrained`` together with the tokenizer; the
graph side (every non-LLM tensor) goes to ``graph_side.safetensors`` in the same folder, a glm
adapter to use with ``model.llm.path=<folder>`` (the LLM tensors are in the weights now).
``peft``: ``adapter_config.json`` + ``adapter_model.safetensors`` holding only the LoRA tensors.
Both write into a new folder first and rename it into place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Union

import torch

from glm.errors import GlmError

GRAPH_SIDE_FILE = "graph_side.safetensors"


class ExportError(GlmError, ValueError):
    """The adapter has nothing to export, or the output folder is taken."""


def _split(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(LoRA tensors under PEFT names, last-layer tensors under LLM names)``."""
    lora = {k: v for k, v in tensors.items() if k.startswith("base_model.model.")}
    layers = {k[len("llm."):]: v for k, v in tensors.items() if k.startswith("llm.")}
    return lora, layers


def merged_llm(config: Any, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
    """``(llm, tokenizer)``: the base LLM with the adapter's LLM tensors merged in."""
    from glm.core.llm import load_llm_from_config
    from glm.core.tuning import attach_lora, from_saved_name

    lora, layers = _split(tensors)
    if not lora and not layers:
        raise ExportError("the adapter holds no LLM tensors (model.llm.tuning was frozen): nothing to merge")
    llm, tok = load_llm_from_config(config.model.llm)  # unquantised even for a qlora run: merging needs dense weights
    if layers:
        missing = llm.load_state_dict(layers, strict=False).unexpected_keys
        if missing:
            raise ExportError(f"adapter LLM tensors not in the base: {missing[:3]}")
    if lora:
        peft = attach_lora(llm, (meta.get("llm_tuning") or {}).get("peft_config") or {})
        # PEFT names -> the wrapped model's own (glm's names without the leading "llm.")
        result = peft.load_state_dict({from_saved_name(k)[len("llm."):]: v for k, v in lora.items()}, strict=False)
        if result.unexpected_keys:
            raise ExportError(f"LoRA tensors that fit no module: {result.unexpected_keys[:3]}")
        llm = peft.merge_and_unload()
    return llm, tok


def chain_tensors(adapter: Union[str, Path]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of an adapter over those of the adapters it was trained on (``init_from``; LoRA
    trained only in pre-training lives in the parent), and the adapter's own metadata."""
    from glm.core.adapter import read_adapter
    from glm.core.train.pipeline import adapter_path

    file, chain = adapter_path(adapter), []
    while file is not None and len(chain) < 8:
        tensors, meta = read_adapter(file)
        chain.append((tensors, meta))
        parent = (meta.get("extra") or {}).get("init_from")
        if not parent:
            break
        parent_path = Path(parent) if Path(parent).exists() else file.parent / parent
        try:
            file = adapter_path(parent_path)
        except Exception:  # a converted encoder state or a moved parent: the graph side is not exported
            file = None
    merged: dict[str, torch.Tensor] = {}
    for tensors, _ in reversed(chain):
        merged.update(tensors)
    tuned = next((m for _, m in chain if m.get("llm_tuning")), chain[0][1])
    return merged, {**chain[0][1], "llm_tuning": tuned.get("llm_tuning")}


def export_adapter(adapter: Union[str, Path], config: Any, output: Union[str, Path], kind: str = "merge") -> Path:
    """Write ``kind`` (``merge`` or ``peft``) of ``adapter`` to the new folder ``output``."""
    from safetensors.torch import save_file

    from glm.core.adapter import METADATA_KEY
    from glm.core.llm import llm_identity
    from glm.core.tuning import PEFT_CONFIG_FILE, peft_config_json

    out = Path(output)
    if out.exists():
        raise ExportError(f"{out} exists; give a new folder")
    tensors, meta = chain_tensors(adapter)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind == "merge":
            llm, tok = merged_llm(config, tensors, meta)
            llm.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            graph = {k: v for k, v in tensors.items() if not k.startswith(("llm.", "base_model."))}
            graph_meta = {**meta, "llm_tuning": None, "tensors": {k: list(v.shape) for k, v in graph.items()},
                          "base": llm_identity(llm)}
            save_file(graph, str(tmp / GRAPH_SIDE_FILE), metadata={METADATA_KEY: json.dumps(graph_meta, default=str)})
        elif kind == "peft":
            lora, _ = _split(tensors)
            settings = meta.get("llm_tuning") or {}
            cfg = peft_config_json(settings, (meta.get("base") or {}).get("name_or_path", ""))
            if not lora or cfg is None:
                raise ExportError("the adapter holds no LoRA tensors (model.llm.tuning was not lora / qlora)")
            save_file(lora, str(tmp / "adapter_model.safetensors"))
            (tmp / PEFT_CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
        else:
            raise ExportError(f"export kind must be merge or peft, found {kind!r}")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
