"""The plugin seam: hook markers, the plugin manager and the typed registries.

This package (plus the types in :mod:`glm.core`) is the public API for plugin authors.
"""

from glm.plugins.hookspecs import hookimpl, hookspec
from glm.plugins.manager import (
    LoadFailure,
    PluginLoadError,
    PluginLoadWarning,
    get_registry,
    load_failures,
    plugin_report,
    pm,
    reset,
)
from glm.plugins.registry import (
    BackendSpec,
    BackendUnavailableError,
    DatasetSpec,
    DuplicateRegistrationError,
    GnnLayerSpec,
    RecipeSpec,
    Registry,
    RegistryError,
    UnknownBackendError,
    UnknownDatasetError,
    UnknownLayerError,
    UnknownMethodError,
    UnknownRecipeError,
)

__all__ = [
    "hookimpl",
    "hookspec",
    "pm",
    "get_registry",
    "load_failures",
    "plugin_report",
    "reset",
    "LoadFailure",
    "PluginLoadError",
    "PluginLoadWarning",
    "BackendSpec",
    "GnnLayerSpec",
    "DatasetSpec",
    "RecipeSpec",
    "Registry",
    "RegistryError",
    "DuplicateRegistrationError",
    "UnknownBackendError",
    "BackendUnavailableError",
    "UnknownLayerError",
    "UnknownDatasetError",
    "UnknownMethodError",
    "UnknownRecipeError",
]
