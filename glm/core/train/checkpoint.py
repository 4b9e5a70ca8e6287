"""Checkpoints in the Hugging Face layout, written atomically.

::

    output_dir/
      checkpoint-<step>/
        trainer_state.json          global_step, epoch, log_history, data order (HF names)
        adapter_model.safetensors   the trainable tensors only (never the frozen LLM; LoRA under PEFT's names)
        adapter_config.json         PEFT's LoRA config, only under model.llm.tuning=lora / qlora
        glm_config.yaml             the resolved run configuration
        rng_state.safetensors       python / numpy / torch RNG (rng_state_<rank>.safetensors with >1 rank;
                                    no pickle, see glm.core.safe_load)
        latest                      DeepSpeed's tag file
        global_step<step>/          DeepSpeed engine state: trainable module tensors
                                    (``exclude_frozen_parameters=True``), optimizer (ZeRO shards),
                                    LR scheduler

A checkpoint is first written to ``checkpoint-<step>.tmp`` and renamed with ``os.replace``
once every rank has finished, so a process killed while saving leaves only a ``.tmp``
folder, which :func:`list_checkpoints` ignores and the next save removes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from glm.core.safe_load import install_safe_deepspeed_loading, load_rng_state, save_rng_state
from glm.errors import GlmError

logger = logging.getLogger("glm.train")

CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
ADAPTER_FILE = "adapter_model.safetensors"


class CheckpointError(GlmError, RuntimeError):
    """A checkpoint is missing, incomplete or does not match the run."""


# -- discovery ------------------------------------------------------------------------------


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``output_dir`` as ``(step, path)``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _CHECKPOINT_RE.match(child.name)
        if m and child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Optional[Path]:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def latest_intact_checkpoint(output_dir: str | os.PathLike) -> Optional[Path]:
    """The newest checkpoint whose files match the sizes and hashes recorded when it was saved;
    newer damaged ones are skipped with a warning."""
    for _, path in reversed(list_checkpoints(output_dir)):
        problems = verify_checkpoint(path)
        if not problems:
            return path
        logger.warning("%s is damaged (%s); falling back to an older checkpoint", path, "; ".join(problems[:3]))
    return None


def resolve_resume(resume: Optional[str], output_dir: str | os.PathLike) -> Optional[Path]:
    """``None``/``"false"`` -> no resume; ``"latest"``/``"true"`` -> newest intact checkpoint
    of ``output_dir`` (``None`` if the folder holds none yet); a path -> that checkpoint (checked)."""
    if resume is None or str(resume).lower() in ("", "false", "no", "none"):
        return None
    if str(resume).lower() in ("latest", "true", "yes", "auto"):
        found = latest_intact_checkpoint(output_dir)
        if found is None:
            partial = sorted(p.name for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir())
            if partial:
                raise CheckpointError(
                    f"resume: {output_dir} holds no usable checkpoint ({', '.join(partial[:3])}: missing "
                    f"{TRAINER_STATE} or damaged); pass --overwrite to start again")
            logger.warning("resume: nothing to resume in %s; starting at step 0", output_dir)
        return found
    path = Path(resume)
    if path.is_dir() and not (path / TRAINER_STATE).is_file():
        inner = latest_intact_checkpoint(path)  # a run directory was given
        if inner is not None:
            return inner
    if not (path / TRAINER_STATE).is_file():
        raise CheckpointError(
            f"resume: {str(path)!r} is not a complete checkpoint (expected a folder with {TRAINER_STATE},"
            f" e.g. {Path(output_dir) / 'checkpoint-100'})"
        )
    problems = verify_checkpoint(path)
    if problems:
        raise CheckpointError(f"resume: {path} is damaged: {'; '.join(problems[:3])}")
    return path


# -- integrity ------------------------------------------------------------------------------


def file_manifest(folder: Path) -> dict[str, list[Any]]:
    """``{relative path: [size, sha256]}`` of every file in a checkpoint folder but the trainer state."""
    import hashlib

    out: dict[str, list[Any]] = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != TRAINER_STATE:
            digest = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            out[str(f.relative_to(folder))] = [f.stat().st_size, digest.hexdigest()]
    return out


def verify_checkpoint(checkpoint: str | os.PathLike) -> list[str]:
    """Differences between a checkpoint's files and the manifest saved with it (empty: intact;
    checkpoints written before manifests existed are taken as intact)."""
    path = Path(checkpoint)
    try:
        recorded = read_trainer_state(path).get("files")
    except CheckpointError as exc:
        return [str(exc)]
    if not recorded:
        return []
    actual = file_manifest(path)
    problems = []
    for name, (size, digest) in recorded.items():
        if name not in actual:
            problems.append(f"{name} is missing")
        elif actual[name][0] != size:
            problems.append(f"{name} has {actual[name][0]} bytes, {size} were saved")
        elif actual[name][1] != digest:
            problems.append(f"{name} changed since it was saved (sha256)")
    return problems


RESUMABLE_CHANGES = ("training.resume", "training.resume_anyway", "training.overwrite_output_dir",
                     "training.output_dir", "training.max_steps", "training.num_epochs", "training.logging_steps",
                     "training.save_steps", "training.save_total_limit", "training.plot_loss", "training.report_to", "eval.",
                     "backend")


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: checkpoint X, now Y`` for every setting that changed and would make a resumed run
    diverge (everything but :data:`RESUMABLE_CHANGES`; the backend may change: both are bit-identical)."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) and v else {key: v})
        return out

    a, b = flat(saved), flat(current)
    keys = sorted(set(a) | set(b))
    return [f"{k}: checkpoint {a.get(k)!r}, now {b.get(k)!r}" for k in keys
            if a.get(k) != b.get(k) and not any(k == r or (r.endswith(".") and k.startswith(r))
                                                 for r in RESUMABLE_CHANGES)]


def check_resume_config(checkpoint: Path, config: dict[str, Any], resume_anyway: bool = False) -> None:
    """Refuse to resume with settings (``config``: the resolved configuration as a dict) that differ from the
    checkpoint's, unless ``resume_anyway``."""
    import yaml

    path = checkpoint / "glm_config.yaml"
    if not path.is_file():
        return
    diffs = config_differences(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, config)
    if diffs and not resume_anyway:
        raise CheckpointError(
            f"resume: the configuration differs from {path} ({'; '.join(diffs[:6])}"
            f"{f'; and {len(diffs) - 6} more' if len(diffs) > 6 else ''}); the resumed run would not continue "
            "the same run. Restore those settings, or pass --resume-anyway")
    for d in diffs:
        logger.warning("resume anyway: %s", d)


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / TRAINER_STATE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read trainer state ({exc})") from None


# -- RNG ------------------------------------------------------------------------------------


def _rng_file(rank: int, world_size: int) -> str:
    return "rng_state.safetensors" if world_size == 1 else f"rng_state_{rank}.safetensors"


# -- trainable tensors ----------------------------------------------------------------------


def trainable_state_dict(engine_or_module: Any) -> dict[str, torch.Tensor]:
    """Full (gathered) copies of the trainable parameters on CPU, keyed by module name.

    Collective under ZeRO-3 (every rank must call it)."""
    module = getattr(engine_or_module, "module", engine_or_module)
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    zero3 = any(hasattr(p, "ds_id") for _, p in named)
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None):
            return {n: p.detach().to("cpu", torch.float32).clone() for n, p in named}
    return {n: p.detach().to("cpu").clone().contiguous() for n, p in named}


def write_adapter(engine_or_module: Any, path: Path, stage: str, extra: tuple[str, ...] = (),
                  metadata: Optional[dict[str, Any]] = None, rank: int = 0) -> None:
    """Write the trainable tensors of ``stage`` as an adapter file (collective under ZeRO-3).

    A :class:`~glm.core.model.GraphLanguageModel` goes through :func:`glm.core.adapter.save_adapter`
    (safetensors + base-model identity, loadable with ``load_adapter``); any other module gets a
    plain safetensors file of its ``requires_grad`` tensors.
    """
    module = getattr(engine_or_module, "module", engine_or_module)
    params = [p for p in module.parameters() if p.requires_grad]
    gather = None
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    if gather is not None:
        gather.__enter__()
    try:
        if rank != 0:
            return
        if all(hasattr(module, a) for a in ("llm", "node_token_module", "config")):
            from glm.core.adapter import save_adapter

            save_adapter(module, path, stage, extra=extra, extra_metadata=metadata)
            write_peft_config(module, path.parent)
        else:
            meta = {"format": "glm-tensors", **{k: str(v) for k, v in (metadata or {}).items()}}
            save_tensors({n: p.detach().to("cpu").contiguous().clone() for n, p in module.named_parameters()
                          if p.requires_grad}, path, meta)
    finally:
        if gather is not None:
            gather.__exit__(None, None, None)


def write_peft_config(model: Any, folder: Path) -> Optional[Path]:
    """``adapter_config.json`` beside the adapter when the LLM trains LoRA, so that
    ``peft.PeftModel.from_pretrained(base, folder)`` reads ``adapter_model.safetensors``."""
    from glm.core.io import atomic_write_text
    from glm.core.llm import llm_identity
    from glm.core.tuning import PEFT_CONFIG_FILE, peft_config_json, tuning_of

    config = peft_config_json(tuning_of(model).settings, llm_identity(model.llm)["name_or_path"])
    if config is None:
        return None
    return atomic_write_text(json.dumps(config, indent=2, sort_keys=True), folder / PEFT_CONFIG_FILE)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


# -- save / load ----------------------------------------------------------------------------


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_checkpoint(
    engine: Any,
    output_dir: str | os.PathLike,
    step: int,
    trainer_state: dict[str, Any],
    config_yaml: str,
    rank: int = 0,
    world_size: int = 1,
    save_total_limit: Optional[int] = None,
    adapter_metadata: Optional[dict[str, Any]] = None,
    stage: str = "pretrain",
    stage_extra: tuple[str, ...] = (),
) -> Path:
    """Write ``output_dir/checkpoint-<step>`` atomically (collective: call on every rank).

    A full disk is :class:`CheckpointError` naming the path (the partial ``.tmp`` folder removed)."""
    root = Path(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f"{CHECKPOINT_PREFIX}{step}.tmp"
    try:
        return _save_checkpoint(engine, root, final, tmp, step, trainer_state, config_yaml, rank, world_size,
                                save_total_limit, adapter_metadata, stage, stage_extra)
    except Exception as exc:  # OSError; torch's RuntimeError('unexpected pos'); safetensors' SafetensorError
        if not disk_full(exc, root):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(root).free
        raise CheckpointError(f"no space left on the device writing {final} ({free / 2**20:.1f} MiB free): free "
                              "some space, then continue with --resume") from None


DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT


def disk_full(exc: BaseException, where: Path) -> bool:
    """Whether ``exc`` comes from a full disk (torch's zip writer reports it as 'unexpected pos')."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS or "No space left on device" in str(exc):
        return True
    try:
        return shutil.disk_usage(where).free < 2**20
    except OSError:
        return False


def _save_checkpoint(engine: Any, root: Path, final: Path, tmp: Path, step: int, trainer_state: dict[str, Any],
                     config_yaml: str, rank: int, world_size: int, save_total_limit: Optional[int],
                     adapter_metadata: Optional[dict[str, Any]], stage: str, stage_extra: tuple[str, ...]) -> Path:
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    _barrier()
    tag = f"global_step{step}"
    engine.save_checkpoint(str(tmp), tag=tag, save_latest=True, exclude_frozen_parameters=True)
    save_rng_state(tmp / _rng_file(rank, world_size))
    write_adapter(engine, tmp / ADAPTER_FILE, stage, stage_extra, {"global_step": step, **(adapter_metadata or {})},
                  rank)
    if rank == 0:
        (tmp / "glm_config.yaml").write_text(config_yaml, encoding="utf-8")
    _barrier()
    if rank == 0:  # the trainer state comes last: it marks the checkpoint complete and records every file
        state = {**trainer_state, "global_step": step, "ds_tag": tag, "world_size": world_size,
                 "files": file_manifest(tmp)}
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    _barrier()
    if rank == 0:
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        if save_total_limit:
            rotate_checkpoints(root, save_total_limit)
    _barrier()
    return final


def _fsync_dir(path: Path) -> None:
    try:
        for child in path.rglob("*"):
            if child.is_file():
                with open(child, "rb") as fh:
                    os.fsync(fh.fileno())
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - filesystems without fsync on directories
        pass


def rotate_checkpoints(output_dir: str | os.PathLike, limit: int) -> list[Path]:
    """Delete the oldest complete checkpoints beyond ``limit``; return what was removed."""
    found = list_checkpoints(output_dir)
    removed = []
    for _, path in found[: max(len(found) - limit, 0)]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        logger.debug("removed old checkpoint %s (save_total_limit=%d)", path, limit)
    return removed


def load_checkpoint(engine: Any, checkpoint: str | os.PathLike, rank: int = 0,
                    world_size: int = 1) -> dict[str, Any]:
    """Restore engine (trainable tensors, optimizer, scheduler) and this rank's RNG from
    ``checkpoint``; return its trainer state."""
    path = Path(checkpoint)
    state = read_trainer_state(path)
    saved_world = int(state.get("world_size", 1))
    if saved_world != world_size:
        raise CheckpointError(
            f"{path}: written by {saved_world} process(es), resuming with {world_size};"
            " resume with the same number of processes"
        )
    install_safe_deepspeed_loading()
    load_path, _ = engine.load_checkpoint(str(path), tag=state["ds_tag"], load_module_strict=False,
                                          load_optimizer_states=True, load_lr_scheduler_states=True)
    if load_path is None:
        raise CheckpointError(f"{path}: DeepSpeed could not load tag {state['ds_tag']!r}")
    from glm.core.train.ds_compat import replay_cpu_adam_steps

    replay_cpu_adam_steps(getattr(engine, "optimizer", None))  # bit-exact resume under optimizer offload
    load_rng_state(path, _rng_file(rank, world_size))
    return state
