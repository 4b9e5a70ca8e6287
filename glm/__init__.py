"""glm: graph language models (GraphLAMA and friends) on PyG or GammaGL.

Public surface only. Names resolve lazily so that ``import glm`` stays cheap (no torch,
transformers or graph framework import until a name is used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # graph containers and data flow
    "Subgraph": "glm.core.graph",
    "SubgraphBatch": "glm.core.graph",
    "Sample": "glm.core.sample",
    "GraphBatch": "glm.core.sample",
    "TextAttributedGraph": "glm.core.data.tag",
    "load_dataset": "glm.core.data",
    # model
    "EncoderConfig": "glm.core.encoder",
    "GraphEncoder": "glm.core.encoder",
    "build_encoder": "glm.core.encoder",
    "GraphLAMAConfig": "glm.methods.graphlama.config",
    "GraphLanguageModel": "glm.core.model",
    "set_stage": "glm.core.stages",
    "trainable_parameters": "glm.core.stages",
    "save_adapter": "glm.core.adapter",
    "load_adapter": "glm.core.adapter",
    # configuration and the run layer (glm.run: what the CLI's commands do, as functions)
    "RunConfig": "glm.core.config",
    "load_config": "glm.run",
    "prepare_data": "glm.run",
    "build_model": "glm.run",
    "train": "glm.run",
    "evaluate": "glm.run",
    "predict": "glm.run",
    "from_pretrained": "glm.run",
    "save_pretrained": "glm.run",
    "Trainer": "glm.core.train.loop",
    "TrainingConfig": "glm.core.config",
    "Recipe": "glm.core.train.arguments",
    "RunRecord": "glm.core.train.arguments",
    "TrainerCallback": "glm.core.train.callbacks",
    "TrainerState": "glm.core.train.callbacks",
    "TrainerControl": "glm.core.train.callbacks",
    # plugins
    "hookimpl": "glm.plugins",
    "get_registry": "glm.plugins",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from glm.version import glm_version

        return glm_version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'glm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
