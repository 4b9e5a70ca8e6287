"""The constraints of every numeric field of a run config, in one table, checked when the config is read.

Each row names a dotted field and its allowed range; choices are typed as ``Literal`` or checked in
:meth:`glm.core.config.RunConfig.validate`. Every float anywhere in the config (method sections
included) must also be finite: ``nan`` and ``inf`` are refused before any model is built. Method
fields are written ``model.<method>.<field>`` and checked only for the active method.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional


@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (``<`` where ``open_low`` / ``open_high``); ``None`` = unbounded."""

    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return " and ".join(parts)


POSITIVE = Range(0, open_low=True)
AT_LEAST_0, AT_LEAST_1 = Range(0), Range(1)
PROBABILITY = Range(0, 1, open_high=True)  # dropout: 1.0 would zero every activation
FRACTION = Range(0, 1)

# field -> allowed range; a null (None) value of an optional field is always allowed
RULES: dict[str, Range] = {
    "model.llm.max_length": Range(2),
    "model.llm.learning_rate": POSITIVE,
    "model.llm.lora.r": AT_LEAST_1,
    "model.llm.lora.alpha": POSITIVE,
    "model.llm.lora.dropout": PROBABILITY,
    "model.llm.freeze.last_n": AT_LEAST_0,
    "model.encoder.in_dim": AT_LEAST_1,
    "model.encoder.hidden_dim": AT_LEAST_1,
    "model.encoder.out_dim": AT_LEAST_1,
    "model.encoder.num_layers": AT_LEAST_1,
    "model.encoder.heads": AT_LEAST_1,
    "model.encoder.dropout": PROBABILITY,
    "model.graphlama.graph_dim": AT_LEAST_1,
    "model.graphlama.max_hops": AT_LEAST_1,
    "model.graphlama.hop_dim": AT_LEAST_1,
    "model.graphlama.gate_dim": AT_LEAST_1,
    "model.graphlama.projector_hidden": AT_LEAST_1,
    "model.graphgpt.projector_hidden": AT_LEAST_1,
    "model.llaga.pe_dim": AT_LEAST_1,
    "model.llaga.hops": AT_LEAST_1,
    "model.llaga.projector_hidden": AT_LEAST_1,
    "data.samples_per_task": AT_LEAST_1,
    "data.n_way": AT_LEAST_1,
    "data.k_shot": AT_LEAST_1,
    "data.val_per_class": AT_LEAST_0,
    "data.test_per_class": AT_LEAST_1,
    "data.max_text_words": AT_LEAST_0,
    "data.graph_matching_nodes": AT_LEAST_1,
    "data.seed": AT_LEAST_0,
    "training.learning_rate": POSITIVE,
    "training.weight_decay": AT_LEAST_0,
    "training.num_epochs": AT_LEAST_0,
    "training.micro_batch_size": AT_LEAST_1,
    "training.gradient_accumulation_steps": AT_LEAST_1,
    "training.warmup_ratio": FRACTION,
    "training.warmup_steps": AT_LEAST_0,
    "training.max_grad_norm": AT_LEAST_0,  # 0: no clipping (DeepSpeed's gradient_clipping)
    "training.seed": AT_LEAST_0,
    "training.logging_steps": AT_LEAST_1,
    "training.save_steps": AT_LEAST_0,
    "training.save_total_limit": AT_LEAST_1,
    "training.eval_steps": AT_LEAST_0,
    "training.early_stopping_patience": AT_LEAST_1,
    "training.align.steps": AT_LEAST_0,
    "training.align.learning_rate": POSITIVE,
    "training.align.batch_size": AT_LEAST_1,
    "training.align.temperature": POSITIVE,
    "eval.batch_size": AT_LEAST_1,
    "eval.max_new_tokens": AT_LEAST_1,
    "eval.val_samples": AT_LEAST_1,
}
ITEM_RULES: dict[str, Range] = {  # every item of a list field
    "data.fanout": AT_LEAST_1,
    "training.adam_betas": Range(0, 1, open_high=True),
    "model.llaga.tree": AT_LEAST_1,
}


def _fields(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted name, value)`` of every leaf field of a config tree (method sections as model.<method>)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}.{f.name}" if prefix else f.name
        if f.name == "methods" and isinstance(value, dict):
            for method, section in value.items():
                if dataclasses.is_dataclass(section):
                    yield from _fields(section, f"{prefix}.{method}")
        elif dataclasses.is_dataclass(value):
            yield from _fields(value, name)
        else:
            yield name, value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def problems(config: Any, active_method: Optional[str] = None) -> Iterator[str]:
    """One message per violated rule (``field must be ...; found ...``)."""
    for name, value in _fields(config, ""):
        section = name.split(".")[:2]
        if section[0] == "model" and section[1] not in ("llm", "encoder", "method", "stage_extra", "token_norm") \
                and active_method is not None and section[1] != active_method:
            continue  # another method's section: not used by this run
        values = [(name, value)] if not isinstance(value, list) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        rule = RULES.get(name)
        for shown, v in values:
            if isinstance(v, float) and not math.isfinite(v):
                yield f"{shown} must be a finite number, found {v}"
            elif rule is not None and _is_number(v) and not rule.holds(v):
                yield f"{shown} must be {rule.describe()}, found {v}"
            elif name in ITEM_RULES and _is_number(v) and not ITEM_RULES[name].holds(v):
                yield f"{shown} must be {ITEM_RULES[name].describe()}, found {v}"


def check(config: Any, source: str, error: Callable[[str], Exception], active_method: Optional[str] = None) -> None:
    """Raise ``error(f"{source}: {first problem}")`` when a rule does not hold."""
    for problem in problems(config, active_method):
        raise error(f"{source}: {problem}")
