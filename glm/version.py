"""The installed version of glm."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "graph-glm"


def glm_version() -> str:
    """The installed version of glm (distribution ``graph-glm``), or ``"unknown"``."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
