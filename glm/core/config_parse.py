"""Reading a run config's raw values: YAML files, dotted overrides, deep merges, and type coercion with named errors.

:mod:`glm.core.config` holds the sections (dataclasses) and builds them with :func:`coerce`;
:mod:`glm.core.config_rules` holds what values are allowed. Nothing here knows a section.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import yaml

from glm.errors import GlmError

Builder = Callable[[type, dict, str, str], Any]


class ConfigError(GlmError, ValueError):
    """A configuration file or override is wrong; the message names the key and the source."""


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str, source: str, build: Builder) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless; a dataclass section goes
    to ``build(cls, mapping, key, source)`` (the config's own builder, which knows its sections)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key, source, build)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{source}: {key} expects {type_name(tp)}, found {type(value).__name__} {value!r}"
        )
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: {key} is a section and expects a mapping, found {type(value).__name__} {value!r}"
            )
        return build(tp, value, key, source)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} expects a list, found {type(value).__name__} {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [coerce(v, item_tp, f"{key}[{i}]", source, build) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} expects a mapping, found {type(value).__name__} {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(str, choices))}; found {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # yaml reads "1e-4" (no dot) as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{source}: {key} expects a number, found {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key} expects an integer, found {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} expects true/false, found {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{source}: {key} expects a string, found {type(value).__name__} {value!r}")
        return value
    return value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"training.learning_rate=1e-4"`` -> ``(["training", "learning_rate"], 1e-4)``."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip().removeprefix("--")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set each dotted ``key=value`` in the nested dict ``data`` (in place; returned)."""
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:  # an empty file would silently run every built-in default
        raise ConfigError(f"{path}: the config file is empty; expected a mapping of sections (model, data, "
                          "training, ...), see examples/")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data
