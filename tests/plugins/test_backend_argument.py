"""``--backend``: names from the registry, one-line errors that name the extra to install."""

from __future__ import annotations

import argparse

import pytest

from glm.cli.common import CliError, add_backend_argument, resolve_backend, resolve_backend_spec
from glm.plugins import BackendSpec, hookimpl, pm


class Ghosts:
    @hookimpl
    def register_backends(register):
        register(BackendSpec("ghost", load=object, requires=("glm_nonexistent_framework_xyz",), extra="ghost"))
        register(BackendSpec("thirdparty", load=object, requires=("glm_nonexistent_xyz",),
                             install="pip install glm-thirdparty-backend"))

        def explode():
            raise ImportError("libfoo.so: cannot open shared object file\nsecond line")

        register(BackendSpec("explodes", load=explode, requires=("json",)))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_missing_extra_is_named(plugins):
    pm.register(Ghosts, name="ghosts")
    with pytest.raises(CliError) as info:
        resolve_backend("ghost")
    text = one_line(info.value)
    assert "backend 'ghost' needs glm_nonexistent_framework_xyz" in text
    assert "'ghost' extra" in text and 'pip install "graph-glm[ghost]"' in text
    with pytest.raises(CliError, match="pip install glm-thirdparty-backend"):
        resolve_backend_spec("thirdparty")


def test_unknown_backend_lists_registered_ones(plugins):
    with pytest.raises(CliError) as info:
        resolve_backend("nosuch")
    text = one_line(info.value)
    assert "unknown backend 'nosuch'" in text and "gammagl" in text and "pyg" in text


def test_backend_that_fails_to_load_is_one_line(plugins):
    pm.register(Ghosts, name="ghosts")
    with pytest.raises(CliError) as info:
        resolve_backend("explodes")
    assert "failed to load (ImportError: libfoo.so: cannot open shared object file)" in one_line(info.value)


def test_default_backend_from_env_then_first_available(plugins, monkeypatch):
    registry = plugins.get_registry()
    if not registry.available_backends():
        pytest.skip("no backend installed")
    assert resolve_backend_spec(None).name == registry.available_backends()[0]
    monkeypatch.setenv("GLM_BACKEND", "nosuch")
    with pytest.raises(CliError, match="unknown backend 'nosuch'"):
        resolve_backend_spec(None)


def test_no_backend_installed(plugins, monkeypatch):
    monkeypatch.setenv("GLM_DISABLED_PLUGINS", "pyg,gammagl")
    plugins.reset()
    pm.register(Ghosts, name="ghosts")
    registry = plugins.get_registry()
    assert registry.available_backends() == ["explodes"]
    pm.unregister(name="ghosts")
    with pytest.raises(CliError, match="no graph backend is installed"):
        resolve_backend_spec(None)


def test_help_lists_backends_and_availability(plugins):
    pm.register(Ghosts, name="ghosts")
    parser = argparse.ArgumentParser()
    add_backend_argument(parser)
    help_text = " ".join(parser.format_help().split())
    assert "ghost (not installed)" in help_text and "pyg" in help_text
    assert parser.parse_args(["--backend", "ghost"]).backend == "ghost"  # validated lazily, by the command
