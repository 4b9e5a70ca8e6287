"""Validation while training (HF ``Trainer`` names): ``training.eval_steps``, ``eval.val_samples``,
``training.metric_for_best_model``, ``training.load_best_model_at_end``, ``training.early_stopping_patience``.

:class:`Validator` scores sampled validation nodes by choice scoring (``glm eval``'s rule, batched)
and returns ``eval_accuracy`` and ``eval_loss`` (cross-entropy of the softmax over the candidates'
scores: the ``choice`` training loss on validation nodes). :class:`BestTracker` keeps the best
evaluation, a copy of the trainable tensors at it (when the best model is loaded at the end), and the
evaluations since; its state goes into ``trainer_state.json`` (``best_metric``, ``best_global_step``).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from glm.core.train.log import logger


class _OnDevice:
    """A collator whose batches go through ``place`` (the engine's device and dtype; ``encode`` passed through)."""

    def __init__(self, collate: Callable, place: Callable[[Any], Any]) -> None:
        self.collate, self.place = collate, place

    def __call__(self, samples: list) -> Any:
        return self.place(self.collate(samples))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collate, name)


class Validator:
    """Choice-scored accuracy and loss of a model on fixed validation samples.

    Args:
        samples: node-classification samples of the validation nodes (with ``meta["choices"]``).
        train_collate, infer_collate: the run's collators (right / left padding).
        batch_size: samples per forward (``eval.batch_size``).
    """

    def __init__(self, samples: Sequence[Any], train_collate: Callable, infer_collate: Callable,
                 batch_size: int = 8) -> None:
        self.samples, self.batch_size = list(samples), batch_size
        self.train_collate, self.infer_collate = train_collate, infer_collate

    def __call__(self, model: torch.nn.Module, place: Callable[[Any], Any] = lambda batch: batch) -> dict[str, float]:
        """Scores of ``model``; ``place`` puts a batch where the model is (the trainer: device and dtype)."""
        from glm.core.eval.predict import evaluate

        t0 = time.perf_counter()
        result = evaluate(model, self.samples, _OnDevice(self.train_collate, place),
                          _OnDevice(self.infer_collate, place), "choice", batch_size=self.batch_size)
        losses = [_choice_loss(p.scores, p.label) for p in result.predictions if p.scores]
        return {"eval_accuracy": result.accuracy, "eval_loss": sum(losses) / len(losses) if losses else float("nan"),
                "eval_samples": len(self.samples), "eval_seconds": round(time.perf_counter() - t0, 3)}


def _choice_loss(scores: dict[str, float], label: str) -> float:
    """``-log softmax(scores)[label]``."""
    top = max(scores.values())
    return top + math.log(sum(math.exp(v - top) for v in scores.values())) - scores[label]


class BestTracker:
    """The best evaluation so far by ``metric`` (``eval_accuracy``: higher is better; ``eval_loss``: lower)."""

    def __init__(self, metric: str = "eval_accuracy", keep_tensors: bool = False) -> None:
        self.metric, self.keep_tensors = metric, keep_tensors
        self.greater = metric != "eval_loss"
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self.since_best = 0
        self.tensors: Optional[dict[str, torch.Tensor]] = None

    def update(self, step: int, metrics: dict[str, float], engine: Any) -> bool:
        """Record an evaluation; return whether it is the best so far (ties keep the earlier one)."""
        value = metrics.get(self.metric)
        if value is None or math.isnan(value):
            self.since_best += 1
            return False
        if self.best is None or (value > self.best if self.greater else value < self.best):
            self.best, self.best_step, self.since_best = float(value), step, 0
            if self.keep_tensors:
                from glm.core.train.checkpoint import trainable_state_dict

                self.tensors = trainable_state_dict(engine)
            return True
        self.since_best += 1
        return False

    def should_stop(self, patience: Optional[int]) -> bool:
        return patience is not None and self.best is not None and self.since_best >= patience

    def state(self) -> dict[str, Any]:
        """Fields of ``trainer_state.json``."""
        return {"metric_for_best_model": self.metric, "best_metric": self.best, "best_global_step": self.best_step,
                "evaluations_since_best": self.since_best}

    def load_state(self, state: dict[str, Any], run_dir: Path) -> None:
        """Continue from a checkpoint's trainer state; the best tensors come from that step's checkpoint
        when it is still there (a warning otherwise: the last tensors will be kept)."""
        if state.get("metric_for_best_model") != self.metric or state.get("best_global_step") is None:
            return
        self.best, self.best_step = state.get("best_metric"), int(state["best_global_step"])
        self.since_best = int(state.get("evaluations_since_best", 0))
        if not self.keep_tensors:
            return
        from glm.core.adapter import read_adapter
        from glm.core.train.checkpoint import ADAPTER_FILE, CHECKPOINT_PREFIX
        from glm.core.tuning import from_saved_name

        path = run_dir / f"{CHECKPOINT_PREFIX}{self.best_step}" / ADAPTER_FILE
        if path.is_file():
            tensors, _ = read_adapter(path)
            self.tensors = {from_saved_name(k): v for k, v in tensors.items()}
        else:
            logger.warning("the best model (step %d) is no longer on disk (save_total_limit); "
                           "load_best_model_at_end will keep the last tensors", self.best_step)

    @torch.no_grad()
    def restore(self, engine: Any) -> bool:
        """Copy the best tensors back into the (engine's) module; ``False`` if there are none."""
        if not self.tensors:
            return False
        module = getattr(engine, "module", engine)
        named = {n: p for n, p in module.named_parameters() if n in self.tensors}
        gather: Any = contextlib.nullcontext()
        if any(hasattr(p, "ds_id") for p in named.values()):  # ZeRO-3: write through the gathered copies
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(named.values()), modifier_rank=0)
        with gather:
            for n, p in named.items():
                p.copy_(self.tensors[n].to(p.device, p.dtype))
        return True
