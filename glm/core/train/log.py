"""Training logs: rank-0 stdlib logging, a tqdm bar with ETA and ``trainer_log.jsonl``.

One JSON object per log step is appended to ``output_dir/trainer_log.jsonl`` (the names of
LLaMA-Factory's ``LogCallback``)::

    {"current_steps": 20, "total_steps": 100, "epoch": 0.4, "loss": 1.93, "lr": 1.9e-05,
     "grad_norm": 0.71, "throughput": 3.2, "elapsed_time": "0:00:31", "remaining_time": "0:02:04",
     "percentage": 20.0, "rss_mb": 812.4, "peak_rss_mb": 840.1,
     "mem_allocated_mb": null, "mem_reserved_mb": null}

``throughput`` is samples per second over the last log interval (all ranks);
``mem_*`` are CUDA figures (``null`` on CPU), ``rss_mb`` the resident set of this process.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import resource
from pathlib import Path
from typing import Any, Optional

from glm.core.io import atomic_write_text
from glm.errors import GlmError

LOG_FILENAME = "trainer_log.jsonl"

logger = logging.getLogger("glm.train")


def get_rank() -> int:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except Exception:  # pragma: no cover - torch without distributed
        pass
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def rank0_info(msg: str, *args: Any) -> None:
    """``logger.info`` on rank 0 only."""
    if is_main_process():
        logger.info(msg, *args)


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc``; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_stats() -> dict[str, Optional[float]]:
    now = rss_mb()
    stats: dict[str, Optional[float]] = {"rss_mb": round(now, 1), "peak_rss_mb": round(max(now, peak_rss_mb()), 1),
                                         "mem_allocated_mb": None, "mem_reserved_mb": None}
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            stats["mem_allocated_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
            stats["mem_reserved_mb"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    except Exception:  # pragma: no cover
        pass
    return stats


def format_seconds(seconds: float) -> str:
    return str(_dt.timedelta(seconds=int(max(seconds, 0))))


class TrainLogger:
    """Progress bar plus JSONL log; every method is a no-op off rank 0.

    Args:
        output_dir: where ``trainer_log.jsonl`` goes.
        total_steps: optimizer steps of the whole run.
        initial_step: first step of this process (``> 0`` after a resume).
        enabled: usually ``is_main_process()``.
        progress: show a tqdm bar (stderr).
    """

    def __init__(self, output_dir: str | os.PathLike, total_steps: int, initial_step: int = 0,
                 enabled: bool = True, progress: bool = True, desc: str = "train") -> None:
        self.path = Path(output_dir) / LOG_FILENAME
        self.total_steps = total_steps
        self.enabled = enabled
        self.bar = None
        if enabled and progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, n: int = 1, loss: Optional[float] = None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def log(self, record: dict[str, Any], elapsed: float, steps_done_here: int) -> dict[str, Any]:
        """Complete ``record`` with timing/memory, append it to the JSONL file, return it."""
        step = record["current_steps"]
        remaining = (self.total_steps - step) * elapsed / max(steps_done_here, 1)
        record = {
            **record,
            "total_steps": self.total_steps,
            "percentage": round(100.0 * step / max(self.total_steps, 1), 2),
            "elapsed_time": format_seconds(elapsed),
            "remaining_time": format_seconds(remaining),
            **memory_stats(),
        }
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            msg = (f"step {step}/{self.total_steps} loss {record.get('loss', float('nan')):.4f}"
                   f" lr {record.get('lr', 0):.3g} grad_norm {record.get('grad_norm') or 0:.3g}"
                   f" rss {record['rss_mb']:.0f} MiB eta {record['remaining_time']}")
            if "eval_accuracy" in record:
                msg += (f" | eval accuracy {record['eval_accuracy']:.4f} loss {record['eval_loss']:.4f}"
                        + (" (best)" if record.get("is_best") else ""))
            logger.info(msg)
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogFormatError(GlmError, ValueError):
    """``trainer_log.jsonl`` has a broken line that is not a torn final line."""


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``run_dir/trainer_log.jsonl`` (a missing file gives ``[]``)."""
    path = Path(run_dir) / LOG_FILENAME
    if not path.is_file():
        return []
    out = []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if i == last and not text.endswith("\n"):  # a crash mid-write tore the final line
                    logger.warning("%s: dropping a torn final line (%d characters; a crash while writing it)",
                                   path, len(line))
                    break
                raise LogFormatError(f"{path}:{i + 1}: not a JSON line ({exc})") from None
    return out


def truncate_log(run_dir: str | os.PathLike, after_step: int) -> None:
    """Drop records beyond ``after_step`` (a resumed run re-logs those steps)."""
    path = Path(run_dir) / LOG_FILENAME
    if not path.is_file():
        return
    keep = [r for r in read_log(run_dir) if int(r.get("current_steps", 0)) <= after_step]
    atomic_write_text("".join(json.dumps(r) + "\n" for r in keep), path)
