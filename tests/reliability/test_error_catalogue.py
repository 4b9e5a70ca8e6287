"""Every public user-facing error class reaches the user as one line and exit code 2 (``-v``: traceback)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import glm
from glm.cli.main import main
from glm.errors import GlmError
from glm.plugins import hookimpl, pm

SKIP_MODULES = ("glm.backends.gammagl", "glm.backends._gammagl_compat", "glm.backends.pyg", "glm.__main__")


def _error_classes() -> list[type]:
    for info in pkgutil.walk_packages(glm.__path__, "glm."):
        if not info.name.startswith(SKIP_MODULES):
            importlib.import_module(info.name)
    seen, todo = set(), [GlmError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("glm.") and sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__name__}")


ERRORS = _error_classes()
_raise: list[BaseException] = []


class Boom:
    @hookimpl
    def register_commands(self, subparsers):
        p = subparsers.add_parser("boom")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(_raise[0]))


@pytest.fixture()
def boom():
    pm.register(Boom(), name="boom-plugin")
    yield
    pm.unregister(name="boom-plugin")
    _raise.clear()


def test_the_catalogue_is_complete():
    names = {c.__name__ for c in ERRORS}
    for expected in ("ConfigError", "DataValidationError", "UnknownBackendError", "LLMLoadError", "AdapterMismatchError",
                     "AdapterFormatError", "ContextOverflowError", "CheckpointError", "RecipeError", "MethodError",
                     "UnknownMethodError", "ConvertError", "CliError", "PlanError", "UnknownStageError"):
        assert expected in names


def _instance(cls: type, message: str) -> BaseException:
    """An instance whose message is ``message`` (errors built from fields get dummy fields first)."""
    required = [p for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    try:
        exc = cls(message, *[[]] * (len(required) - 1)) if required else cls(message)
    except TypeError:
        exc = cls.__new__(cls)
    exc.args = (message,)
    return exc


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_is_one_line_and_exit_2(cls, boom, capsys):
    message = f"{cls.__name__} happened:\n  first detail\n  second detail"
    exc = _instance(cls, message)
    _raise.append(exc)
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("glm: error: ")
    assert "first detail; second detail" in err and "Traceback" not in err
    _raise[:] = [exc]
    assert main(["-v", "boom"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_adapter_of_another_method_is_one_line(tmp_path, capsys):
    """A real case: the mismatch lists its differences on the same line."""
    from glm.core.adapter import AdapterMismatchError

    exc = AdapterMismatchError(tmp_path / "a.safetensors", ["method: adapter 'llaga', model 'graphlama'", "key x"])
    assert exc.one_line().endswith("does not fit this model: method: adapter 'llaga', model 'graphlama'; key x")
