"""Which parameters train in each stage, and how many there are.

The stage table comes from the model's method (:attr:`glm.core.method.MethodSpec.stages`), or is
passed explicitly. Patterns are :func:`fnmatch` patterns over
:class:`~glm.core.model.GraphLanguageModel` parameter names. The LLM (``llm.*``) never trains:
a stage whose pattern matches an LLM parameter raises :class:`FrozenLLMError`.
``graph_token_embeddings`` (the three new token rows) is added to every stage when the model's
``train_graph_token_rows`` is set. ``extra`` patterns (``model.stage_extra``) widen a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Iterable, Mapping, Optional, Sequence

from torch import nn

from glm.core.tuning import tuning_of
from glm.errors import GlmError

StageTable = Mapping[str, Sequence[str]]

GRAPH_TOKEN_ROWS = "graph_token_embeddings"


class UnknownStageError(GlmError, KeyError):
    """The stage name is not in the stage table."""


class FrozenLLMError(GlmError, ValueError):
    """A stage pattern would unfreeze a parameter of the LLM."""


class LrGroupError(GlmError, ValueError):
    """A ``training.lr_groups`` pattern matches no trainable parameter (or only ones an earlier pattern took)."""


def lr_group_of(name: str, lr_groups: Optional[Mapping[str, float]]) -> Optional[str]:
    """The first ``training.lr_groups`` pattern that matches parameter ``name``, else ``None``."""
    return next((pat for pat in (lr_groups or {}) if fnmatch(name, pat)), None)


def check_lr_groups(trained: Sequence[str], lr_groups: Optional[Mapping[str, float]]) -> None:
    """Raise :class:`LrGroupError` if a pattern of ``lr_groups`` gets none of the ``trained`` graph-side
    parameters (first matching pattern wins, so a pattern shadowed by an earlier one gets none)."""
    used = {lr_group_of(n, lr_groups) for n in trained if not n.startswith("llm.")}
    unused = [pat for pat in (lr_groups or {}) if pat not in used]
    if unused:
        raise LrGroupError(f"training.lr_groups: {unused} match no trainable parameter of this stage "
                           f"(trainable: {sorted({n.rsplit('.', 1)[0] for n in trained})[:8]})")


def stage_table(model: nn.Module, stages: Optional[StageTable] = None) -> StageTable:
    """``stages``, else the stage table of the model's method."""
    if stages is not None:
        return stages
    method = getattr(model, "method", None)
    if method is None:
        raise UnknownStageError(f"{type(model).__name__} has no method; pass a stage table")
    return method.stage_table()


def stage_patterns(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
                   extra: Iterable[str] = ()) -> list[str]:
    """The patterns that train in ``stage`` (table entry + ``extra`` + graph-token rows if enabled)."""
    table = stage_table(model, stages)
    if stage not in table:
        method = getattr(getattr(model, "method", None), "name", None)
        raise UnknownStageError(f"unknown stage {stage!r}{f' of method {method!r}' if method else ''}; "
                                f"known: {sorted(table)}")
    patterns = list(table[stage]) + list(extra)
    if getattr(model, "train_graph_token_rows", False):
        patterns.append(GRAPH_TOKEN_ROWS)
    return patterns + tuning_of(model).patterns(stage)


def stage_parameter_names(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
                          extra: Iterable[str] = ()) -> list[str]:
    """Names of the parameters that train in ``stage``, in ``named_parameters`` order."""
    patterns = stage_patterns(model, stage, stages, extra)
    all_names = [n for n, _ in model.named_parameters()]
    unmatched = [p for p in extra if not any(fnmatch(n, p) for n in all_names)]
    if unmatched:
        method = getattr(getattr(model, "method", None), "name", None)
        raise UnknownStageError(f"model.stage_extra: {unmatched} match no parameter"
                                f"{f' of method {method!r}' if method else ''} (parameters: "
                                f"{sorted({n.split('.')[0] for n in all_names if not n.startswith('llm.')})})")
    names = [n for n in all_names if any(fnmatch(n, p) for p in patterns)]
    tuning = tuning_of(model)
    llm = [n for n in names if n.startswith("llm.") and not tuning.allows(n)]
    if llm:
        raise FrozenLLMError(f"stage {stage!r} would train LLM parameters (e.g. {llm[:3]}) that model.llm.tuning="
                             f"{tuning.mode} keeps frozen")
    if not names:
        raise UnknownStageError(f"stage {stage!r}: patterns {patterns} match no parameter")
    return names


def set_stage(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
              extra: Iterable[str] = ()) -> list[str]:
    """Set ``requires_grad`` for ``stage`` (everything else, the LLM included, frozen); return the trained names."""
    names = set(stage_parameter_names(model, stage, stages, extra))
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return [n for n, _ in model.named_parameters() if n in names]


@dataclass(frozen=True)
class ParameterCount:
    """One row of :func:`trainable_parameters`: a module, its trainable and total parameter counts."""

    module: str
    trainable: int
    total: int


def _module_of(name: str, groups: Sequence[str] = ()) -> str:
    """The row of a parameter: the longest group prefix it falls under, else its first name component."""
    hits = [g for g in groups if name.startswith(g + ".")]
    return max(hits, key=len) if hits else name.split(".")[0]


def trainable_parameters(model: nn.Module, stage: Optional[str] = None, stages: Optional[StageTable] = None,
                         extra: Iterable[str] = ()) -> list[ParameterCount]:
    """Per-module counts of trainable parameters for ``stage`` (or the current ``requires_grad`` if ``None``).

    Rows: one per top-level module (GraphLAMA: ``encoder``, ``hop``, ``gate.task_related``,
    ``gate.task_invariant``, ``gate`` (m_inv, α), ``projector``; the method's ``parameter_groups``
    split a module), ``graph_token_embeddings``, ``llm``, then ``total``. Counts unique tensors
    once (tied embeddings).
    """
    trained = set(stage_parameter_names(model, stage, stages, extra)) if stage else None
    groups = getattr(getattr(model, "method", None), "parameter_groups", ())
    rows: dict[str, list[int]] = {}
    for n, p in model.named_parameters():
        row = rows.setdefault(_module_of(n, groups), [0, 0])
        is_trained = (n in trained) if trained is not None else p.requires_grad
        numel = _logical_numel(p)
        row[0] += numel if is_trained else 0
        row[1] += numel
    out = [ParameterCount(m, t, tot) for m, (t, tot) in rows.items()]
    out.append(ParameterCount("total", sum(r.trainable for r in out), sum(r.total for r in out)))
    return out


def _logical_numel(p: nn.Parameter) -> int:
    """Weights of a parameter; a 4-bit one (bitsandbytes packs two per byte) counts its unpacked shape."""
    state = getattr(p, "quant_state", None)
    return int(state.shape.numel()) if state is not None and hasattr(state, "shape") else p.numel()


def format_parameter_table(rows: Sequence[ParameterCount]) -> str:
    """A fixed-width text table of :func:`trainable_parameters` rows."""
    width = max(len(r.module) for r in rows)
    lines = [f"{'module':<{width}}  {'trainable':>12}  {'total':>14}"]
    lines += [f"{r.module:<{width}}  {r.trainable:>12,}  {r.total:>14,}" for r in rows]
    return "\n".join(lines)
