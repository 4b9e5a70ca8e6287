"""Resolve "the layer under test" from a registry name or a factory, on one backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch
from torch import nn

LayerRef = Union[str, Callable[..., nn.Module]]


@dataclass
class LayerCase:
    """A GNN layer factory bound to its sizes, options and backend.

    Attributes:
        name: registry name, or the factory's ``__name__``.
        factory: ``factory(in_dim, out_dim, **options) -> nn.Module``.
        backend_name: the backend it runs on (``None``: pure torch, no backend needed).
        backend: the loaded backend object (``prepare_device`` is called before each device).
        registered: ``True`` when the layer came from the registry by name.
    """

    name: str
    factory: Callable[..., nn.Module]
    in_dim: int
    out_dim: int
    options: dict[str, Any] = field(default_factory=dict)
    backend_name: str | None = None
    backend: Any = None
    registered: bool = False

    @property
    def label(self) -> str:
        return f"gnn layer {self.name!r} ({self.backend_name or 'pure torch'})"

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh layer in eval mode, initialised from ``seed`` without touching the global RNG."""
        self.prepare("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory(self.in_dim, self.out_dim, **self.options)
        if not isinstance(module, nn.Module):
            raise TypeError(f"{self.label}: factory returned {type(module).__name__}, expected torch.nn.Module")
        return module.eval()

    def prepare(self, device: torch.device | str) -> None:
        """Let the backend set up whatever global state ``device`` needs (GammaGL)."""
        if self.backend is not None and hasattr(self.backend, "prepare_device"):
            self.backend.prepare_device(torch.device(device))


def resolve_layer(
    layer: LayerRef,
    *,
    in_dim: int,
    out_dim: int,
    backend: str | None = None,
    options: dict[str, Any] | None = None,
) -> LayerCase:
    """Turn a registry name or a factory into a :class:`LayerCase`.

    A name is looked up in the plugin registry for ``backend``; a backend-specific layer
    needs ``backend``. Raises :class:`glm.plugins.RegistryError` subclasses when the layer
    or backend is unknown, or the backend's framework is not installed
    (:class:`glm.plugins.BackendUnavailableError`).
    """
    from glm.plugins.manager import get_registry

    registry = get_registry()
    registered = isinstance(layer, str)
    if registered:
        name = layer
        specs = registry.gnn_layers.get(name, [])
        if backend is None and specs and all(s.backends is not None for s in specs):
            have = sorted({b for s in specs for b in s.backends or ()})
            raise ValueError(f"gnn layer {name!r} is backend-specific (backends: {have}); pass backend=")
        factory = registry.gnn_layer(name, backend or "").factory
    elif callable(layer):
        name = getattr(layer, "__name__", type(layer).__name__)
        factory = layer
    else:
        raise TypeError(f"layer must be a registered name or a factory, found {type(layer).__name__}")
    loaded = registry.backend(backend).load() if backend is not None else None
    return LayerCase(name, factory, in_dim, out_dim, dict(options or {}), backend, loaded, registered)
