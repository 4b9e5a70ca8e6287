"""What a run config may hold: the range of every numeric field (one table), the choices, and the rules that tie
fields together; all checked when the config is read, before any model is built.

Each row of :data:`RULES` names a dotted field and its allowed range; choices are typed as ``Literal`` or
checked by :func:`check_run` (which :meth:`glm.core.config.RunConfig.validate` calls). Every float anywhere in the config (method sections
included) must also be finite: ``nan`` and ``inf`` are refused before any model is built. Method
fields are written ``model.<method>.<field>`` and checked only for the active method.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

from glm.core.choices import options
from glm.core.config_parse import ConfigError


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
    "data.generation.train": POSITIVE,
    "data.generation.val": AT_LEAST_0,
    "data.generation.test": AT_LEAST_1,
    "data.generation.draw": AT_LEAST_0,
    "data.propagate": Range(0, 8),
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
    "eval.temperature": POSITIVE,
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


def problems(config: Any, active_method: Optional[str] = None, prefix: str = "") -> Iterator[str]:
    """One message per violated rule (``field must be ...; found ...``) of a config tree (``prefix``: its
    dotted name when it is one section, e.g. ``"training"``)."""
    for name, value in _fields(config, prefix):
        section = name.split(".")[:2]
        if section[0] == "model" and len(section) > 1 and section[1] not in ("llm", "encoder", "method", "stage_extra", "token_norm") \
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


# -- choices and rules that tie fields together -------------------------------------------------------

def literal_problems(obj: Any, prefix: str = "") -> Iterator[str]:
    """``field must be one of ...; found ...`` for every ``Literal``-typed field (:mod:`glm.core.choices`)
    of a config tree whose value is not among its choices (configs built in Python skip loading's check)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, name = getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            yield from literal_problems(value, name)
            continue
        allowed = options(hints.get(f.name))
        if allowed and value not in allowed and not (value is None and type(None) in typing.get_args(hints[f.name])):
            yield f"{name} must be one of {', '.join(allowed)}; found {value!r}"


REPORTERS = ("none", "tensorboard", "wandb")  # training.report_to (HF's names); glm.core.train.report
REPORTER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
DATASET_ENTRY_KEYS = ("dataset", "options", "data_dir", "features", "prompt", "weight", "embedder")  # data.datasets


def report_targets(report_to: Any) -> list[str]:
    """``report_to`` as a list of reporters (``"none"`` and ``[]`` give ``[]``)."""
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return [n for n in names if n != "none"]


def missing_reporter(report_to: Any) -> str:
    """One line naming the first chosen reporter whose package is not installed ("" when all are)."""
    import importlib.util

    for name in report_targets(report_to):
        package = REPORTER_PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            return f"training.report_to={name!r} needs the {package!r} package (pip install 'graph-glm[report]')"
    return ""


def check_datasets(data: Any) -> Iterator[str]:
    """Problems of ``data.datasets`` that need no file: keys, weights, one feature source."""
    for i, entry in enumerate(data.datasets):
        where = f"data.datasets[{i}]"
        if not isinstance(entry, dict) or "dataset" not in entry:
            yield f"{where} must be a mapping with at least 'dataset', found {entry!r}"
            continue
        unknown = sorted(set(entry) - set(DATASET_ENTRY_KEYS))
        if unknown:
            yield f"{where}: unknown keys {unknown}; valid keys: {', '.join(DATASET_ENTRY_KEYS)}"
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            yield f"{where}.weight must be a number > 0, found {weight!r}"
        if bool(entry.get("features")) != bool(data.features):
            yield (f"{where}: node features from {'a matrix' if entry.get('features') else 'the embedder'}, but "
                   f"data.dataset's from {'a matrix' if data.features else 'the embedder'}; one encoder reads both")
        if entry.get("embedder", data.embedder) != data.embedder:
            yield f"{where}.embedder {entry['embedder']!r} differs from data.embedder {data.embedder!r}"


def _choice_problem(value: Any, choices: Sequence[str], key: str) -> Iterator[str]:
    if value not in choices:
        yield f"{key} must be one of {', '.join(choices)}; found {value!r}"


def _model_problems(model: Any) -> Iterator[str]:
    from glm.core.encoder import ACTIVATIONS
    from glm.core.llm import DTYPE_NAMES

    llm = model.llm
    yield from _choice_problem(model.encoder.activation, tuple(sorted(ACTIVATIONS)), "model.encoder.activation")
    yield from _choice_problem(llm.dtype, DTYPE_NAMES, "model.llm.dtype")
    if not llm.lora.target_modules:
        yield "model.llm.lora.target_modules is empty; name modules or use [all-linear]"
    if llm.tuning == "freeze" and llm.freeze.last_n == 0 and not llm.freeze.modules:
        yield "model.llm.tuning=freeze trains nothing of the LLM; set model.llm.freeze.last_n >= 1 or model.llm.freeze.modules"


def _data_problems(data: Any) -> Iterator[str]:
    g = data.generation.train
    if g >= 1 and g != int(g):
        yield f"data.generation.train must be a count (1, 2, ...) or a fraction < 1; found {g!r}"
    yield from check_datasets(data)


def _training_problems(t: Any) -> Iterator[str]:
    """(Also reads ``lr_groups``' rates as floats: YAML reads 1e-3 as a string.)"""
    for name in report_targets(t.report_to):  # "none" is the only name report_targets() drops, and it is allowed
        yield from _choice_problem(name, REPORTERS, "training.report_to")
    problem = missing_reporter(t.report_to)
    if problem:
        yield problem
    for key, on in (("load_best_model_at_end", t.load_best_model_at_end),
                    ("early_stopping_patience", t.early_stopping_patience is not None)):
        if on and t.eval_steps == 0:
            yield f"training.{key} needs validation while training; set training.eval_steps > 0"
    if not isinstance(t.lr_groups, dict):
        yield f"training.lr_groups must be a mapping pattern -> learning rate, found {type(t.lr_groups).__name__}"
        return
    for pattern, lr in list(t.lr_groups.items()):
        if pattern.startswith("llm."):
            yield f"training.lr_groups[{pattern!r}]: the LLM part's rate is model.llm.learning_rate"
        try:
            t.lr_groups[pattern] = rate = float(lr) if not isinstance(lr, bool) else -1.0
        except (TypeError, ValueError):
            rate = -1.0
        if not (rate > 0 and rate != float("inf")):
            yield f"training.lr_groups[{pattern!r}] must be a learning rate > 0, found {lr!r} (a finite number)"
    if t.max_steps <= 0 and t.num_epochs <= 0:
        yield "set training.max_steps > 0 or training.num_epochs > 0"


def _eval_problems(ev: Any) -> Iterator[str]:
    from glm.core.eval.parsers import ANSWER_PARSERS

    yield from _choice_problem(ev.match, tuple(ANSWER_PARSERS), "eval.match")


# the rules of each section that need no other section (ranges and choices come from RULES and the Literal types)
SECTION_RULES: dict[str, Callable[[Any], Iterator[str]]] = {
    "model": _model_problems, "data": _data_problems, "training": _training_problems, "eval": _eval_problems}


def section_problems(section: Any, name: str, active_method: Optional[str] = None) -> Iterator[str]:
    """Every problem of one section (``name``: model, data, training or eval) found without the others: its
    ranges (:data:`RULES`, finite floats), its ``Literal`` choices and its own rules (:data:`SECTION_RULES`).
    Each section's ``validate()`` calls this."""
    yield from problems(section, active_method, prefix=name)
    yield from literal_problems(section, name)
    yield from SECTION_RULES[name](section)


def _raise_first(found: Iterator[str], source: str) -> None:
    """Raise :class:`ConfigError` ``"{source}: {problem}"`` for the first of ``found``, if any."""
    for problem in found:
        raise ConfigError(f"{source}: {problem}")


def check_section(section: Any, name: str, source: str) -> None:
    _raise_first(section_problems(section, name), source)


def run_problems(config: Any, spec: Any) -> Iterator[str]:
    """The rules that tie sections together (``spec``: the method's :class:`~glm.core.method.MethodSpec`)."""
    t, llm = config.training, config.model.llm
    yield from _choice_problem(t.stage, tuple(spec.stages), f"training.stage (stages of method {spec.name!r})")
    for stage in llm.train_stages or ():
        yield from _choice_problem(stage, tuple(spec.stages), f"model.llm.train_stages (stages of method {spec.name!r})")
    if llm.tuning == "qlora" and _recipe_zero_stage(config.recipe) == 3:
        yield (f"recipe {config.recipe!r} uses ZeRO-3, which cannot partition a 4-bit base "
               "(model.llm.tuning=qlora); use a ZeRO-0/1/2 recipe, e.g. recipe=3090-qlora")
    if config.data.task == "title_generation" and t.eval_steps > 0:
        yield ("training.eval_steps scores classes; with data.task=title_generation choose "
               "settings with glm eval --split val (data.generation.val > 0)")
    yield from spec.problems(config.model.method_config, config)


def check_run(config: Any, spec: Any, source: str) -> None:
    """Every rule of a run config: each section's own (:func:`section_problems`), then those that tie
    sections together (:func:`run_problems`); raises :class:`ConfigError` naming the first."""
    for name in SECTION_RULES:
        _raise_first(section_problems(getattr(config, name), name, active_method=spec.name), source)
    _raise_first(run_problems(config, spec), source)


def _recipe_zero_stage(recipe: str) -> Optional[int]:
    """The ZeRO stage of a recipe, ``None`` when it cannot be read (named when the run resolves it)."""
    from glm.core.recipe import RecipeError, load_recipe, zero_stage

    try:
        raw, _ = load_recipe(recipe)
    except RecipeError:
        return None
    return zero_stage(raw)
