"""The one model factory: a run configuration -> a :class:`~glm.core.model.GraphLanguageModel`.

Used by the training pipeline, ``glm plan`` (around a weight-less LLM) and ``glm plan --probe``,
so all three build the same graph side and agree on what trains::

    config.model.method -> MethodSpec (registry)
    [GraphEncoder(model.encoder) on the backend, if the method uses one]
    -> spec.build(model.<method>, MethodContext) -> NodeTokenModule
    -> model.llm.tuning (glm.core.tuning: LoRA, 4-bit base, last layers)
    -> GraphLanguageModel(llm, tokenizer, node tokens, spec)

The graph side is initialised from ``torch.manual_seed(training.seed)``, so one seed gives one
random graph side whatever loaded the LLM.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import nn

from glm.core.method import MethodContext, MethodError
from glm.core.tuning import apply_tuning
from glm.errors import GlmError


class FactoryError(GlmError, ValueError):
    """The configuration cannot be turned into a model (named field, found value)."""


def default_backend(name: Optional[str]) -> str:
    """``name``, else ``$GLM_BACKEND``, else the first installed backend."""
    from glm.plugins.manager import get_registry

    name = name or os.environ.get("GLM_BACKEND")
    if name:
        return name
    available = get_registry().available_backends()
    if not available:
        raise FactoryError('no graph backend is installed; install one with: pip install -e ".[pyg]"')
    return available[0]


def build_node_tokens(config: Any, hidden_size: int, backend: Optional[str] = None,
                      encoder: Optional[nn.Module] = None):
    """``(node-token module, MethodSpec)`` of ``config.model`` for an LLM of ``hidden_size``.

    ``encoder`` replaces the GNN the method would build (``glm plan`` counts one by formula when
    no backend is installed); methods without a GNN never touch a backend.
    """
    from glm.core.encoder import build_encoder

    model_cfg = config.model
    spec = model_cfg.method_spec
    if spec.uses_encoder and encoder is None:
        encoder = build_encoder(model_cfg.encoder, default_backend(backend or config.backend))
    context = MethodContext(hidden_size=int(hidden_size), feature_dim=model_cfg.encoder.in_dim,
                            encoder=encoder if spec.uses_encoder else None,
                            encoder_out_dim=model_cfg.encoder.out_dim if spec.uses_encoder else None,
                            fanout=tuple(config.data.fanout))
    module = spec.build(model_cfg.method_config, context)
    if not isinstance(module, nn.Module) or not hasattr(module, "tokens_per_graph"):
        raise MethodError(f"method {spec.name!r}: build returned {type(module).__name__}, "
                          "expected a glm.core.method.NodeTokenModule")
    return module, spec


def build_model(config: Any, backend: Optional[str] = None, llm: Optional[nn.Module] = None,
                tokenizer: Any = None, encoder: Optional[nn.Module] = None):
    """A :class:`~glm.core.model.GraphLanguageModel` for ``config`` (random graph side, seeded).

    Args:
        config: a :class:`glm.core.config.RunConfig`.
        backend: overrides ``config.backend``.
        llm, tokenizer: an already loaded LLM (default: :func:`glm.core.llm.load_llm_from_config`).
        encoder: a GNN to use instead of building ``model.encoder``.
    """
    from glm.core.model import GraphLanguageModel

    if llm is None:
        from glm.core.llm import load_llm_from_config

        llm, tokenizer = load_llm_from_config(config.model.llm)
    torch.manual_seed(config.training.seed)
    module, spec = build_node_tokens(config, int(llm.config.hidden_size), backend, encoder)
    llm, tuning = apply_tuning(llm, config.model.llm, seed=config.training.seed)
    model = GraphLanguageModel(llm, tokenizer, module, spec)
    model.llm_tuning = tuning
    model.set_token_norm(config.model.token_norm)
    return model
