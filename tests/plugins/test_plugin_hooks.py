"""One test per hook (``test_hook_<name>``; the meta-test in test_plugin_meta.py insists)."""

from __future__ import annotations

import argparse

import pytest

from glm.plugins import BackendSpec, hookimpl, pm
from glm.testing import assert_gnn_layer


def test_hook_register_backends(plugins):
    class Toy:
        name = "toy"

    class Plugin:
        @hookimpl
        def register_backends(register):
            register(BackendSpec("toy", load=Toy, requires=("json",), description="test backend"))

    pm.register(Plugin, name="toy-backend")
    registry = plugins.get_registry()
    spec = registry.backend("toy")
    assert isinstance(spec.load(), Toy)
    assert registry.owner("backends", "toy") == "toy-backend"
    assert "toy" in registry.available_backends()


def test_hook_register_gnn_layers(plugins, gin_module):
    pm.register(gin_module, name="wgin")
    registry = plugins.get_registry()
    spec = registry.gnn_layer("wgin", "pyg")  # pure torch: every backend
    assert spec.plugin == "wgin" and spec.backends is None
    assert "wgin" in registry.layers_for("gammagl")
    report = assert_gnn_layer("wgin", in_dim=12, out_dim=8, options={"hidden_dim": 10})
    assert set(report.values()) <= {"passed", "passed (cpu only: no CUDA device here)"}


def test_hook_register_datasets(plugins):
    class Plugin:
        @hookimpl
        def register_datasets(register):
            register("toy_graph", lambda **options: ("graph", options), description="tiny")

    pm.register(Plugin, name="toy-data")
    spec = plugins.get_registry().dataset("toy_graph")
    assert spec.loader(size=3) == ("graph", {"size": 3}) and spec.plugin == "toy-data"


def test_hook_register_recipes(plugins, tmp_path):
    recipe = tmp_path / "tiny.json"
    recipe.write_text('{"train_micro_batch_size_per_gpu": 1}')

    class Plugin:
        @hookimpl
        def register_recipes(register):
            register("tiny-file", str(recipe))
            register("tiny-dict", {"zero_optimization": {"stage": 0}})

    pm.register(Plugin, name="toy-recipes")
    registry = plugins.get_registry()
    assert registry.recipe("tiny-file").source == recipe
    assert registry.recipe("tiny-dict").source == {"zero_optimization": {"stage": 0}}


def test_hook_register_methods(plugins):
    from dataclasses import dataclass

    from glm.core.method import MethodSpec, StageSpec
    from glm.plugins import DuplicateRegistrationError

    @dataclass
    class Cfg:
        width: int = 2

    spec = MethodSpec(name="toy-method", config_cls=Cfg, build=lambda cfg, ctx: None,
                      stages={"pretrain": StageSpec(("head.*",)), "adapt": StageSpec(("head.*",), "fewshot")})

    class Plugin:
        @hookimpl
        def register_methods(register):
            register(spec)
            register("not a spec")

    pm.register(Plugin, name="toy-methods")
    with pytest.warns(UserWarning, match="expected glm.core.method.MethodSpec"):
        registry = plugins.get_registry()
    assert registry.method("toy-method") is spec and registry.owner("methods", "toy-method") == "toy-methods"
    assert {"graphlama", "graphgpt", "llaga"} <= set(registry.methods)
    with pytest.raises(DuplicateRegistrationError, match="method 'graphlama' is already registered"):
        registry.add_method(registry.method("graphlama"))


def test_hook_register_commands(plugins, capsys):
    from glm.cli.main import main

    class Plugin:
        @hookimpl
        def register_commands(subparsers):
            p = subparsers.add_parser("hello", help="say hello")
            p.add_argument("--name", default="graph")
            p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    pm.register(Plugin, name="hello-cmd")
    assert main(["hello", "--name", "glm"]) == 0
    assert capsys.readouterr().out == "hello glm\n"
    sub = argparse.ArgumentParser().add_subparsers()
    plugins.call_register_commands(sub)
    assert "hello" in sub.choices
