"""Reading a recipe: a registered name (``glm recipes``) or a DeepSpeed JSON path, and its glm-side
``"_glm"`` hints. Resolving it into a DeepSpeed config is :mod:`glm.core.train.dsconfig`'s job; the
run configuration reads the hints' run-config defaults from here (``_glm.config``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from glm.errors import GlmError


class RecipeError(GlmError, ValueError):
    """A recipe cannot be read or resolved; the message names the recipe and the field."""


def load_recipe(name_or_path: str) -> tuple[dict[str, Any], str]:
    """Return ``(raw recipe dict, source description)`` for a registered name or a JSON path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".json") or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe file {name_or_path!r} not found")
        return _read_json(path), str(path)
    from glm.plugins.manager import get_registry
    from glm.plugins.registry import UnknownRecipeError

    try:
        spec = get_registry().recipe(name_or_path)
    except UnknownRecipeError as exc:
        raise RecipeError(str(exc)) from None
    if isinstance(spec.source, dict):
        return copy.deepcopy(spec.source), f"recipe {spec.name!r}"
    return _read_json(Path(spec.source)), f"recipe {spec.name!r} ({Path(spec.source).name})"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a DeepSpeed config must be a JSON object, found {type(data).__name__}")
    return data


def recipe_hints(recipe: dict[str, Any]) -> dict[str, Any]:
    """The glm-side ``"_glm"`` section of a recipe (``{}`` if absent)."""
    return dict(recipe.get("_glm", {}))


def zero_stage(recipe: dict[str, Any]) -> int:
    """The ZeRO stage of a recipe or a resolved DeepSpeed config (0 when it has no ``zero_optimization``)."""
    return int((recipe.get("zero_optimization") or {}).get("stage", 0))
