"""Resolve a recipe (registered name or JSON path) into a DeepSpeed config dict.

``"auto"`` fields are filled from the ``training`` section (:class:`glm.core.config.TrainingConfig`), the way HF's
Trainer fills LLaMA-Factory's ``ds_z*_config.json``:

==========================================  ==============================================
``train_micro_batch_size_per_gpu``          ``training.micro_batch_size``
``gradient_accumulation_steps``             ``training.gradient_accumulation_steps``
``train_batch_size``                        micro batch x accumulation x world size
``gradient_clipping``                       ``training.max_grad_norm``
``optimizer.params.lr / weight_decay``      ``training.learning_rate / weight_decay``
``optimizer.params.betas``                  ``training.adam_betas``
``bf16.enabled`` / ``fp16.enabled``         bf16 on a CUDA device that supports it, else off
``zero_optimization.reduce_bucket_size``    ``hidden_size**2`` (LLM hidden size)
``stage3_prefetch_bucket_size``             ``0.9 * hidden_size**2``
``stage3_param_persistence_threshold``      ``10 * hidden_size``
==========================================  ==============================================

Any other ``"auto"`` left over raises :class:`RecipeError` naming its path.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from glm.core.config import TrainingConfig
from glm.core.recipe import RecipeError, load_recipe


def _bf16_supported(device_type: str) -> bool:
    if device_type != "cuda":
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_recipe(
    name_or_path: str,
    training: TrainingConfig,
    world_size: int = 1,
    device_type: str = "cpu",
    hidden_size: Optional[int] = None,
) -> dict[str, Any]:
    """Load a recipe and fill every ``"auto"`` field from the ``training`` section; return a DeepSpeed config dict."""
    raw, source = load_recipe(name_or_path)
    ds = {k: v for k, v in copy.deepcopy(raw).items() if not k.startswith("_")}
    t = training
    bf16 = _bf16_supported(device_type)
    h = hidden_size or 1024
    fills = {
        ("train_micro_batch_size_per_gpu",): t.micro_batch_size,
        ("gradient_accumulation_steps",): t.gradient_accumulation_steps,
        ("train_batch_size",): t.micro_batch_size * t.gradient_accumulation_steps * world_size,
        ("gradient_clipping",): t.max_grad_norm,
        ("optimizer", "params", "lr"): t.learning_rate,
        ("optimizer", "params", "weight_decay"): t.weight_decay,
        ("optimizer", "params", "betas"): list(t.adam_betas),
        ("bf16", "enabled"): bf16,
        ("fp16", "enabled"): False,
        ("zero_optimization", "reduce_bucket_size"): h * h,
        ("zero_optimization", "stage3_prefetch_bucket_size"): int(0.9 * h * h),
        ("zero_optimization", "stage3_param_persistence_threshold"): 10 * h,
    }
    for path, value in fills.items():
        node = ds
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and node.get(path[-1]) == "auto":
            node[path[-1]] = value
    # Values the user fixed in the JSON win, but batch sizes must agree with the config.
    for key, want in (("train_micro_batch_size_per_gpu", t.micro_batch_size),
                      ("gradient_accumulation_steps", t.gradient_accumulation_steps)):
        if key in ds and ds[key] != want:
            raise RecipeError(
                f"{source}: {key} is {ds[key]} but the config says {want}; set it to \"auto\" or change the config"
            )
    left = _find_auto(ds)
    if left:
        raise RecipeError(f"{source}: cannot fill \"auto\" for {', '.join(left)}; give explicit values")
    return ds


def _find_auto(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out += _find_auto(v, f"{prefix}.{k}" if prefix else k)
        return out
    return [prefix] if node == "auto" else []
