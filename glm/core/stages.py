"""Which parameters train in each stage, as a small declarative table, and how many there are.

Patterns are :func:`fnmatch` patterns over :class:`~glm.core.model.GraphLanguageModel`
parameter names. The LLM (``llm.*``) never trains: a stage whose pattern matches an LLM
parameter raises :class:`FrozenLLMError`. ``graph_token_embeddings`` (the three new token
rows) is added to every stage when ``GraphLAMAConfig.train_graph_token_rows`` is set.

Default table (spec §2, §7.5)::

    pretrain: encoder, hop table, both gate linears, m_inv, a_l, a_w, projector
    adapt:    task-related gate linear (incl. its hop columns), a_l, a_w, hop table

The official adaptation also trains ``m_inv`` (``gate.invariant_mask``); pass it in ``extra``
(or use ``"adapt_official"``) to reproduce that.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Iterable, Mapping, Optional, Sequence

from torch import nn

StageTable = Mapping[str, Sequence[str]]

DEFAULT_STAGES: dict[str, tuple[str, ...]] = {
    "pretrain": ("encoder.*", "hop.*", "gate.task_related.*", "gate.task_invariant.*", "gate.invariant_mask",
                 "gate.alpha_l", "gate.alpha_w", "projector.*"),
    "adapt": ("gate.task_related.*", "gate.alpha_l", "gate.alpha_w", "hop.*"),
    "adapt_official": ("gate.task_related.*", "gate.alpha_l", "gate.alpha_w", "gate.invariant_mask", "hop.*"),
}
GRAPH_TOKEN_ROWS = "graph_token_embeddings"


class UnknownStageError(KeyError):
    """The stage name is not in the stage table."""


class FrozenLLMError(ValueError):
    """A stage pattern would unfreeze a parameter of the LLM."""


def stage_patterns(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
                   extra: Iterable[str] = ()) -> list[str]:
    """The patterns that train in ``stage`` (table entry + ``extra`` + graph-token rows if enabled)."""
    table = DEFAULT_STAGES if stages is None else stages
    if stage not in table:
        raise UnknownStageError(f"unknown stage {stage!r}; known: {sorted(table)}")
    patterns = list(table[stage]) + list(extra)
    if getattr(getattr(model, "config", None), "train_graph_token_rows", False):
        patterns.append(GRAPH_TOKEN_ROWS)
    return patterns


def stage_parameter_names(model: nn.Module, stage: str, stages: Optional[StageTable] = None,
                          extra: Iterable[str] = ()) -> list[str]:
    """Names of the parameters that train in ``stage``, in ``named_parameters`` order."""
    patterns = stage_patterns(model, stage, stages, extra)
    names = [n for n, _ in model.named_parameters() if any(fnmatch(n, p) for p in patterns)]
    llm = [n for n in names if n.startswith("llm.")]
    if llm:
        raise FrozenLLMError(f"stage {stage!r} would train LLM parameters (e.g. {llm[:3]}); the LLM stays frozen")
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


def _module_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "gate" and len(parts) > 1 and parts[1] in ("task_related", "task_invariant"):
        return ".".join(parts[:2])
    return parts[0]


def trainable_parameters(model: nn.Module, stage: Optional[str] = None, stages: Optional[StageTable] = None,
                         extra: Iterable[str] = ()) -> list[ParameterCount]:
    """Per-module counts of trainable parameters for ``stage`` (or the current ``requires_grad`` if ``None``).

    Rows: ``encoder``, ``hop``, ``gate.task_related``, ``gate.task_invariant``, ``gate`` (m_inv, α),
    ``projector``, ``graph_token_embeddings``, ``llm``, then ``total``. Counts unique tensors once
    (tied embeddings).
    """
    trained = set(stage_parameter_names(model, stage, stages, extra)) if stage else None
    rows: dict[str, list[int]] = {}
    for n, p in model.named_parameters():
        row = rows.setdefault(_module_of(n), [0, 0])
        is_trained = (n in trained) if trained is not None else p.requires_grad
        row[0] += p.numel() if is_trained else 0
        row[1] += p.numel()
    out = [ParameterCount(m, t, tot) for m, (t, tot) in rows.items()]
    out.append(ParameterCount("total", sum(r.trainable for r in out), sum(r.total for r in out)))
    return out


def format_parameter_table(rows: Sequence[ParameterCount]) -> str:
    """A fixed-width text table of :func:`trainable_parameters` rows."""
    width = max(len(r.module) for r in rows)
    lines = [f"{'module':<{width}}  {'trainable':>12}  {'total':>14}"]
    lines += [f"{r.module:<{width}}  {r.trainable:>12,}  {r.total:>14,}" for r in rows]
    return "\n".join(lines)
