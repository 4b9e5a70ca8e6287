"""Entry point of the ``glm`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from typing import Any, Sequence

# Frameworks read these at import time; set them before anything imports tensorlayerx / HF hub.
os.environ.setdefault("TL_BACKEND", "torch")

from glm.cli.common import CliError  # noqa: E402
from glm.errors import GlmError  # noqa: E402  (re-exported: ``from glm.cli.main import CliError``)

# Built-in command groups; each module defines ``add_commands(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "glm.cli.info",      # plugins, env, backends, examples
    "glm.cli.data",      # data list / stats / split / prepare
    "glm.cli.plan",      # plan (memory estimate, --probe)
    "glm.cli.methods",   # methods / convert
    "glm.cli.bench",     # bench fewshot
    "glm.cli.devcheck",  # devcheck (GPU check, --dry-run on CPU)
    "glm.cli.train",     # pretrain / adapt / eval / infer / recipes / plot / demo
)

__all__ = ["COMMAND_MODULES", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``glm`` parser: built-in command modules, then plugins' ``register_commands``."""
    from glm.plugins.manager import call_register_commands

    parser = argparse.ArgumentParser(prog="glm", description="Graph language models on PyG or GammaGL.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = _import_command_module(module_name)
        if module is not None:
            module.add_commands(sub)
    call_register_commands(sub)  # loads plugins (fail-soft) and adds their commands
    return parser


def _import_command_module(module_name: str) -> Any:
    """Import one built-in command group; one that fails must not take ``glm env`` down with
    it (a warning, or :class:`PluginLoadError` under ``GLM_STRICT_PLUGINS=1``)."""
    from glm.plugins.manager import PluginLoadError, PluginLoadWarning, is_strict

    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # a command group this build does not ship (yet)
        error: Exception = exc
    except Exception as exc:
        error = exc
    message = f"command module {module_name} failed to import: {type(error).__name__}: {error}"
    if is_strict():
        raise PluginLoadError(message) from error
    warnings.warn(message, PluginLoadWarning, stacklevel=1)
    return None


def _version() -> str:
    from glm.version import glm_version

    return f"glm {glm_version()}"


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Plugin warnings as one ``glm: warning:`` line; others as Python prints them."""
    from glm.plugins.manager import PluginLoadWarning

    if issubclass(category, PluginLoadWarning):
        (file or sys.stderr).write(f"glm: warning: {message}\n")
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    fmt = "%(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt)


def _verbose(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return any(a in ("-v", "-vv", "--verbose") for a in args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``glm``; returns the exit code (0 ok, 1 plugin failure in strict mode, 2 user error)."""
    from glm.core.train.preempt import EXIT_CODE, TrainingTerminated, install_early_handler
    from glm.plugins.manager import PluginLoadError

    install_early_handler()

    warnings.showwarning = _show_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _configure_logging(args.verbose)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except GlmError as exc:  # every user-facing error: one line, exit 2 (-v: the traceback too)
        if _verbose(argv):
            traceback.print_exc()
        print(f"glm: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except TrainingTerminated as exc:  # SIGTERM (preemption): the trainer saved what it could
        print(f"glm: {exc}", file=sys.stderr)
        return EXIT_CODE
    except KeyboardInterrupt as exc:  # Ctrl-C: no traceback; the trainer says where it stopped
        print(f"glm: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except PluginLoadError as exc:
        print(f"glm: error: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = _python_showwarning


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
