"""Trainer callbacks (HF ``TrainerCallback``'s idea): what the loop does besides stepping the optimizer.

The loop (:class:`glm.core.train.loop.Trainer`) steps, logs and saves; every other concern is a
callback it calls at fixed points, in list order:

* :class:`HealthCallback`: per-group gradient norms before the optimizer step, update ratios and
  activation statistics in each log record, warnings on exploding / vanishing values;
* :class:`ValidationCallback`: scores the validation nodes every ``training.eval_steps`` steps, keeps the
  best evaluation, stops early (``training.early_stopping_patience``) and restores the best tensors at the
  end (``training.load_best_model_at_end``);
* :class:`ReportCallback`: sends each log record to TensorBoard / W&B (``training.report_to``).

Hooks (every one optional): ``on_train_begin(state, engine, resumed)`` after the engine is built
(``resumed``: the checkpoint's trainer state, or ``None``); ``on_pre_optimizer_step(state, engine)`` after the
last micro-batch's backward; ``on_step_end(state, engine, control)`` after the step (set ``control``'s
flags); ``log_fields(state)`` -> fields of this step's log record; ``on_log(state, record)`` with the
written record; ``state_fields()`` -> fields of ``trainer_state.json``; ``on_train_end(state, engine)`` ->
``True`` when the final adapter must be saved again; ``close()`` always, also after an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from glm.core.train.log import rank0_info


@dataclass
class TrainerState:
    """What callbacks see of the run (HF's ``TrainerState``, in glm's terms)."""

    step: int
    total: int
    output_dir: Path
    rank: int = 0
    grad_norm: Optional[float] = None  # of this step, when a callback measured it
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainerControl:
    """Flags a callback sets in ``on_step_end`` for the rest of this step (HF's ``TrainerControl``)."""

    should_log: bool = False
    should_save: bool = False
    should_stop: bool = False


class TrainerCallback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, state: TrainerState, engine: Any, resumed: Optional[dict[str, Any]]) -> None:
        pass

    def on_pre_optimizer_step(self, state: TrainerState, engine: Any) -> None:
        pass

    def on_step_end(self, state: TrainerState, engine: Any, control: TrainerControl) -> None:
        pass

    def log_fields(self, state: TrainerState) -> dict[str, Any]:
        return {}

    def on_log(self, state: TrainerState, record: dict[str, Any]) -> None:
        pass

    def state_fields(self) -> dict[str, Any]:
        return {}

    def on_train_end(self, state: TrainerState, engine: Any) -> bool:
        return False

    def close(self) -> None:
        pass


class HealthCallback(TrainerCallback):
    """:class:`glm.core.train.health.TrainingHealth` on the model: gradient norms per parameter group
    (``partitioned``: ZeRO-1/2/3 shards, all-reduced), update ratios and activations per log record."""

    def __init__(self, model: Any, partitioned: bool) -> None:
        from glm.core.train.health import TrainingHealth

        self.health, self.partitioned, self.group_norms = TrainingHealth(model), partitioned, None

    def on_pre_optimizer_step(self, state: TrainerState, engine: Any) -> None:
        from glm.core.train.health import total_norm

        self.group_norms = self.health.grad_norms(partitioned=self.partitioned)
        state.grad_norm = total_norm(self.group_norms)

    def on_step_end(self, state: TrainerState, engine: Any, control: TrainerControl) -> None:
        self.health.observe(self.group_norms)

    def log_fields(self, state: TrainerState) -> dict[str, Any]:
        return self.health.record()

    def close(self) -> None:
        self.health.close()


class ValidationCallback(TrainerCallback):
    """Validation every ``eval_steps`` steps and at the last one, with HF's best-model options.

    Args:
        validator: ``(module, place) -> {"eval_accuracy", "eval_loss", ...}``
            (:class:`glm.core.train.validation.Validator`).
        place: moves a batch to the engine's device and dtype.
    """

    def __init__(self, validator: Callable[..., dict[str, Any]], place: Callable[[Any], Any], eval_steps: int,
                 metric: str, load_best_at_end: bool, patience: Optional[int]) -> None:
        from glm.core.train.validation import BestTracker

        self.validator, self.place, self.eval_steps, self.patience = validator, place, eval_steps, patience
        self.load_best_at_end = load_best_at_end
        self.tracker = BestTracker(metric, load_best_at_end)
        self.evaluated: dict[str, Any] = {}

    def on_train_begin(self, state: TrainerState, engine: Any, resumed: Optional[dict[str, Any]]) -> None:
        if resumed is not None:
            self.tracker.load_state(resumed, state.output_dir)

    def on_step_end(self, state: TrainerState, engine: Any, control: TrainerControl) -> None:
        if state.step % self.eval_steps == 0 or state.step == state.total:
            self.evaluated = self.validator(engine.module, self.place)
            self.evaluated["is_best"] = self.tracker.update(state.step, self.evaluated, engine)
            engine.train()
            control.should_log = True
        if self.tracker.should_stop(self.patience):
            control.should_stop = control.should_save = True
            t = self.tracker
            rank0_info("early stopping at step %d: %s has not improved for %d evaluations (best %.4f at step %d)",
                       state.step, t.metric, t.since_best, t.best, t.best_step)

    def log_fields(self, state: TrainerState) -> dict[str, Any]:
        fields, self.evaluated = self.evaluated, {}
        return fields

    def state_fields(self) -> dict[str, Any]:
        return self.tracker.state()

    def on_train_end(self, state: TrainerState, engine: Any) -> bool:
        t = self.tracker
        if not self.load_best_at_end or t.best_step in (None, state.step) or not t.restore(engine):
            return False
        rank0_info("loaded the best model at the end: %s %.4f at step %d", t.metric, t.best, t.best_step)
        return True  # the final adapter holds the best evaluation's tensors


class ReportCallback(TrainerCallback):
    """Each written log record's scalars to ``report_to`` (rank 0 only; :mod:`glm.core.train.report`)."""

    def __init__(self, report_to: Any, output_dir: Path, config: dict[str, Any], enabled: bool) -> None:
        from glm.core.train.report import Reporters

        self.reporters = Reporters(report_to, output_dir, config, enabled)

    def on_log(self, state: TrainerState, record: dict[str, Any]) -> None:
        self.reporters.log(record)

    def close(self) -> None:
        self.reporters.close()
