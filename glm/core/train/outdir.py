"""The output directory of a run: one run at a time, and nothing lost when a run fails to start.

* **Lock.** A run holds ``<output_dir>.lock`` (beside the folder; JSON: pid, host, start time)
  from start to end. A second run on the same folder stops with :class:`OutputDirError` naming the
  holder. A lock left by a process that no longer exists on this host is stale: it is replaced
  with a warning. (A lock from another host is never presumed stale; delete it by hand.)
* **Overwrite.** ``overwrite_output_dir`` does not delete the previous run up front: its files move
  to ``<output_dir>.previous/`` and come back if the new run fails before its first checkpoint
  (bad recipe, context overflow, Ctrl-C...). The first checkpoint commits the new run and deletes
  ``.previous``.
* **Failed start.** What a run wrote before its first checkpoint (``glm_config.yaml``, the log) is
  removed again when it fails, so the plain rerun is not refused as "not empty".

Only files glm writes are moved or removed (:data:`GLM_OWNED`, ``checkpoint-*``); foreign files stay.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Optional

from glm.core.config import CONFIG_FILENAME
from glm.core.train import checkpoint as ckpt
from glm.core.train.log import LOG_FILENAME
from glm.core.tuning import PEFT_CONFIG_FILE
from glm.errors import GlmError

logger = logging.getLogger("glm.train")

GLM_OWNED = (LOG_FILENAME, CONFIG_FILENAME, ckpt.TRAINER_STATE, ckpt.ADAPTER_FILE, PEFT_CONFIG_FILE)


class OutputDirError(GlmError, RuntimeError):
    """The output directory holds a previous run (or is in use) and neither overwrite nor resume was asked."""


def _owned(child: Path) -> bool:
    return child.name in GLM_OWNED or child.name.startswith(ckpt.CHECKPOINT_PREFIX)


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def launcher_rank() -> int:
    """This process's rank as a launcher (torchrun, DeepSpeed's launcher, mpirun) set it; 0 without one."""
    for var in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def check_output_dir(training: Any) -> None:
    """Raise :class:`OutputDirError` for an unusable ``output_dir`` (a file, a non-empty folder
    without resume / overwrite, or a resume of an overwrite cut short before its first checkpoint);
    cheap, so commands call it before loading any model. ``training``: the ``training`` section."""
    t = training
    out = Path(t.output_dir)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output directory {str(out)!r} is a file; choose a folder (--output-dir)")
    previous = out.with_name(out.name + ".previous")
    if t.resume is not None and str(t.resume).lower() not in ("", "false", "no", "none") and previous.is_dir():
        raise OutputDirError(
            f"output directory {str(out)!r}: an overwrite was interrupted before its first checkpoint, so there is "
            f"nothing of the new run to resume (the replaced run is kept in {str(previous)!r}); start the new run "
            "again with --overwrite, or move the replaced run back by hand to keep it")
    if t.resume is None and not t.overwrite_output_dir and out.is_dir() and any(out.iterdir()):
        raise OutputDirError(
            f"output directory {str(out)!r} is not empty; pass training.overwrite_output_dir=true (--overwrite) to"
            " replace it or training.resume=latest (--resume) to continue it"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``<output_dir>.lock``, held by one process; re-entrant within that process."""

    _held: dict[str, int] = {}

    def __init__(self, output_dir: str | os.PathLike) -> None:
        out = Path(output_dir).absolute()
        self.path = out.with_name(out.name + ".lock")
        self.key = str(self.path)

    def acquire(self) -> "RunLock":
        if RunLock._held.get(self.key):
            RunLock._held[self.key] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                        and not _pid_alive(holder["pid"]):
                    logger.warning("removing a stale lock %s (pid %s is gone)", self.path, holder["pid"])
                    self.path.unlink(missing_ok=True)
                    continue
                raise OutputDirError(
                    f"output directory {str(self.path)[:-5]!r} is in use by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} since {holder.get('since', '?')} (lock {self.path}); wait for that "
                    "run or, if it is gone, delete the lock") from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            RunLock._held[self.key] = 1
            return self
        raise OutputDirError(f"could not take the lock {self.path}")

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        depth = RunLock._held.get(self.key, 0)
        if depth > 1:
            RunLock._held[self.key] = depth - 1
            return
        RunLock._held.pop(self.key, None)
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def remove_stale_temporaries(out: Path) -> None:
    """Remove ``.<name>.<pid>.tmp`` files (glm.core.io's atomic writes) of processes that are gone."""
    if not out.is_dir():
        return
    for tmp in out.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


class RunDirectory:
    """Lock + overwrite transaction around one training run (rank 0 acts, other ranks only hold ``path``).

    ``commit()`` after the first checkpoint; leaving the ``with`` block by an exception before
    that rolls back: new files removed, the previous run restored. A complete checkpoint found in the
    folder at that moment commits instead (it can only be the new run's: the old one's were moved aside).
    """

    def __init__(self, training: Any, resume: Optional[Path], rank: int = 0, world_size: int = 1) -> None:
        self.training, self.resume, self.rank, self.world_size = training, resume, rank, world_size
        self.path = Path(training.output_dir)
        self.previous = self.path.with_name(self.path.name + ".previous")
        self.lock = RunLock(self.path)
        self.committed = resume is not None  # a resumed run never rolls back what it continues
        self.created = False

    def __enter__(self) -> "RunDirectory":
        problem = ""
        if self.rank == 0:
            self.lock.acquire()
            try:
                self._prepare()
            except BaseException as exc:
                self.lock.release()
                self._agree(str(exc) or type(exc).__name__)
                raise
        self._agree(problem)
        return self

    def _agree(self, problem: str) -> None:
        """Barrier after rank 0 prepared the folder: every rank learns whether it may go on."""
        if self.world_size <= 1:
            return
        import torch.distributed as dist

        box = [problem]
        dist.broadcast_object_list(box, src=0)
        if self.rank != 0 and box[0]:
            raise OutputDirError(f"rank {self.rank}: rank 0 could not prepare {str(self.path)!r}: {box[0]}")

    def _prepare(self) -> None:
        out = self.path
        if self.previous.exists() and self.resume is None:  # an overwrite killed before its first checkpoint
            logger.warning("%s holds the run replaced by an interrupted overwrite; restoring it first", self.previous)
            self._restore()
        check_output_dir(self.training)  # (a resume of such an overwrite is refused here)
        remove_stale_temporaries(out)
        self.created = not out.exists()
        if self.resume is None and self.training.overwrite_output_dir and out.is_dir():
            owned = [c for c in out.iterdir() if _owned(c)]
            if owned:
                self.previous.mkdir()
                for child in owned:
                    os.replace(child, self.previous / child.name)
        out.mkdir(parents=True, exist_ok=True)

    def commit(self) -> None:
        """The new run has a checkpoint: the replaced run is no longer needed."""
        if self.rank == 0 and not self.committed:
            shutil.rmtree(self.previous, ignore_errors=True)
        self.committed = True

    def _rollback(self) -> None:
        for child in list(self.path.iterdir()) if self.path.is_dir() else []:
            if _owned(child):
                _remove(child)
        self._restore()
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def _restore(self) -> None:
        if not self.previous.is_dir():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for child in self.previous.iterdir():
            target = self.path / child.name
            if target.exists():
                _remove(target)
            os.replace(child, target)
        self.previous.rmdir()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.rank != 0:
            return
        try:
            if exc_type is not None and not self.committed and ckpt.latest_checkpoint(self.path) is not None:
                # a checkpoint was renamed into place before the failure (e.g. a rank died in the save's last
                # barrier, before commit()): the new run exists and --resume continues it; never roll it back
                self.commit()
            elif exc_type is not None and not self.committed:
                self._rollback()
            elif exc_type is None:
                self.commit()
        finally:
            self.lock.release()
