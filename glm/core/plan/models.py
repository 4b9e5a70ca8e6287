"""LLM architecture numbers for planning, and the cards the planner knows.

Built-in configs come from :data:`glm.core.llm.BUILTIN_CONFIGS` (the model loader's table)
plus the extra entries here; a local ``config.json`` (or its folder) works for anything else.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

from glm.errors import GlmError

GIB = 1024 ** 3

# Cards by name -> memory in GiB (what torch reports as total memory, rounded).
GPUS: dict[str, float] = {"3090": 24.0, "4090": 24.0, "a800": 80.0, "a100": 80.0, "h100": 80.0, "h200": 141.0}

# Config.json contents not in glm.core.llm.BUILTIN_CONFIGS (public model cards, copied numbers only).
EXTRA_CONFIGS: dict[str, dict[str, Any]] = {
    "llama-2-7b": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
        "max_position_embeddings": 4096, "hidden_act": "silu", "tie_word_embeddings": False,
        "_name_or_path": "meta-llama/Llama-2-7b-hf",
    },
    "qwen2.5-7b": {
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 32768, "hidden_act": "silu", "tie_word_embeddings": False,
        "_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
    },
}

ALIASES = {"vicuna-7b": "vicuna-7b-v1.5-16k", "smollm2": "smollm2-135m", "llama2-7b": "llama-2-7b",
           "qwen2.5-7b-instruct": "qwen2.5-7b"}

# Model types whose decoder layer is the Llama layout (RMSNorm, rotary attention, gated SiLU MLP);
# the activation model in memory.py is validated on this layout.
LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "smollm3", "granite", "olmo2"}


class PlanModelError(GlmError, ValueError):
    """An LLM config could not be found or lacks a field the planner needs."""


def builtin_configs() -> dict[str, dict[str, Any]]:
    """All built-in config dicts by name (the loader's table first, then :data:`EXTRA_CONFIGS`)."""
    try:
        from glm.core.llm import BUILTIN_CONFIGS
    except ImportError:  # pragma: no cover - the loader is part of the package
        BUILTIN_CONFIGS = {}
    out = dict(EXTRA_CONFIGS)
    out.update(BUILTIN_CONFIGS)
    return out


@dataclass(frozen=True)
class LLMShape:
    """What the planner needs to know about a decoder-only LLM.

    ``mlp``: ``"gated"`` (SwiGLU: gate, up, down) or ``"plain"`` (fc1, act, fc2).
    """

    name: str
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    qkv_bias: bool = False
    mlp: str = "gated"

    @property
    def layer_params(self) -> int:
        h, d = self.hidden, self.head_dim
        attn = h * self.heads * d + 2 * h * self.kv_heads * d + self.heads * d * h
        if self.qkv_bias:
            attn += (self.heads + 2 * self.kv_heads) * d
        mlp = (3 if self.mlp == "gated" else 2) * h * self.intermediate
        return attn + mlp + 2 * h

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def num_params(self) -> int:
        """All parameters (embeddings, layers, final norm, untied LM head)."""
        head = 0 if self.tie_embeddings else self.embedding_params
        return self.embedding_params + self.layers * self.layer_params + self.hidden + head

    @property
    def largest_layer_params(self) -> int:
        """The biggest single module (ZeRO-3 gathers one at a time): a decoder layer or the embedding."""
        return max(self.layer_params, self.embedding_params)

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder layers' linear projections (what 8-/4-bit quantisation shrinks)."""
        return self.layers * (self.layer_params - 2 * self.hidden)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"num_params": self.num_params}


def shape_from_config(config: Union[dict[str, Any], Any], name: str = "") -> LLMShape:
    """An :class:`LLMShape` from a config dict (``config.json`` contents) or a ``PretrainedConfig``."""
    if not isinstance(config, dict) and not hasattr(config, "to_dict"):
        raise PlanModelError(f"LLM config {name!r}: expected a JSON object (config.json), found {type(config).__name__}")
    cfg = config if isinstance(config, dict) else config.to_dict()
    cfg = dict(cfg.get("text_config") or {}, **{k: v for k, v in cfg.items() if k != "text_config"}) \
        if "hidden_size" not in cfg and "text_config" in cfg else cfg

    def need(*keys: str) -> Any:
        for key in keys:
            if cfg.get(key) is not None:
                return cfg[key]
        raise PlanModelError(f"LLM config {name or cfg.get('_name_or_path', '')!r} lacks {' / '.join(keys)}")

    def positive(*keys: str) -> int:
        value = need(*keys)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanModelError(f"LLM config {name or cfg.get('_name_or_path', '')!r}: {keys[0]} must be a "
                                 f"positive integer, found {value!r}")
        return value

    hidden = positive("hidden_size", "n_embd", "d_model")
    heads = positive("num_attention_heads", "n_head")
    model_type = str(cfg.get("model_type", ""))
    return LLMShape(
        name=name or str(cfg.get("_name_or_path") or model_type),
        model_type=model_type,
        hidden=hidden,
        intermediate=int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden),
        layers=positive("num_hidden_layers", "n_layer"),
        heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        vocab=positive("vocab_size"),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", model_type not in LLAMA_LIKE)),
        qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        mlp="gated" if model_type in LLAMA_LIKE or cfg.get("hidden_act") in ("silu", "swiglu") else "plain",
    )


def resolve_llm(spec: Union[str, Path, dict[str, Any], Any]) -> LLMShape:
    """Resolve a built-in name, a ``config.json`` path or folder, a config dict or a ``PretrainedConfig``."""
    if not isinstance(spec, (str, Path)):
        return shape_from_config(spec)
    text = str(spec)
    key = ALIASES.get(text.lower(), text.lower())
    table = builtin_configs()
    if key in table:
        return shape_from_config(table[key], name=key)
    path = Path(text)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PlanModelError(f"{path}: not valid JSON ({exc})") from None
        return shape_from_config(data, name=path.parent.name)
    raise PlanModelError(
        f"unknown LLM {text!r}: not a built-in ({', '.join(sorted(table))}) and no config.json at {path}"
    )


def gpu_gib(card: Union[str, float, int]) -> tuple[str, float]:
    """``("3090", 24.0)`` for a card name, or ``("24 GiB", 24.0)`` for a number of GiB."""
    text = str(card).strip().lower().removesuffix("gib").removesuffix("gb").strip()
    if text in GPUS:
        return text, GPUS[text]
    try:
        gib = float(text)
    except ValueError:
        raise PlanModelError(f"unknown GPU {card!r}: use one of {', '.join(GPUS)} or a size in GiB") from None
    if not math.isfinite(gib) or gib <= 0:
        raise PlanModelError(f"GPU size must be > 0 GiB, found {card!r}")
    return f"{gib:g} GiB", gib
