"""Hook specifications: the whole plugin API of glm.

Every hook follows the ``register_<thing>(register)`` idiom (simonw/llm): glm passes a
callback, the plugin calls it once per thing it contributes and returns nothing. glm owns
validation, de-duplication and listing. A plugin may accept a subset of the arguments.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import pluggy

hookspec = pluggy.HookspecMarker("glm")
hookimpl = pluggy.HookimplMarker("glm")


@runtime_checkable
class MethodSpecLike(Protocol):
    """What the registry checks of a ``register_methods`` argument (the seam never imports core):
    :class:`glm.core.method.MethodSpec` has these and validates the rest when it is built."""

    name: str
    config_cls: type
    build: Callable[..., Any]
    stages: Mapping[str, Any]
    bench_variants: tuple[Any, ...]


@hookspec
def register_backends(register: Callable[..., None]) -> None:
    """Register graph backends: ``register(BackendSpec(...))``."""


@hookspec
def register_gnn_layers(register: Callable[..., None]) -> None:
    """Register GNN layers: ``register(name, factory, backends=("pyg",), description="")``.

    ``factory(in_dim, out_dim, **options) -> torch.nn.Module`` whose forward is
    ``(x [N, in_dim], edge_index [2, E] int64, edge_weight [E] | None) -> [N, out_dim]`` and
    which has ``neutral_state_dict()`` / ``load_neutral_state_dict(state)`` (see
    :mod:`glm.core.encoder`). ``backends=None`` means the layer is pure torch and runs on every
    backend. :func:`glm.testing.assert_gnn_layer` checks a layer against this contract.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register datasets: ``register(name, loader, description="", prompt=None)``; ``loader(**options)``
    returns a :class:`glm.core.data.tag.TextAttributedGraph`; ``prompt`` sets the prompts' domain words
    (``{"graph": "web graph", "node": "page", "nodes": "pages", "split_title": False}``)."""


@hookspec
def register_recipes(register: Callable[..., None]) -> None:
    """Register training recipes: ``register(name, path_or_dict, description="")`` (DeepSpeed JSON)."""


@hookspec
def register_methods(register: Callable[..., None]) -> None:
    """Register graph-language-model methods: ``register(MethodSpec(...))``.

    A :class:`glm.core.method.MethodSpec` names the method's config dataclass, its ``build``
    (returning a :class:`glm.core.method.NodeTokenModule`), its stage table and adapter buffers.
    :class:`glm.testing.MethodConformance` checks a method against this contract.
    """


@hookspec
def register_commands(subparsers: Any) -> None:
    """Add CLI sub-commands to the ``argparse`` sub-parsers of ``glm``.

    Each added parser must ``set_defaults(func=callable)``; ``func(args) -> int`` is the exit code.
    """
