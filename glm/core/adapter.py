"""Adapters: only the trained tensors of a stage, in safetensors, with metadata.

File layout: a ``.safetensors`` file whose header metadata has one key, ``"glm_adapter"``,
holding JSON::

    {"format": "glm-adapter/1", "glm_version", "method", "stage", "task",
     "base": {name_or_path, model_type, hidden_size, vocab_size, num_hidden_layers, config_hash},
     "graph_config": the method's config, "encoder_config", "backend",
     "tensors": {name: [shape...]}, "extra": {...}}

Tensors are the parameters trained in the stage plus the method's ``adapter_buffers`` (GraphLAMA:
the gate's frozen task-text embedding, which belongs to the task, so swapping adapters swaps it
too). Adapters written before methods existed have no ``"method"`` key and are GraphLAMA's.
Under ``model.llm.tuning`` the LLM tensors that trained are stored too: LoRA's under PEFT's names
(``base_model.model.<module>.lora_A.weight``), the last layers' under the model's (``llm.model...``);
``"llm_tuning"`` records the mode and its settings, so loading an adapter with LoRA into a model
without it attaches the same LoRA first (:func:`glm.core.tuning.attach_lora`).
Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch
from torch import Tensor, nn

from glm.core.io import atomic_path
from glm.core.llm import llm_identity
from glm.core.stages import StageTable, stage_parameter_names
from glm.core.tuning import attach_lora, from_saved_name, has_lora, to_saved_name, tuning_of
from glm.errors import GlmError
from glm.version import glm_version

ADAPTER_FORMAT = "glm-adapter/1"
METADATA_KEY = "glm_adapter"
LEGACY_METHOD = "graphlama"  # adapters without a "method" key
BASE_KEYS = ("model_type", "hidden_size", "vocab_size", "num_hidden_layers", "config_hash")


class AdapterFormatError(GlmError, ValueError):
    """The file is not a glm adapter (missing or unreadable metadata)."""


class AdapterMismatchError(GlmError, ValueError):
    """An adapter does not fit the model; ``differences`` lists every base/key/shape difference."""

    def __init__(self, path: Union[str, Path], differences: list[str]) -> None:
        self.path, self.differences = str(path), differences
        super().__init__(f"adapter {path} does not fit this model:\n  " + "\n  ".join(differences))


def _encoder_info(encoder: nn.Module) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    cfg = getattr(encoder, "config", None)
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else None
    backend = getattr(encoder, "backend_name", None) or getattr(getattr(encoder, "backend", None), "name", None)
    return cfg_dict, backend


def adapter_state(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
                  extra: Iterable[str] = ()) -> dict[str, Tensor]:
    """The tensors an adapter of ``stage`` stores: name -> detached CPU copy."""
    names = stage_parameter_names(model, stage, stages, extra)
    state = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    out = {n: state[n] for n in names}
    method = getattr(model, "method", None)
    out.update({n: buffers[n] for n in getattr(method, "adapter_buffers", ()) if n in buffers})
    return {to_saved_name(n): t.detach().to("cpu").contiguous().clone() for n, t in out.items()}


def save_adapter(model: nn.Module, path: Union[str, Path], stage: str, task: Optional[str] = None,
                 stages: Optional[StageTable] = None, extra: Iterable[str] = (),
                 extra_metadata: Optional[dict[str, Any]] = None) -> Path:
    """Write the ``stage`` adapter of ``model`` (a GraphLanguageModel) to ``path``; return the path."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = adapter_state(model, stage, stages, extra)
    encoder = getattr(model, "encoder", None)
    enc_cfg, backend = _encoder_info(encoder) if encoder is not None else (None, None)
    meta = {
        "format": ADAPTER_FORMAT, "glm_version": glm_version(), "method": _method_name(model),
        "stage": stage, "task": task,
        "base": llm_identity(model.llm), "graph_config": _config_dict(model.config),
        "encoder_config": enc_cfg, "backend": backend,
        "tensors": {n: list(t.shape) for n, t in tensors.items()}, "extra": extra_metadata or {},
        "llm_tuning": tuning_of(model).metadata() if any(n.startswith(("llm.", "base_model.")) for n in tensors)
        else None,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True, default=str)})
    return path


def read_adapter(path: Union[str, Path]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` of an adapter file; raises :class:`AdapterFormatError`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise AdapterFormatError(f"{path}: not a safetensors file ({err})") from err
    if raw is None:
        raise AdapterFormatError(f"{path}: no '{METADATA_KEY}' metadata; not a glm adapter")
    meta = json.loads(raw)
    if meta.get("format") != ADAPTER_FORMAT:
        raise AdapterFormatError(f"{path}: format {meta.get('format')!r}, expected {ADAPTER_FORMAT!r}")
    return tensors, meta


def _method_name(model: nn.Module) -> Optional[str]:
    return getattr(getattr(model, "method", None), "name", None)


def _config_dict(config: Any) -> Optional[dict[str, Any]]:
    if config is None:
        return None
    return config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)


def adapter_differences(model: nn.Module, tensors: dict[str, Tensor], meta: dict[str, Any]) -> list[str]:
    """Every reason ``tensors``/``meta`` do not fit ``model`` (empty when they do)."""
    diffs = []
    model_method, adapter_method = _method_name(model), meta.get("method", LEGACY_METHOD)
    if model_method is not None and adapter_method != model_method:
        diffs.append(f"method: adapter {adapter_method!r}, model {model_method!r}")
    base, mine = meta.get("base", {}), llm_identity(model.llm)
    for key in BASE_KEYS:
        if base.get(key) != mine[key]:
            diffs.append(f"base {key}: adapter {base.get(key)!r}, model {mine[key]!r}"
                         f" (adapter base {base.get('name_or_path')!r}, model {mine['name_or_path']!r})")
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    for saved, t in tensors.items():
        name = from_saved_name(saved)
        if name not in own:
            diffs.append(f"key {name}: in adapter, not in model")
        elif tuple(own[name].shape) != tuple(t.shape):
            diffs.append(f"shape {name}: adapter {tuple(t.shape)}, model {tuple(own[name].shape)}")
    return diffs


@torch.no_grad()
def apply_adapter_tensors(model: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Copy ``tensors`` into the model's parameters/buffers of the same names (in place)."""
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    for saved, t in tensors.items():
        name = from_saved_name(saved)
        own[name].copy_(t.to(own[name].device, own[name].dtype))


def prepare_llm_for(model: nn.Module, meta: dict[str, Any]) -> None:
    """Attach the adapter's LoRA to a model whose LLM has none (inference with a LoRA adapter and a
    config without ``model.llm.tuning``); the LoRA starts as the identity (``B = 0``)."""
    peft_config = (meta.get("llm_tuning") or {}).get("peft_config")
    if peft_config and not has_lora(model.llm):
        model.llm = attach_lora(model.llm, peft_config)


def load_adapter(model: nn.Module, path: Union[str, Path]) -> dict[str, Any]:
    """Validate and load an adapter into ``model`` in place; return its metadata.

    Raises :class:`AdapterMismatchError` listing base, key and shape differences.
    """
    tensors, meta = read_adapter(path)
    prepare_llm_for(model, meta)
    diffs = adapter_differences(model, tensors, meta)
    if diffs:
        raise AdapterMismatchError(path, diffs)
    apply_adapter_tensors(model, tensors)
    return meta


class AdapterBank:
    """Several adapters held in memory and swapped on one loaded model (the LLM is never reloaded).

    Tensors not in the active adapter are restored to the values they had when the first
    adapter touching them was added, so activation order does not leak state between tasks.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.adapters: dict[str, tuple[dict[str, Tensor], dict[str, Any]]] = {}
        self.base: dict[str, Tensor] = {}
        self.active: Optional[str] = None

    def add(self, name: str, path: Union[str, Path]) -> dict[str, Any]:
        """Read and validate an adapter file under ``name``; return its metadata."""
        tensors, meta = read_adapter(path)
        prepare_llm_for(self.model, meta)
        diffs = adapter_differences(self.model, tensors, meta)
        if diffs:
            raise AdapterMismatchError(path, diffs)
        own = dict(self.model.named_parameters())
        own.update(dict(self.model.named_buffers()))
        for key in tensors:
            self.base.setdefault(key, own[from_saved_name(key)].detach().to("cpu").clone())
        self.adapters[name] = (tensors, meta)
        return meta

    def activate(self, name: Optional[str]) -> None:
        """Load adapter ``name`` (``None``: restore the base values)."""
        if name is not None and name not in self.adapters:
            raise KeyError(f"AdapterBank: no adapter {name!r}; added: {sorted(self.adapters)}")
        tensors = {} if name is None else self.adapters[name][0]
        apply_adapter_tensors(self.model, {k: v for k, v in self.base.items() if k not in tensors})
        apply_adapter_tensors(self.model, tensors)
        self.active = name
