"""Built-in DeepSpeed recipes, registered through the ``register_recipes`` hook.

Each recipe is a DeepSpeed JSON file in this folder. Fields set to ``"auto"`` are filled
from the run configuration by :func:`glm.core.train.dsconfig.resolve_recipe`; the
``"_glm"`` section holds glm-side hints (``gradient_checkpointing``; ``config``: run-config
defaults such as the tuning mode, under what the YAML sets) and is removed before the JSON
reaches DeepSpeed.
"""

from __future__ import annotations

from pathlib import Path

from glm.plugins.hookspecs import hookimpl

RECIPE_DIR = Path(__file__).resolve().parent

BUILTIN_RECIPES: dict[str, str] = {
    "cpu": "CPU, no ZeRO, fp32, torch AdamW: tests and the demo (gloo, any number of processes)",
    "single-gpu": "one GPU, no ZeRO, bf16 when supported, gradient checkpointing",
    "3090-zero2-offload": "24 GB GPU, ZeRO-2, optimizer state on CPU (DeepSpeedCPUAdam), bf16, grad checkpointing",
    "3090-zero3-offload": "24 GB GPU, ZeRO-3, parameters and optimizer offloaded to CPU, bf16, grad checkpointing",
    "4090-lora": "24 GB GPU, LoRA r=64 on q/v (model.llm.tuning=lora), ZeRO-2 + CPU optimizer offload, bf16, "
                 "grad checkpointing, micro-batch 1 x accumulation 16",
    "3090-qlora": "24 GB GPU, 4-bit NF4 base + LoRA r=64 on every linear (model.llm.tuning=qlora), ZeRO-2, bf16, "
                  "grad checkpointing, micro-batch 1 x accumulation 16",
}


@hookimpl
def register_recipes(register) -> None:
    for name, description in BUILTIN_RECIPES.items():
        register(name, RECIPE_DIR / f"{name}.json", description=description)
