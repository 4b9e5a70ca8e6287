"""``training.report_to``: the scalars of ``trainer_log.jsonl`` sent to TensorBoard or Weights & Biases.

HF ``TrainingArguments.report_to``'s names and values: ``none`` (the default here), ``tensorboard``,
``wandb``, or a list of them. Each log record's numeric fields (``loss``, ``lr``, ``grad_norm``,
``eval_accuracy``, ``rss_mb``, ...) become scalars at ``current_steps``, under HF's ``train/`` and
``eval/`` prefixes. Only rank 0 reports.

* ``tensorboard``: event files in ``output_dir/runs`` (``tensorboard --logdir RUN/runs``), written by
  ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package: ``pip install
  'graph-glm[report]'``). A resumed run appends a new event file; steps continue.
* ``wandb``: ``wandb.init(project=$WANDB_PROJECT or "glm", name=<output folder>, dir=output_dir,
  config=<the run config>)``; ``WANDB_MODE=offline`` keeps everything in ``output_dir/wandb`` for a later
  ``wandb sync`` (no network is touched then).

A missing package is a one-line error before any model is built (:func:`check_available`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Protocol

from glm.core.config_rules import missing_reporter, report_targets as targets
from glm.errors import GlmError

_NOT_SCALARS = {"current_steps", "total_steps", "epoch_samples"}


class ReportError(GlmError, RuntimeError):
    """A reporter's package is missing or it could not start."""


def check_available(report_to: Any) -> None:
    """Raise :class:`ReportError` in one line when a chosen reporter's package is not installed."""
    problem = missing_reporter(report_to)
    if problem:
        raise ReportError(problem)


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric fields under HF's ``train/`` / ``eval/`` prefixes."""
    out = {}
    for key, value in record.items():
        if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"] = float(value)
    return out


class Reporter(Protocol):
    def log(self, values: dict[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class TensorBoardReporter:
    def __init__(self, output_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(output_dir / "runs"))

    def log(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    def __init__(self, output_dir: Path, config: Optional[dict[str, Any]]) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "glm"), name=output_dir.name,
                              dir=str(output_dir), config=config or {}, reinit="finish_previous")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Reporters:
    """Every reporter of ``report_to``; a no-op when ``enabled`` is false (ranks other than 0)."""

    def __init__(self, report_to: Any, output_dir: str | os.PathLike, config: Optional[dict[str, Any]] = None,
                 enabled: bool = True) -> None:
        self.items: list[Reporter] = []
        if not enabled:
            return
        check_available(report_to)
        out = Path(output_dir)
        for name in targets(report_to):
            self.items.append(TensorBoardReporter(out) if name == "tensorboard" else WandbReporter(out, config))

    def log(self, record: dict[str, Any]) -> None:
        if self.items:
            values, step = scalars(record), int(record["current_steps"])
            for r in self.items:
                r.log(values, step)

    def close(self) -> None:
        for r in self.items:
            r.close()
        self.items = []

