"""Fixtures for plugin-seam tests: a clean plugin manager per test, installed throw-away plugins."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from plugin_helpers import (
    BROKEN_IMPORT,
    BROKEN_REGISTER,
    GLM_ENV,
    docs_block,
    module_from_source,
)

from glm.plugins import manager


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch):
    """A reset plugin manager with built-ins only (``GLM_LOAD_PLUGINS=""``); reset again after."""
    for name in GLM_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLM_LOAD_PLUGINS", "")
    manager.reset()
    yield manager
    manager.reset()


@pytest.fixture
def gin_module() -> types.ModuleType:
    """The example plugin module of docs/plugins.md, imported from the docs text."""
    return module_from_source("glm_wgin_docs_example", docs_block("# glm_wgin.py"))


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory) -> dict[str, Path]:
    """Throw-away distributions installed with pip into temporary folders (real entry points)."""
    from glm.testing import build_plugin_distribution

    root = tmp_path_factory.mktemp("plugin-dists")
    return {
        "wgin": build_plugin_distribution(root, "glm-wgin", {"glm_wgin": docs_block("# glm_wgin.py")}, {"wgin": "glm_wgin"}),
        "broken_import": build_plugin_distribution(root, "glm-broken-import", {"glm_broken_import": BROKEN_IMPORT},
                                                   {"broken_import": "glm_broken_import"}),
        "broken_register": build_plugin_distribution(root, "glm-broken-register",
                                                     {"glm_broken_register": BROKEN_REGISTER},
                                                     {"broken_register": "glm_broken_register"}),
    }
