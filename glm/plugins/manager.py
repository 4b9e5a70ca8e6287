"""The one plugin manager of glm, with fail-soft entry-point discovery.

Built-in plugins (``DEFAULT_PLUGINS``) are registered exactly like third-party ones, which
come from the entry-point group ``glm``::

    [project.entry-points.glm]
    my_gnn = "my_package.glm_plugin"

A plugin that raises while importing or while registering gives one warning naming it and
is skipped (nothing it registered is kept); everything else keeps working. A hook
implementation whose name matches no hook (a misspelling) is reported the same way.
Environment switches:

* ``GLM_STRICT_PLUGINS=1``: raise :class:`PluginLoadError` instead (for plugin development).
* ``GLM_DISABLED_PLUGINS=a,b``: never load or call these plugins (entry-point names, or
  built-in module names, full or short: ``glm.backends.gammagl`` or ``gammagl``).
* ``GLM_LOAD_PLUGINS=a,b``: load only these entry points (empty: none); built-ins always load.
* ``GLM_TRACE_PLUGINS=1``: write every hook call (per plugin: glm calls each plugin's hooks on
  its own, so one failure stays that plugin's) and every registration to stderr.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from glm.plugins import hookspecs
from glm.plugins.registry import Registry, RegistryError
from glm.version import DISTRIBUTION, glm_version

ENTRY_POINT_GROUP = "glm"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "glm.backends.pyg",
    "glm.backends.gammagl",
    "glm.core.data.builtin",
    "glm.core.train.recipes",
    "glm.methods.graphlama",
    "glm.methods.graphgpt",
    "glm.methods.llaga",
)

REGISTRATION_HOOKS: tuple[str, ...] = (
    "register_backends",
    "register_gnn_layers",
    "register_datasets",
    "register_recipes",
    "register_methods",
)

ENV_STRICT = "GLM_STRICT_PLUGINS"
ENV_DISABLED = "GLM_DISABLED_PLUGINS"
ENV_LOAD = "GLM_LOAD_PLUGINS"
ENV_TRACE = "GLM_TRACE_PLUGINS"


class PluginLoadError(RuntimeError):
    """A plugin failed to import or register while ``GLM_STRICT_PLUGINS=1``."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to import or register and was skipped."""


@dataclass(frozen=True)
class LoadFailure:
    """One problem with one plugin.

    ``stage`` is ``"import"``, ``"register"`` (pluggy rejected the module), a hook name
    (the hook raised, or rejected one registration) or ``"check_pending"`` (unknown hook).
    """

    plugin: str
    stage: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "stage": self.stage, "error": self.error}


pm = pluggy.PluginManager("glm")
pm.add_hookspecs(hookspecs)


@dataclass
class _State:
    loaded: bool = False
    registry: Registry | None = None
    signature: tuple[int, ...] = ()  # ids of the plugins the registry was built from
    load_failures: list[LoadFailure] = field(default_factory=list)  # import / register
    build_failures: list[LoadFailure] = field(default_factory=list)  # hooks, check_pending
    skipped: set[str] = field(default_factory=set)  # plugins dropped for a failure
    distinfo: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin -> (dist, version)
    disabled: list[str] = field(default_factory=list)


_state = _State()


# -- environment --------------------------------------------------------------------------
def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def is_strict() -> bool:
    """``GLM_STRICT_PLUGINS`` is set to a true value."""
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


def _tracing() -> bool:
    return os.environ.get(ENV_TRACE, "").strip().lower() in {"1", "true", "yes", "on"}


def _trace(line: str) -> None:
    sys.stderr.write(f"glm.plugins: {line}\n")


# -- failures -----------------------------------------------------------------------------
def _label(plugin: str) -> str:
    dist = _state.distinfo.get(plugin)
    return f"{plugin!r} (from {dist[0]} {dist[1]})" if dist else repr(plugin)


def _fail(plugin: str, stage: str, error: BaseException | str, *, during_build: bool = False,
          consequence: str = "plugin skipped") -> None:
    """Record one failure; warn once, or raise :class:`PluginLoadError` in strict mode."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    failure = LoadFailure(plugin, stage, text)
    (_state.build_failures if during_build else _state.load_failures).append(failure)
    first_line = (text.strip().splitlines() or [""])[0]
    message = f"plugin {_label(plugin)} failed at {stage}: {first_line}"
    if is_strict():
        raise PluginLoadError(message) from (error if isinstance(error, BaseException) else None)
    warnings.warn(
        f"{message} ({consequence}; set {ENV_DISABLED}={plugin} to silence, {ENV_STRICT}=1 to raise)",
        PluginLoadWarning,
        stacklevel=2,
    )


# -- loading ------------------------------------------------------------------------------
def load_plugins() -> None:
    """Register built-in plugins and third-party entry points once (idempotent)."""
    if _state.loaded:
        return
    _state.loaded = True
    disabled = _env_list(ENV_DISABLED)
    _state.disabled = disabled
    for name in disabled:
        if not pm.has_plugin(name):
            pm.set_blocked(name)
    for module_name in DEFAULT_PLUGINS:
        if module_name.rsplit(".", 1)[-1] in disabled or module_name in disabled:
            continue
        _load_builtin(module_name)
    _load_entry_points(set(disabled))


def _load_builtin(module_name: str) -> None:
    if pm.has_plugin(module_name) or pm.is_blocked(module_name):
        return
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return  # a built-in this build does not ship (yet): nothing to load
        _fail(module_name, "import", exc)
        return
    except Exception as exc:  # a broken built-in must not break the CLI either
        _fail(module_name, "import", exc)
        return
    _register(module, module_name)


def _load_entry_points(disabled: set[str]) -> None:
    only = set(_env_list(ENV_LOAD)) if ENV_LOAD in os.environ else None
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name) or ep.name in _state.skipped:
            continue
        if ep.dist is not None:
            _state.distinfo[ep.name] = (ep.dist.name, ep.dist.version)
        try:
            plugin = ep.load()
        except Exception as exc:
            _state.skipped.add(ep.name)
            _fail(ep.name, "import", exc)
            continue
        _register(plugin, ep.name)


def _register(plugin: Any, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # pluggy.PluginValidationError, ValueError (registered twice)
        _state.skipped.add(name)
        _fail(name, "register", exc)


def _check_pending() -> None:
    """Report hook implementations whose name matches no hook (pluggy's ``check_pending``,
    but fail-soft and naming every offender, with a did-you-mean)."""
    known = [n for n in vars(pm.hook) if not n.startswith("_") and getattr(pm.hook, n).has_spec()]
    for hook_name, caller in list(vars(pm.hook).items()):
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(hook_name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known hooks: {', '.join(sorted(known))}"
            _fail(impl.plugin_name, "check_pending", f"unknown hook {hook_name!r}{hint}",
                  during_build=True, consequence="that function is never called")


# -- the registry -------------------------------------------------------------------------
def _plugins_in_order() -> list[tuple[str, Any]]:
    return [(n, p) for n, p in pm.list_name_plugin() if p is not None]


def _signature() -> tuple[int, ...]:
    return tuple(id(p) for _, p in _plugins_in_order())


def _impl_for(hook_name: str, plugin: Any) -> pluggy.HookImpl | None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper):
            return impl
    return None


def _collect(name: str, plugin: Any) -> list[tuple[str, tuple, dict]] | None:
    """Call every registration hook of one plugin with recording callbacks.

    Returns the recorded ``(hook, args, kwargs)`` calls, or ``None`` if a hook raised (the
    failure is reported and the plugin is dropped whole)."""
    calls: list[tuple[str, tuple, dict]] = []
    for hook_name in REGISTRATION_HOOKS:
        impl = _impl_for(hook_name, plugin)
        if impl is None:
            continue

        def register(*args: Any, _hook: str = hook_name, **kwargs: Any) -> None:
            calls.append((_hook, args, kwargs))

        if _tracing():
            _trace(f"{hook_name}() -> {name}")
        try:
            impl.function(*[register for _ in impl.argnames])
        except Exception as exc:
            _fail(name, hook_name, exc, during_build=True)
            return None
    return calls


def _apply(registry: Registry, name: str, calls: list[tuple[str, tuple, dict]]) -> None:
    """Add one plugin's recorded registrations; a rejected one is reported on its own."""
    adders = {
        "register_backends": registry.add_backend,
        "register_gnn_layers": registry.add_gnn_layer,
        "register_datasets": registry.add_dataset,
        "register_recipes": registry.add_recipe,
        "register_methods": registry.add_method,
    }
    for hook_name, args, kwargs in calls:
        try:
            adders[hook_name](*args, plugin=name, **kwargs)
        except (TypeError, ValueError, RegistryError) as exc:
            _fail(name, hook_name, exc, during_build=True, consequence="that registration is ignored")
            continue
        if _tracing():
            first = args[0] if args else kwargs.get("name", kwargs.get("spec"))
            _trace(f"{hook_name}: {name} registered {getattr(first, 'name', first)!r}")


def _build_registry() -> Registry:
    registry = Registry()
    _state.build_failures = []
    _check_pending()
    collected: list[tuple[str, list]] = []
    for name, plugin in _plugins_in_order():  # registration order: built-ins first
        calls = _collect(name, plugin)
        if calls is None:
            pm.unregister(name=name)
            _state.skipped.add(name)
        else:
            collected.append((name, calls))
    for name, calls in collected:
        _apply(registry, name, calls)
    return registry


def get_registry() -> Registry:
    """The process-wide registry, built on first use from every loaded plugin and rebuilt
    when plugins are registered or unregistered afterwards (``pm.register(...)`` in tests)."""
    load_plugins()
    if _state.registry is None or _state.signature != _signature():
        _state.registry = None
        registry = _build_registry()
        _state.registry, _state.signature = registry, _signature()
    return _state.registry


def load_failures() -> list[LoadFailure]:
    """Every failure seen while loading plugins and building the registry."""
    get_registry()
    return [*_state.load_failures, *_state.build_failures]


def call_register_commands(subparsers: Any) -> None:
    """Call ``register_commands`` on each plugin on its own, fail-soft: a plugin whose hook
    raises is reported and the other plugins' commands (and the CLI) still work."""
    get_registry()
    for name, plugin in _plugins_in_order():
        impl = _impl_for("register_commands", plugin)
        if impl is None:
            continue
        if _tracing():
            _trace(f"register_commands() -> {name}")
        try:
            impl.function(*[subparsers for _ in impl.argnames])
        except Exception as exc:
            _fail(name, "register_commands", exc, during_build=True)


def reset() -> None:
    """Forget loaded plugins, blocked names and the registry (tests, or after installing a
    plugin); the next :func:`get_registry` reads the environment again."""
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            pm.unblock(name)
        else:
            pm.unregister(name=name)
    vars(_state).update(vars(_State()))


# -- listing ------------------------------------------------------------------------------
def plugin_report() -> list[dict[str, Any]]:
    """One dict per plugin: name, distribution, version, builtin, status (``loaded``,
    ``failed`` or ``disabled``), hooks, what it registered, and its errors."""
    registry = get_registry()
    errors: dict[str, list[dict[str, str]]] = {}
    for failure in load_failures():
        errors.setdefault(failure.plugin, []).append({"stage": failure.stage, "error": failure.error})
    rows: list[dict[str, Any]] = []
    for name, plugin in _plugins_in_order():
        rows.append(_row(name, "loaded", errors.pop(name, []),
                         hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                         registered=registry.contributions.get(name, {})))
    for name, errs in errors.items():
        rows.append(_row(name, "failed", errs, hooks=[], registered={}))
    for name in _state.disabled:
        rows.append(_row(name, "disabled", [], hooks=[], registered={}))
    return rows


def _row(name: str, status: str, errors: list, *, hooks: list, registered: dict) -> dict[str, Any]:
    builtin = name in DEFAULT_PLUGINS
    dist = _state.distinfo.get(name) or ((DISTRIBUTION, glm_version()) if builtin else None)
    return {
        "name": name,
        "distribution": dist[0] if dist else None,
        "version": dist[1] if dist else None,
        "builtin": builtin,
        "status": status,
        "hooks": hooks,
        "registered": registered,
        "errors": errors,
    }
