"""Entry point of the ``glm`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

# Frameworks read these at import time; set them before anything imports tensorlayerx / HF hub.
os.environ.setdefault("TL_BACKEND", "torch")

# Built-in command groups; each module defines ``add_commands(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "glm.cli.info",      # plugins, env
)


def build_parser() -> argparse.ArgumentParser:
    from glm.plugins.manager import get_registry, pm

    parser = argparse.ArgumentParser(prog="glm", description="Graph language models on PyG or GammaGL.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(sub)
    get_registry()  # loads plugins (fail-soft) so that their commands can be added
    pm.hook.register_commands(subparsers=sub)
    return parser


def _version() -> str:
    from glm.plugins.manager import _glm_version

    return f"glm {_glm_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)] if args.verbose else logging.INFO,
        format="%(message)s" if not args.verbose else "%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"glm: error: {exc}", file=sys.stderr)
        return 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
