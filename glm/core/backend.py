"""The backend protocol: what a graph framework plugin must supply.

A backend object is returned by ``BackendSpec.load()`` (see :mod:`glm.plugins.registry`).
Core code only talks to it through this protocol, never to PyG or GammaGL directly.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from glm.core.graph import SubgraphBatch


@runtime_checkable
class Backend(Protocol):
    """A graph framework adapter.

    * ``to_native(batch)`` -> the framework's graph object (PyG ``Data``, GammaGL ``Graph``),
      sharing tensors with ``batch`` where the framework allows it.
    * ``from_native(obj)`` -> :class:`SubgraphBatch` (inverse of ``to_native``).
    * ``unpack(obj)`` -> ``(x, edge_index, edge_weight_or_None)`` as torch tensors, the
      inputs of a GNN layer.
    * ``prepare_device(device)`` contains whatever global state the framework needs to run
      on ``device`` (GammaGL's default-device quirk) and is a no-op otherwise.
    """

    name: str

    def to_native(self, batch: SubgraphBatch) -> Any: ...

    def from_native(self, obj: Any) -> SubgraphBatch: ...

    def unpack(self, obj: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...

    def prepare_device(self, device: torch.device) -> None: ...
