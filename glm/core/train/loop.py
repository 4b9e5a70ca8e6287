"""The training loop: one DeepSpeed engine for both stages, on CPU (gloo) or GPU (NCCL).

:class:`Trainer` takes a model whose ``forward(GraphBatch)`` returns an object with
``.loss`` and whose trainable parameters are the ones with ``requires_grad`` (the stage
selection of :mod:`glm.core.stages` sets them); only those go to the optimizer and into
checkpoints. Data order is a seeded permutation per epoch, derived from
``training.seed`` and the micro-batch counter stored in ``trainer_state.json``, so a
resumed run sees exactly the batches an uninterrupted run would have seen.

Distributed runs use DeepSpeed's own launcher (``deepspeed --num_gpus 2 -m glm.cli.main
pretrain cfg.yaml``, or ``--hostfile`` for several nodes) or ``torchrun``; without a
launcher the process sets single-process defaults (``RANK=0``, ``WORLD_SIZE=1``, a free
``MASTER_PORT``, ``LOCAL_SIZE=1``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from glm.core.config import TrainingConfig, save_config
from glm.core.train.arguments import Recipe, RunRecord
from glm.core.io import atomic_path
from glm.core.train import checkpoint as ckpt
from glm.core.train.callbacks import (HealthCallback, ReportCallback, TrainerCallback, TrainerControl, TrainerState,
                                      ValidationCallback)
from glm.core.train.dist import DistInfo, own_process_group
from glm.core.train.ds_compat import exclude_tied_frozen, offload_optimizer_fallback
from glm.core.recipe import RecipeError, load_recipe, recipe_hints, zero_stage
from glm.core.train.dsconfig import resolve_recipe
from glm.core.train.log import TrainLogger
from glm.core.train.log import logger as train_logger
from glm.core.train.log import peak_rss_mb, rank0_info, truncate_log
from glm.core.train.outdir import RunDirectory
from glm.core.train.preempt import Preemption, TrainingTerminated
from glm.core.stages import check_lr_groups, lr_group_of
from glm.core.tuning import PEFT_CONFIG_FILE
from glm.errors import GlmError


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGINT during training; the message says where and how to resume (exit code 130)."""


class TrainingError(GlmError, RuntimeError):
    """The run cannot start (no trainable parameters, too little data, ...)."""


# -- process set-up -------------------------------------------------------------------------


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# -- schedule -------------------------------------------------------------------------------


def lr_lambda(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """HF-style multiplier: linear warm-up, then ``cosine`` / ``linear`` decay or ``constant``."""

    def fn(step: int) -> float:
        if step < warmup:
            return float(step + 1) / float(max(1, warmup + 1)) if warmup else 1.0
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return fn


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    final_loss: Optional[float]
    train_seconds: float
    peak_rss_mb: float
    log_history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: Optional[Path] = None
    trainable_params: int = 0


class Trainer:
    """Train ``model`` on ``dataset`` with DeepSpeed.

    Args:
        training: the ``training`` section (stage, optimisation, schedule, logging, checkpoints, output_dir, resume).
        recipe: how the optimisation runs (:class:`~glm.core.train.arguments.Recipe`: the DeepSpeed recipe,
            the LLM's own rate, gradient checkpointing).
        model: ``forward(GraphBatch) -> output with .loss``; trainable = ``requires_grad``.
        dataset: indexable samples (e.g. ``list[Sample]``).
        collate_fn: ``list[sample] -> GraphBatch``.
        progress: show a tqdm bar on rank 0.
        hidden_size: LLM hidden size, used to fill ZeRO bucket sizes.
        validator: ``(module, place) -> {"eval_accuracy", "eval_loss", ...}`` (``place`` moves a batch to the
            engine's device and dtype), run every
            ``training.eval_steps`` steps and at the end (:class:`glm.core.train.validation.Validator`).
        warmup: ``warmup(run_dir)`` run once before the engine is built, on a fresh run only (a resumed
            run's checkpoint already holds its result), e.g. the alignment warm-up of
            :mod:`glm.core.train.align`; every rank runs it, only rank 0 gets the run directory to write to.
        callbacks: :class:`~glm.core.train.callbacks.TrainerCallback` s called after the built-in ones
            (health, validation, reporting).
        record: what the run writes beside its checkpoints (:class:`~glm.core.train.arguments.RunRecord`:
            the whole configuration, the adapter's metadata); default: the training section and recipe only.
    """

    def __init__(self, training: TrainingConfig, recipe: Recipe, model: torch.nn.Module, dataset: Sequence[Any],
                 collate_fn: Callable[[list[Any]], Any], progress: bool = True,
                 hidden_size: Optional[int] = None, validator: Optional[Callable[..., dict[str, float]]] = None,
                 warmup: Optional[Callable[[Optional[Path]], Any]] = None,
                 callbacks: Sequence[TrainerCallback] = (), record: Optional[RunRecord] = None) -> None:
        self.training, self.recipe = training.validate("<trainer>"), recipe  # a section built in Python too
        self.record = record if record is not None else RunRecord.bare(training, recipe)
        self.model = model
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.progress = progress
        self.hidden_size = hidden_size
        self.validator = validator
        self.warmup = warmup
        self.extra_callbacks = list(callbacks)
        self.callbacks: list[TrainerCallback] = []

    def _builtin_callbacks(self, engine: Any, input_dtype: Any, zero: int, out: Path,
                           dist: DistInfo) -> list[TrainerCallback]:
        """Health always; validation when there is a validator and ``training.eval_steps`` > 0; reporting."""
        t = self.training
        found: list[TrainerCallback] = [HealthCallback(self.model, partitioned=zero > 0)]
        if self.validator is not None and t.eval_steps > 0:
            found.append(ValidationCallback(self.validator, lambda b: to_engine(b, engine.device, input_dtype),
                                            t.eval_steps, t.metric_for_best_model, t.load_best_model_at_end,
                                            t.early_stopping_patience))
        found.append(ReportCallback(t.report_to, out, self.record.config, dist.rank == 0))
        return found

    # -- data order ---------------------------------------------------------------------
    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.training.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def _micro_batch(self, index: int, per_epoch: int, dist: DistInfo) -> list[Any]:
        epoch, pos = divmod(index, per_epoch)
        if self._perm_epoch != epoch:
            self._perm, self._perm_epoch = self._permutation(epoch), epoch
        mb = self.training.micro_batch_size
        start = (pos * dist.world_size + dist.rank) * mb
        return [self.dataset[i] for i in self._perm[start:start + mb]]

    # -- main -----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run the whole stage; the output directory is locked throughout and rolled back (previous
        run restored, new files removed) if the run fails before its first checkpoint."""
        zero3 = lambda: any(hasattr(p, "ds_id") for p in self.model.parameters())  # noqa: E731
        with own_process_group(keep=zero3) as dist:
            t = self.training
            resume = ckpt.resolve_resume(t.resume, t.output_dir)
            if resume is not None:
                ckpt.check_resume_config(resume, self.record.config, t.resume_anyway)
            with RunDirectory(t, resume, dist.rank, dist.world_size) as run_dir:
                self._run_dir = run_dir
                return self._train(dist, resume, run_dir.path)

    def _train(self, dist: DistInfo, resume: Optional[Path], out: Path) -> TrainResult:
        import deepspeed
        import torch.distributed as tdist

        t, recipe = self.training, self.recipe
        if dist.rank == 0 and resume is None:  # a resume writes it once its checkpoint has loaded
            save_config(self.record, out)
            truncate_log(out, 0)  # `--resume` that found no checkpoint starts a log of its own

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise TrainingError("the model has no trainable parameters (check the stage selection)")
        n_trainable = sum(p.numel() for p in trainable)
        n_total = sum(p.numel() for p in self.model.parameters())

        per_epoch = len(self.dataset) // (t.micro_batch_size * dist.world_size)
        if per_epoch == 0:
            raise TrainingError(
                f"{len(self.dataset)} training samples are fewer than one micro-batch per rank"
                f" ({t.micro_batch_size} x {dist.world_size} ranks)"
            )
        accum = t.gradient_accumulation_steps
        total = t.max_steps if t.max_steps > 0 else math.ceil(t.num_epochs * per_epoch / accum)
        warmup = t.warmup_steps if t.warmup_steps > 0 else math.ceil(t.warmup_ratio * total)

        recipe_raw, _ = load_recipe(recipe.name)
        hints = recipe_hints(recipe_raw)
        ds_config = resolve_recipe(recipe.name, t, dist.world_size, dist.device.type, self.hidden_size)
        if (recipe.gradient_checkpointing or hints.get("gradient_checkpointing")) \
                and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()

        if resume is None and self.warmup is not None:
            self.warmup(out if dist.rank == 0 else None)  # before DeepSpeed wraps (and may partition) the parameters
        schedule = lr_lambda(t.lr_scheduler, warmup, total)
        stage = zero_stage(ds_config)
        problem = offload_optimizer_fallback(ds_config)
        if problem and dist.rank == 0:
            train_logger.warning("optimizer offload uses torch AdamW instead of DeepSpeedCPUAdam (slower steps): %s",
                                 problem)
        groups = parameter_groups(self.model, recipe.llm_learning_rate, t.lr_groups)
        try:  # (a bad lr_groups pattern is named above, not blamed on the recipe)
            engine, _, _, scheduler = deepspeed.initialize(
                model=self.model,
                model_parameters=groups,
                config=ds_config,
                lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                dist_init_required=False,
            )
        except (AssertionError, ValueError, KeyError) as exc:  # DeepSpeed's own config checks
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise RecipeError(f"DeepSpeed rejected the recipe {recipe.name!r}: {detail[:400]}") from None
        exclude_tied_frozen(engine)  # checkpoints never hold the frozen LLM, a tied LM head included

        # DeepSpeed casts the module to bf16/fp16 but not the inputs (node features are float32)
        input_dtype = _engine_dtype(engine)
        rank0_info("training %s: %d samples, %d steps (%d micro-batches/epoch/rank, accumulation %d, %d rank(s)),"
                   " %s trainable of %s parameters, recipe %s (ZeRO-%d)", t.stage, len(self.dataset), total,
                   per_epoch, accum, dist.world_size, f"{n_trainable:,}", f"{n_total:,}", recipe.name, stage)

        state: dict[str, Any] = {"log_history": []}
        start_step = 0
        if resume is not None:
            state = ckpt.load_checkpoint(engine, resume, dist.rank, dist.world_size)
            start_step = int(state["global_step"])
            if dist.rank == 0:
                truncate_log(out, start_step)
                save_config(self.record, out)
            rank0_info("resumed from %s (step %d)", resume, start_step)

        self._perm, self._perm_epoch = [], -1
        logger = TrainLogger(out, total, start_step, enabled=dist.rank == 0, progress=self.progress, desc=t.stage)
        history: list[dict[str, Any]] = list(state.get("log_history", []))
        run = TrainerState(start_step, total, out, dist.rank, history=history)
        callbacks = self.callbacks = [*self._builtin_callbacks(engine, input_dtype, stage, out, dist),
                                      *self.extra_callbacks]
        for cb in callbacks:
            cb.on_train_begin(run, engine, state if resume is not None else None)
        engine.train()
        t0 = time.perf_counter()
        window_loss, window_steps, window_samples, window_t = 0.0, 0, 0, t0
        last_loss: Optional[float] = None
        step = start_step
        preemption = Preemption().__enter__()
        try:
            for step in range(start_step + 1, total + 1):
                # the rate this step applies (the scheduler moves on inside engine.step): what the log shows
                step_lr = scheduler.get_last_lr()[0] if scheduler is not None else t.learning_rate
                step_loss = 0.0
                run.step, run.grad_norm = step, None
                for k in range(accum):
                    micro_index = (step - 1) * accum + k
                    batch = self.collate_fn(self._micro_batch(micro_index, per_epoch, dist))
                    batch = to_engine(batch, engine.device, input_dtype)
                    loss = engine(batch).loss
                    engine.backward(loss)
                    if k == accum - 1:
                        for cb in callbacks:
                            cb.on_pre_optimizer_step(run, engine)
                    engine.step()
                    step_loss += float(loss.detach()) / accum
                grad_norm = run.grad_norm
                if grad_norm is None:
                    gn = engine.get_global_grad_norm()
                    grad_norm = float(gn) if gn is not None else None
                terminate = preemption.requested
                if dist.world_size > 1:  # mean loss over ranks (for the log), and whether any rank got SIGTERM
                    buf = torch.tensor([step_loss, float(terminate)], dtype=torch.float64)
                    tdist.all_reduce(buf)
                    step_loss, terminate = float(buf[0]) / dist.world_size, bool(buf[1] > 0)
                last_loss = step_loss
                window_loss += step_loss
                window_steps += 1
                window_samples += accum * t.micro_batch_size * dist.world_size
                logger.update(1, step_loss)
                control = TrainerControl()
                for cb in callbacks:
                    cb.on_step_end(run, engine, control)
                stop = control.should_stop

                if step % t.logging_steps == 0 or step == total or control.should_log:
                    now = time.perf_counter()
                    record = {
                        "current_steps": step,
                        "epoch": round(step * accum / per_epoch, 4),
                        "loss": window_loss / window_steps,
                        "lr": step_lr,
                        "grad_norm": grad_norm,
                        "throughput": round(window_samples / max(now - window_t, 1e-9), 3),
                    }
                    for cb in callbacks:
                        record.update(cb.log_fields(run))
                    record = logger.log(record, now - t0, step - start_step)
                    history.append(record)
                    if dist.rank == 0:
                        for cb in callbacks:
                            cb.on_log(run, record)
                    window_loss, window_steps, window_samples, window_t = 0.0, 0, 0, now

                if (t.save_steps and step % t.save_steps == 0) or step == total or control.should_save or terminate:
                    self._save(engine, out, step, total, per_epoch, history, dist)
                if terminate:
                    raise TrainingTerminated(f"terminated (SIGTERM) at step {step} of {total}; saved "
                                             f"{ckpt.CHECKPOINT_PREFIX}{step}; resume with --resume")
                if stop:
                    break
        except KeyboardInterrupt:
            if dist.rank == 0:
                for tmp in out.glob(f"{ckpt.CHECKPOINT_PREFIX}*.tmp"):  # a save cut short
                    shutil.rmtree(tmp, ignore_errors=True)
            last = ckpt.latest_checkpoint(out)
            if last is not None:  # complete (renamed into place) even when the interrupt came before commit()
                self._run_dir.commit()
            where = (f"resume with --resume (from {last.name})" if last is not None
                     else "no checkpoint was written, nothing of this run is kept")
            raise TrainingInterrupted(f"interrupted at step {step}; {where}") from None
        finally:
            preemption.__exit__()
            logger.close()
            for cb in callbacks:
                cb.close()
        run.step = step
        if any([cb.on_train_end(run, engine) for cb in callbacks]):  # (every callback's end runs)
            self._save(engine, out, step, total, per_epoch, history, dist, loaded_best=True)
        elapsed = time.perf_counter() - t0
        if dist.rank == 0:
            _publish_final(out, step)
        rank0_info("done: %d steps in %.1f s, final loss %s, peak RSS %.0f MiB", step - start_step, elapsed,
                   f"{last_loss:.4f}" if last_loss is not None else "n/a", peak_rss_mb())
        return TrainResult(out, step, last_loss, elapsed, peak_rss_mb(), history, resume, n_trainable)

    def _save(self, engine, out: Path, step: int, total: int, per_epoch: int,
              history: list[dict[str, Any]], dist: DistInfo, loaded_best: bool = False) -> Path:
        t = self.training
        state = {
            "epoch": step * t.gradient_accumulation_steps / per_epoch,
            "max_steps": total,
            "logging_steps": t.logging_steps,
            "save_steps": t.save_steps,
            "train_batch_size": t.micro_batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation_steps,
            "stage": t.stage,
            "log_history": history,
            "data_order": {"seed": t.seed, "micro_batches_per_epoch": per_epoch,
                           "consumed_micro_batches": step * t.gradient_accumulation_steps,
                           "num_samples": len(self.dataset)},
            **{k: v for cb in self.callbacks for k, v in cb.state_fields().items()},
            **({"loaded_best_model_at_end": True} if loaded_best else {}),
        }
        record = self.record
        saved = ckpt.save_checkpoint(engine, out, step, state, record.to_yaml(), dist.rank,
                                     dist.world_size, t.save_total_limit, dict(record.adapter_metadata), t.stage,
                                     record.stage_extra)
        self._run_dir.commit()
        return saved


def parameter_groups(model: torch.nn.Module, llm_lr: Optional[float],
                     lr_groups: Optional[dict[str, float]] = None) -> list[Any]:
    """The trainable parameters in optimizer groups: one per ``training.lr_groups`` pattern (graph-side
    parameters, first matching pattern wins) and, with ``model.llm.learning_rate`` set, the LLM's (LoRA,
    last layers) at that rate; the rest at ``training.learning_rate``. The schedule scales every group alike."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    check_lr_groups([n for n, _ in named], lr_groups)
    groups: dict[Optional[str], list[torch.nn.Parameter]] = {}
    for n, p in named:
        key = ("llm." if llm_lr is not None else None) if n.startswith("llm.") else lr_group_of(n, lr_groups)
        groups.setdefault(key, []).append(p)
    if set(groups) <= {None}:
        return [p for _, p in named]
    rates = {**(lr_groups or {}), "llm.": llm_lr}
    order = [None, *(lr_groups or {}), "llm."]  # the default group first, the LLM's last, as before lr_groups
    return [{"params": groups[k]} if k is None else {"params": groups[k], "lr": float(rates[k])}
            for k in order if k in groups]


def _engine_dtype(engine) -> Optional[torch.dtype]:
    if getattr(engine, "bfloat16_enabled", lambda: False)():
        return torch.bfloat16
    if getattr(engine, "fp16_enabled", lambda: False)():
        return torch.float16
    return None


def to_engine(batch: Any, device: torch.device, dtype: Optional[torch.dtype] = None) -> Any:
    """Move ``batch`` (tensors, dataclasses such as GraphBatch, lists, dicts) to ``device``;
    floating tensors are cast to ``dtype`` when given (the engine's bf16/fp16), as HF's
    Trainer does for DeepSpeed inputs. Integer tensors (ids, masks, edges) keep their dtype."""
    if isinstance(batch, torch.Tensor):
        if dtype is not None and batch.is_floating_point():
            return batch.to(device, dtype)
        return batch.to(device)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {}
        for f in dataclasses.fields(batch):
            value = getattr(batch, f.name)
            if f.init and (isinstance(value, (torch.Tensor, list, tuple, dict)) or dataclasses.is_dataclass(value)):
                changes[f.name] = to_engine(value, device, dtype)
        return dataclasses.replace(batch, **changes)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_engine(b, device, dtype) for b in batch)
    if isinstance(batch, dict):
        return {k: to_engine(v, device, dtype) for k, v in batch.items()}
    return batch


def _publish_final(out: Path, step: int) -> None:
    """Copy the final adapter and trainer state to ``output_dir`` (HF puts the final model there)."""
    final = out / f"{ckpt.CHECKPOINT_PREFIX}{step}"
    for name in (ckpt.ADAPTER_FILE, ckpt.TRAINER_STATE, PEFT_CONFIG_FILE):
        src = final / name
        if src.is_file():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(src, tmp)
