"""What a bench row's numbers depend on: the adaptation settings of a method, the hash of a row's
settings (finished rows and pre-trained runs are reused while it matches), and the bench's error.
Shared by :mod:`glm.bench.fewshot` and :mod:`glm.bench.method_rows`."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from glm.errors import GlmError


class BenchError(GlmError, ValueError):
    """A bench request cannot run (unknown row, too few nodes for a redraw, ...)."""


@dataclass(frozen=True)
class AdaptSettings:
    """How a method row adapts: an adaptation config's ``training`` section and ``model.stage_extra``."""

    training: Any
    stage_extra: tuple[str, ...] = ()
    source: str = ""  # the config it came from, for the report
    changes: tuple[str, ...] = ()  # --adapt-set KEY=VALUE changes on top of it

    @classmethod
    def from_config(cls, config: Any, source: str = "", changes: Sequence[str] = ()) -> AdaptSettings:
        return cls(config.training, tuple(config.model.stage_extra), source, tuple(changes))

    @property
    def label(self) -> str:
        """``FILE`` or ``FILE + KEY=VALUE + ...``, for people."""
        return " + ".join([self.source, *self.changes])


def adapt_of(adapt: dict[str, AdaptSettings], method: str) -> Optional[AdaptSettings]:
    """``method``'s entry of ``--adapt-config``'s settings (``{method or "": AdaptSettings}``): its own, else
    the default, else ``None`` (the bench config's own training section)."""
    return adapt.get(method, adapt.get(""))


def adapt_report(adapt: dict[str, AdaptSettings]) -> dict[str, Any]:
    """A report's record of the adaptation settings by method (``"*"``: the default): ``adapt_configs``
    (``FILE + KEY=VALUE ...``, for people) and ``adapt_settings`` (file and changes apart, which
    ``glm bench choose`` reads back as options)."""
    return {"adapt_configs": {m or "*": a.label for m, a in adapt.items()},
            "adapt_settings": {m or "*": {"file": a.source, "changes": list(a.changes)} for m, a in adapt.items()}}


RUN_KEYS = ("output_dir", "overwrite_output_dir", "resume", "resume_anyway", "init_from", "stage")
# Options added after results were stored, left out of the hash at their default value: a result made before
# the option existed was made at that value, so it stays valid (and is not trained again).
LATER_OPTIONS = {("data", "standardize"): False, ("model", "graphlama", "input_skip"): False}


def config_hash(config: Any, adapt: Optional[AdaptSettings] = None, pretrain_config: Any = None) -> str:
    """Hash of everything that changes a row's numbers (not where the runs are written), ``model.llm.dtype:
    auto`` as what it resolves to here (bf16 on a CPU or GPU that runs it natively): a row or pre-trained
    run made in fp32 is not read back as a bf16 one, nor the other way."""
    from glm.core.llm import resolve_dtype

    resolved = resolve_dtype("auto")

    def settings(cfg: Any) -> dict[str, Any]:
        data = copy.deepcopy(cfg.to_dict())
        data["training"] = {k: v for k, v in data["training"].items() if k not in RUN_KEYS}
        data["eval"] = {k: v for k, v in data["eval"].items() if k not in ("output", "adapter")}
        for path, default in LATER_OPTIONS.items():
            *parents, key = path
            section = data
            for name in parents:
                section = section.get(name) if isinstance(section, dict) else None
            if isinstance(section, dict) and section.get(key, default) == default:
                section.pop(key, None)
        llm = data.get("model", {}).get("llm", {})
        if llm.get("dtype") == "auto" and resolved != "float32":
            llm["dtype"] = f"auto:{resolved}"  # its numbers; auto as fp32 keeps the hashes made so
        return data

    data = settings(config)
    if adapt is not None:
        data["adapt_training"] = {k: v for k, v in asdict(adapt.training).items() if k not in RUN_KEYS}
        if list(adapt.stage_extra) != list(config.model.stage_extra):
            data["adapt_stage_extra"] = list(adapt.stage_extra)
    if pretrain_config is not None:
        data["pretrain_config"] = settings(pretrain_config)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_result(path: Path, digest: str, force: bool = False) -> Optional[dict[str, Any]]:
    """The result stored at ``path`` for settings of hash ``digest`` (``None``: absent, other settings, or ``force``)."""
    if force or not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    return saved["result"] if saved.get("config_hash") == digest else None


def store_result(path: Path, digest: str, result: dict[str, Any]) -> None:
    """Write one row's result with the hash of its settings (atomically: a killed bench leaves none half written)."""
    from glm.core.io import atomic_write_text

    atomic_write_text(json.dumps({"config_hash": digest, "result": result}, indent=1), path)
