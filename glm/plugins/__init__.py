"""The plugin seam: hook markers, the plugin manager and the typed registries.

This package (plus the types in :mod:`glm.core`) is the public API for plugin authors.
"""

from glm.plugins.hookspecs import hookimpl, hookspec
from glm.plugins.manager import PluginLoadError, get_registry, load_failures, plugin_report, pm, reset
from glm.plugins.registry import (
    BackendSpec,
    BackendUnavailableError,
    GnnLayerSpec,
    Registry,
    RegistryError,
    UnknownBackendError,
    UnknownLayerError,
)

__all__ = [
    "hookimpl",
    "hookspec",
    "pm",
    "get_registry",
    "load_failures",
    "plugin_report",
    "reset",
    "PluginLoadError",
    "BackendSpec",
    "GnnLayerSpec",
    "Registry",
    "RegistryError",
    "UnknownBackendError",
    "BackendUnavailableError",
    "UnknownLayerError",
]
