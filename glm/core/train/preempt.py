"""SIGTERM, a scheduler's preemption: finish the step, save a checkpoint, exit 143 with the resume hint.

torchrun and DeepSpeed's launcher forward SIGTERM to every rank and kill them some 30 s later; SLURM
sends it before the time limit. Outside the training loop (model loading, data) SIGTERM stops at
once, releasing the run lock on the way out; inside it, :class:`Preemption` turns it into a flag
that the loop reads after each optimizer step (all ranks agree through the step's all-reduce), so
the checkpoint is written by every rank at the same step, as HF's ``enable_jit_checkpoint`` does.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Optional

EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


class TrainingTerminated(Exception):
    """The run got SIGTERM; the message says what was saved and how to resume (exit code 143)."""


def _raise_now(signum: int, frame: Optional[FrameType]) -> None:
    raise TrainingTerminated("terminated (SIGTERM) outside the training steps; nothing new was saved")


def install_early_handler() -> None:
    """SIGTERM raises :class:`TrainingTerminated` (context managers release locks); main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_now)


class Preemption:
    """``with Preemption() as p:`` ... ``p.requested`` is True once SIGTERM arrived."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _flag(self, signum: int, frame: Optional[FrameType]) -> None:
        self.requested = True

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._flag)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
