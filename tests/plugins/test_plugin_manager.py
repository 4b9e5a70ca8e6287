"""The plugin manager: fail-soft loading, strict mode, blocking, reset, typo detection, tracing."""

from __future__ import annotations

import warnings

import pytest

from glm.plugins import BackendSpec, PluginLoadError, hookimpl, pm
from glm.plugins.manager import DEFAULT_PLUGINS, PluginLoadWarning


class Good:
    @hookimpl
    def register_gnn_layers(register):
        register("toy_good", lambda i, o: None, backends=None)


class RaisesInRegister:
    @hookimpl
    def register_backends(register):
        register(BackendSpec("half_done", load=object))  # recorded, must be discarded

    @hookimpl
    def register_gnn_layers(register):
        raise RuntimeError("boom in register_gnn_layers")


class Misspelt:
    @hookimpl
    def register_gnn_layer(register):  # missing "s": never called
        raise AssertionError("must not be called")


def plugin_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]


def test_builtins_registered_like_third_party(plugins):
    registry = plugins.get_registry()
    loaded = [name for name, p in pm.list_name_plugin() if p is not None]
    assert loaded, "no plugin loaded"
    assert set(loaded) <= set(DEFAULT_PLUGINS)
    assert "pyg" in registry.backends and registry.owner("backends", "pyg") == "glm.backends.pyg"
    assert plugins.load_failures() == []


def test_hook_that_raises_gives_one_warning_and_is_dropped_whole(plugins):
    pm.register(Good, name="good")
    pm.register(RaisesInRegister, name="raiser")
    with pytest.warns(PluginLoadWarning) as record:
        registry = plugins.get_registry()
    messages = plugin_warnings(record)
    assert len(messages) == 1, messages
    assert "'raiser'" in messages[0] and "register_gnn_layers" in messages[0] and "boom" in messages[0]
    assert "toy_good" in registry.gnn_layers  # the others still work
    assert "half_done" not in registry.backends  # nothing of the failed plugin is kept
    assert not pm.has_plugin("raiser")
    report = {row["name"]: row for row in plugins.plugin_report()}
    assert report["raiser"]["status"] == "failed"
    assert report["raiser"]["errors"][0]["stage"] == "register_gnn_layers"
    assert report["good"]["status"] == "loaded" and report["good"]["registered"] == {"gnn_layers": ["toy_good"]}


def test_strict_mode_raises_naming_the_plugin(plugins, monkeypatch):
    monkeypatch.setenv("GLM_STRICT_PLUGINS", "1")
    pm.register(RaisesInRegister, name="raiser")
    with pytest.raises(PluginLoadError, match="'raiser'.*register_gnn_layers.*boom"):
        plugins.get_registry()


def test_misspelt_hookimpl_is_reported_with_a_suggestion(plugins):
    pm.register(Misspelt, name="typo")
    with pytest.warns(PluginLoadWarning) as record:
        plugins.get_registry()
    messages = plugin_warnings(record)
    assert len(messages) == 1, messages
    assert "'typo'" in messages[0] and "register_gnn_layer'" in messages[0]
    assert "did you mean 'register_gnn_layers'" in messages[0]


def test_duplicate_registration_warns_naming_both_and_builtin_wins(plugins):
    class Clash:
        @hookimpl
        def register_gnn_layers(register):
            register("gcn", lambda i, o: None, backends=("pyg",))
            register("clash_ok", lambda i, o: None)

    builtin_factory = plugins.get_registry().gnn_layer("gcn", "pyg").factory
    pm.register(Clash, name="clash")
    with pytest.warns(PluginLoadWarning) as record:
        registry = plugins.get_registry()
    messages = plugin_warnings(record)
    assert len(messages) == 1 and "'clash'" in messages[0] and "glm.backends.pyg" in messages[0], messages
    assert registry.gnn_layer("gcn", "pyg").factory is builtin_factory
    assert "clash_ok" in registry.gnn_layers  # its other registrations stay


def test_bad_names_are_rejected(plugins):
    class Upper:
        @hookimpl
        def register_gnn_layers(register):
            register("My Layer", lambda i, o: None)

    pm.register(Upper, name="upper")
    with pytest.warns(PluginLoadWarning, match="'upper'.*lower case"):
        assert "My Layer" not in plugins.get_registry().gnn_layers


def test_disabled_builtin_by_short_name_and_reset_unblocks(plugins, monkeypatch):
    monkeypatch.setenv("GLM_DISABLED_PLUGINS", "gammagl, somebody_else")
    registry = plugins.get_registry()
    assert "gammagl" not in registry.backends and "pyg" in registry.backends
    assert pm.is_blocked("somebody_else")
    report = {row["name"]: row["status"] for row in plugins.plugin_report()}
    assert report["gammagl"] == "disabled"
    monkeypatch.delenv("GLM_DISABLED_PLUGINS")
    plugins.reset()
    assert not pm.is_blocked("somebody_else") and not pm.is_blocked("gammagl")
    assert "gammagl" in plugins.get_registry().backends


def test_reset_forgets_everything(plugins):
    pm.register(Good, name="good")
    assert "toy_good" in plugins.get_registry().gnn_layers
    plugins.reset()
    assert not pm.has_plugin("good")
    assert "toy_good" not in plugins.get_registry().gnn_layers


def test_registry_rebuilds_when_plugins_change(plugins):
    first = plugins.get_registry()
    assert plugins.get_registry() is first  # cached
    pm.register(Good, name="good")
    assert "toy_good" in plugins.get_registry().gnn_layers
    pm.unregister(name="good")
    assert "toy_good" not in plugins.get_registry().gnn_layers


def test_trace_writes_hook_calls_to_stderr(plugins, monkeypatch, capfd):
    monkeypatch.setenv("GLM_TRACE_PLUGINS", "1")
    pm.register(Good, name="good")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        plugins.get_registry()
    err = capfd.readouterr().err
    assert "glm.plugins: register_gnn_layers() -> good" in err
    assert "register_gnn_layers: good registered 'toy_good'" in err


def test_register_commands_is_fail_soft(plugins):
    import argparse

    class BadCommands:
        @hookimpl
        def register_commands(subparsers):
            raise ValueError("cannot add")

    pm.register(BadCommands, name="badcmd")
    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.warns(PluginLoadWarning, match="'badcmd'.*register_commands.*cannot add"):
        plugins.call_register_commands(sub)
