"""Typed registries filled through the hooks in :mod:`glm.plugins.hookspecs`.

A registry is built once per process by :func:`glm.plugins.manager.get_registry`. Look-ups
fail with :class:`RegistryError` subclasses that name what was asked, what exists and, for
backends, which pip extra to install.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from glm.errors import GlmError
from glm.plugins.hookspecs import MethodSpecLike


class RegistryError(GlmError, LookupError):
    """Base class of registry look-up errors."""


class UnknownBackendError(RegistryError):
    """No backend of that name is registered."""


class BackendUnavailableError(RegistryError):
    """The backend is registered but a module it requires is not installed."""


class UnknownLayerError(RegistryError):
    """No GNN layer of that name, or none for the asked backend."""


class UnknownDatasetError(RegistryError):
    """No dataset of that name is registered."""


class UnknownRecipeError(RegistryError):
    """No training recipe of that name is registered."""


class UnknownMethodError(RegistryError):
    """No method (GraphLAMA, GraphGPT, LLaGA or a plugin's) of that name is registered."""


class DuplicateRegistrationError(GlmError, ValueError):
    """A plugin registered a name that another plugin (or itself) already registered."""


@dataclass(frozen=True)
class BackendSpec:
    """A graph backend.

    Args:
        name: value of ``--backend`` (lower case, no spaces).
        load: zero-argument callable returning the backend object (see
            :class:`glm.core.backend.Backend`); it may import heavy frameworks.
        requires: top-level modules that must be importable, checked without importing them.
        extra: the pip extra of glm (``graph-glm``) that installs them, quoted in error messages.
        description: one line for listings.
        install: the install command to suggest instead of the derived one (third-party
            backends whose packages are not a glm extra).
    """

    name: str
    load: Callable[[], Any]
    requires: tuple[str, ...] = ()
    extra: str | None = None
    description: str = ""
    install: str | None = None

    def missing(self) -> list[str]:
        """Modules from ``requires`` that cannot be found (cheap: no import)."""
        return [m for m in self.requires if not _module_exists(m)]

    @property
    def available(self) -> bool:
        return not self.missing()

    def install_hint(self) -> str:
        """The command that installs what this backend needs."""
        if self.install:
            return self.install
        if self.extra:
            return f'pip install "graph-glm[{self.extra}]" (from a checkout: pip install -e ".[{self.extra}]")'
        return "pip install " + " ".join(self.requires)


_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _check_name(what: str, name: object) -> None:
    """Backend and layer names are CLI/config values: lower case, no spaces (PEFT's rule)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} name must be lower case letters, digits, '_', '-' or '.', found {name!r}")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package, or a broken __spec__
        return False


@dataclass(frozen=True)
class GnnLayerSpec:
    """A GNN layer factory; ``backends=None`` means pure torch (any backend)."""

    name: str
    factory: Callable[..., Any]
    backends: tuple[str, ...] | None = None
    description: str = ""
    plugin: str | None = None

    def supports(self, backend: str) -> bool:
        return self.backends is None or backend in self.backends


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset loader; ``prompt`` gives its prompts' domain words (``graph``, ``node``, ``nodes``,
    ``split_title``; see :class:`glm.core.data.tasks.PromptTemplate`), ``None`` = a citation graph."""

    name: str
    loader: Callable[..., Any]
    description: str = ""
    plugin: str | None = None
    prompt: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecipeSpec:
    """A named DeepSpeed recipe: a JSON file path or an in-memory dict."""

    name: str
    source: Path | dict
    description: str = ""
    plugin: str | None = None


@dataclass
class Registry:
    """Everything the plugins registered, by kind. Keys are names."""

    backends: dict[str, BackendSpec] = field(default_factory=dict)
    gnn_layers: dict[str, list[GnnLayerSpec]] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    recipes: dict[str, RecipeSpec] = field(default_factory=dict)
    methods: dict[str, Any] = field(default_factory=dict)  # name -> glm.core.method.MethodSpec
    # plugin name -> {"backends": [...], "gnn_layers": [...], ...}, for `glm plugins`
    contributions: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    # -- registration (called from hook implementations) ---------------------------------
    def _note(self, plugin: str | None, kind: str, name: str) -> None:
        if plugin is not None:
            self.contributions.setdefault(plugin, {}).setdefault(kind, []).append(name)

    def owner(self, kind: str, name: str) -> str | None:
        """The plugin that registered ``name`` of ``kind`` (``backends``, ``gnn_layers``...)."""
        for plugin, kinds in self.contributions.items():
            if name in kinds.get(kind, ()):
                return plugin
        return None

    def _duplicate(self, kind: str, what: str, name: str) -> DuplicateRegistrationError:
        return DuplicateRegistrationError(
            f"{what} {name!r} is already registered by {self.owner(kind, name) or 'another plugin'}"
        )

    def _add_spec(self, kind: str, what: str, spec: Any, spec_type: type, plugin: str | None) -> None:
        """Add a spec object (backend, method) to the table ``kind`` after type, name and duplicate checks."""
        if not isinstance(spec, spec_type):
            raise TypeError(f"register_{kind}: expected {spec_type.__module__}.{spec_type.__name__}, "
                            f"got {type(spec).__name__}")
        _check_name(what, spec.name)
        table = getattr(self, kind)
        if spec.name in table:
            raise self._duplicate(kind, what, spec.name)
        table[spec.name] = spec
        self._note(plugin, kind, spec.name)

    def add_backend(self, spec: BackendSpec, plugin: str | None = None) -> None:
        self._add_spec("backends", "backend", spec, BackendSpec, plugin)

    def add_gnn_layer(
        self,
        name: str,
        factory: Callable[..., Any],
        backends: Iterable[str] | None = None,
        description: str = "",
        plugin: str | None = None,
    ) -> None:
        _check_name("gnn layer", name)
        if not callable(factory):
            raise TypeError(f"register_gnn_layers: factory for {name!r} is not callable")
        if isinstance(backends, str):
            backends = (backends,)
        spec = GnnLayerSpec(name, factory, None if backends is None else tuple(backends), description, plugin)
        for other in self.gnn_layers.get(name, []):
            clash = (
                other.backends is None
                or spec.backends is None
                or set(other.backends) & set(spec.backends)
            )
            if clash:
                raise DuplicateRegistrationError(
                    f"gnn layer {name!r} for backends {spec.backends or 'any'} is already registered"
                    f" by {other.plugin or 'another plugin'}"
                )
        self.gnn_layers.setdefault(name, []).append(spec)
        self._note(plugin, "gnn_layers", name)

    def add_dataset(self, name: str, loader: Callable[..., Any], description: str = "",
                    plugin: str | None = None, prompt: dict[str, Any] | None = None) -> None:
        if name in self.datasets:
            raise self._duplicate("datasets", "dataset", name)
        self.datasets[name] = DatasetSpec(name, loader, description, plugin, dict(prompt) if prompt else None)
        self._note(plugin, "datasets", name)

    def add_recipe(self, name: str, source: Path | str | dict, description: str = "",
                   plugin: str | None = None) -> None:
        if name in self.recipes:
            raise self._duplicate("recipes", "recipe", name)
        src = source if isinstance(source, dict) else Path(source)
        self.recipes[name] = RecipeSpec(name, src, description, plugin)
        self._note(plugin, "recipes", name)

    def add_method(self, spec: Any, plugin: str | None = None) -> None:
        if not isinstance(spec, MethodSpecLike):  # glm.core.method.MethodSpec checks the rest when built
            raise TypeError(f"register_methods: expected glm.core.method.MethodSpec, got {type(spec).__name__}")
        self._add_spec("methods", "method", spec, object, plugin)

    # -- look-ups -------------------------------------------------------------------------
    def backend(self, name: str) -> BackendSpec:
        """The spec of backend ``name``; raises if unknown or if its framework is missing."""
        spec = self.backends.get(name)
        if spec is None:
            raise UnknownBackendError(
                f"unknown backend {name!r}; registered: {', '.join(sorted(self.backends)) or 'none'}"
                " (a third-party backend may need its plugin installed)"
            )
        missing = spec.missing()
        if missing:
            extra = f"the {spec.extra!r} extra" if spec.extra else "its packages"
            raise BackendUnavailableError(
                f"backend {name!r} needs {', '.join(missing)} (not installed);"
                f" install {extra}: {spec.install_hint()}"
            )
        return spec

    def available_backends(self) -> list[str]:
        return [n for n, s in self.backends.items() if s.available]

    def gnn_layer(self, name: str, backend: str) -> GnnLayerSpec:
        specs = self.gnn_layers.get(name)
        if not specs:
            raise UnknownLayerError(
                f"unknown gnn layer {name!r}; registered: {', '.join(sorted(self.gnn_layers)) or 'none'}"
            )
        for spec in specs:
            if spec.supports(backend):
                return spec
        have = sorted({b for s in specs for b in (s.backends or ())})
        raise UnknownLayerError(f"gnn layer {name!r} has no implementation for backend {backend!r} (has: {have})")

    def layers_for(self, backend: str) -> list[str]:
        return sorted(n for n, specs in self.gnn_layers.items() if any(s.supports(backend) for s in specs))

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise UnknownDatasetError(
                f"unknown dataset {name!r}; registered: {', '.join(sorted(self.datasets)) or 'none'}"
            )
        return self.datasets[name]

    def recipe(self, name: str) -> RecipeSpec:
        if name not in self.recipes:
            raise UnknownRecipeError(
                f"unknown recipe {name!r}; registered: {', '.join(sorted(self.recipes)) or 'none'}"
                " (or pass a path to a DeepSpeed JSON file)"
            )
        return self.recipes[name]

    def method(self, name: str) -> Any:
        """The :class:`glm.core.method.MethodSpec` of ``name``."""
        if name not in self.methods:
            raise UnknownMethodError(
                f"unknown method {name!r}; registered: {', '.join(sorted(self.methods)) or 'none'}"
                " (a third-party method may need its plugin installed)"
            )
        return self.methods[name]
