"""The one plugin manager of glm, with fail-soft entry-point discovery.

Built-in plugins (``DEFAULT_PLUGINS``) are registered exactly like third-party ones, which
come from the entry-point group ``glm``::

    [project.entry-points.glm]
    my_gnn = "my_package.glm_plugin"

A plugin that raises while importing or while registering gives one warning naming it and
is skipped; everything else keeps working. Environment switches:

* ``GLM_STRICT_PLUGINS=1``: raise :class:`PluginLoadError` instead (for plugin development).
* ``GLM_DISABLED_PLUGINS=a,b``: never load or call these plugins (entry-point or built-in names).
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from glm.plugins import hookspecs
from glm.plugins.registry import Registry

ENTRY_POINT_GROUP = "glm"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "glm.backends.pyg",
    "glm.backends.gammagl",
    "glm.core.data.builtin",
    "glm.core.train.recipes",
)

REGISTRATION_HOOKS = ("register_backends", "register_gnn_layers", "register_datasets", "register_recipes")


class PluginLoadError(RuntimeError):
    """A plugin failed to import or register while ``GLM_STRICT_PLUGINS=1``."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to import or register and was skipped."""


@dataclass
class LoadFailure:
    plugin: str
    stage: str  # "import" or the hook name
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "stage": self.stage, "error": self.error}


pm = pluggy.PluginManager("glm")
pm.add_hookspecs(hookspecs)

_state: dict[str, Any] = {"loaded": False, "registry": None, "failures": [], "distinfo": {}}


def _env_set(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("GLM_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


def _fail(plugin: str, stage: str, exc: BaseException) -> None:
    failure = LoadFailure(plugin, stage, f"{type(exc).__name__}: {exc}")
    _state["failures"].append(failure)
    if _strict():
        raise PluginLoadError(f"plugin {plugin!r} failed at {stage}: {failure.error}") from exc
    warnings.warn(
        f"glm: skipping plugin {plugin!r} ({stage} failed: {failure.error});"
        " set GLM_DISABLED_PLUGINS to silence or GLM_STRICT_PLUGINS=1 to raise",
        PluginLoadWarning,
        stacklevel=3,
    )


def load_plugins() -> None:
    """Register built-in plugins and third-party entry points once (idempotent)."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    disabled = _env_set("GLM_DISABLED_PLUGINS")
    for name in disabled:
        pm.set_blocked(name)
    for module_name in DEFAULT_PLUGINS:
        short = module_name.rsplit(".", 1)[-1]
        if short in disabled or module_name in disabled or pm.has_plugin(module_name):
            continue
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:  # a broken built-in must not break the CLI either
            _fail(module_name, "import", exc)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            _fail(ep.name, "import", exc)
            continue
        if ep.dist is not None:
            _state["distinfo"][ep.name] = (ep.dist.name, ep.dist.version)


def _call_isolated(registry: Registry, hook_name: str) -> None:
    """Call each implementation of one registration hook on its own, so that one plugin's
    exception cannot stop the others; whatever a failing plugin registered stays registered
    only if its call completed."""
    adders = {
        "register_backends": lambda plugin: lambda spec: registry.add_backend(spec, plugin=plugin),
        "register_gnn_layers": lambda plugin: lambda *a, **k: registry.add_gnn_layer(*a, plugin=plugin, **k),
        "register_datasets": lambda plugin: lambda *a, **k: registry.add_dataset(*a, plugin=plugin, **k),
        "register_recipes": lambda plugin: lambda *a, **k: registry.add_recipe(*a, plugin=plugin, **k),
    }
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):  # registration order
        try:
            impl.function(**{a: adders[hook_name](impl.plugin_name) for a in impl.argnames})
        except Exception as exc:
            _fail(impl.plugin_name, hook_name, exc)


def get_registry() -> Registry:
    """The process-wide registry, built on first use from every loaded plugin."""
    if _state["registry"] is None:
        load_plugins()
        registry = Registry()
        for hook_name in REGISTRATION_HOOKS:
            _call_isolated(registry, hook_name)
        _state["registry"] = registry
    return _state["registry"]


def load_failures() -> list[LoadFailure]:
    get_registry()
    return list(_state["failures"])


def reset() -> None:
    """Forget loaded plugins and the registry (tests, or after installing a plugin)."""
    for name, _ in list(pm.list_name_plugin()):
        pm.unregister(name=name)
    for name in list(getattr(pm, "_name2plugin", {})):  # blocked names
        pm.unblock(name) if hasattr(pm, "unblock") else None
    _state.update(loaded=False, registry=None, failures=[], distinfo={})


def plugin_report() -> list[dict[str, Any]]:
    """One dict per plugin (name, version, hooks, what it registered) plus load failures."""
    registry = get_registry()
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        dist = _state["distinfo"].get(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "version": dist[1] if dist else _glm_version(),
                "builtin": name in DEFAULT_PLUGINS,
                "hooks": hooks,
                "registered": registry.contributions.get(name, {}),
            }
        )
    for failure in _state["failures"]:
        rows.append({"name": failure.plugin, "error": failure.error, "stage": failure.stage})
    return rows


def _glm_version() -> str:
    try:
        return metadata.version("graph-glm")
    except metadata.PackageNotFoundError:
        return "unknown"
