"""Helpers shared by CLI command modules."""

from __future__ import annotations

import argparse
import os

from glm.cli.main import CliError
from glm.plugins.manager import get_registry
from glm.plugins.registry import RegistryError


def add_backend_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--backend NAME``; the names come from the backend registry (plugins included)."""
    names = sorted(get_registry().backends)
    parser.add_argument(
        "--backend",
        default=default,
        metavar="|".join(names) if names else "NAME",
        help="graph backend (default: config file, then $GLM_BACKEND, then the first available)",
    )


def resolve_backend(name: str | None):
    """Return the loaded backend object for ``name`` or raise :class:`CliError` (one line,
    naming the extra to install)."""
    registry = get_registry()
    name = name or os.environ.get("GLM_BACKEND")
    if name is None:
        available = registry.available_backends()
        if not available:
            raise CliError('no graph backend is installed; install one with: pip install -e ".[pyg]"')
        name = available[0]
    try:
        spec = registry.backend(name)
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    return spec.load()
