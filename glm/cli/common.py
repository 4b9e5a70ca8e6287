"""Helpers shared by CLI command modules: the user-facing error, ``--backend``, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from glm.errors import GlmError
from glm.plugins.manager import get_registry
from glm.plugins.registry import BackendSpec, RegistryError

BACKEND_ENV = "GLM_BACKEND"


class CliError(GlmError):
    """A user-facing error: ``glm`` prints it as one line and exits with code 2."""


def add_backend_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """Add ``--backend NAME``; the names come from the backend registry (plugins included).

    Validation is lazy (:func:`resolve_backend`), so that a missing framework only matters
    to the command that needs it and the error can name the extra to install.
    """
    registry = get_registry()
    names = sorted(registry.backends)
    listed = ", ".join(f"{n}{'' if registry.backends[n].available else ' (not installed)'}" for n in names)
    parser.add_argument(
        "--backend",
        default=default,
        metavar="|".join(names) if names else "NAME",
        help=f"graph backend: {listed or 'none registered'}"
        f" (default: config file, then ${BACKEND_ENV}, then the first installed)",
    )


def resolve_backend_spec(name: str | None) -> BackendSpec:
    """The :class:`BackendSpec` for ``name`` (``None``: ``$GLM_BACKEND``, then the first
    installed backend), checked to be installed; raise :class:`CliError` (one line, naming
    the extra to install) otherwise. Does not import the framework."""
    registry = get_registry()
    name = name or os.environ.get(BACKEND_ENV) or None
    if name is None:
        available = registry.available_backends()
        if not available:
            hints = "; ".join(f"{n}: {s.install_hint()}" for n, s in sorted(registry.backends.items()))
            raise CliError(f"no graph backend is installed ({hints or 'none is registered'})")
        name = available[0]
    try:
        return registry.backend(name)
    except RegistryError as exc:
        raise CliError(str(exc)) from None


def resolve_backend(name: str | None) -> Any:
    """Return the loaded backend object for ``name`` (see :func:`resolve_backend_spec`);
    a backend whose framework fails to import also gives a one-line :class:`CliError`."""
    spec = resolve_backend_spec(name)
    try:
        return spec.load()
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise CliError(
            f"backend {spec.name!r} failed to load ({type(exc).__name__}: {first_line});"
            f" reinstall it with: {spec.install_hint()}"
        ) from None


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON to stdout (the machine-readable output of a command)."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


class IntermixedParser(argparse.ArgumentParser):
    """Lets ``key=value`` overrides follow options (``glm adapt cfg.yaml --backend pyg a.b=1``)."""

    _busy = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._busy:
            return super().parse_known_args(args, namespace)
        self._busy = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._busy = False


def write_jsonl(rows: list[dict], path: str | None) -> None:
    """Rows as JSON lines to ``path`` (atomically), or to stdout when ``path`` is ``None``."""
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    if path is None:
        sys.stdout.write(text)
        return
    from glm.core.io import atomic_write_text

    atomic_write_text(text, path)
