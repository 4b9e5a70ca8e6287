"""The process group of a run: ``torch.distributed`` through DeepSpeed, from a launcher's environment or
single-process defaults (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass
from typing import Callable

import torch

from glm.core.train.ds_compat import release_shm_buffer, use_venv_extensions_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str


def init_distributed() -> DistInfo:
    """Initialise ``torch.distributed`` through DeepSpeed (idempotent).

    Uses the launcher's environment when present; otherwise single-process defaults.
    The backend is NCCL on CUDA and gloo on DeepSpeed's CPU accelerator.
    """
    env = os.environ
    env.setdefault("RANK", "0")
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("WORLD_SIZE", "1")
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in env:
        env["MASTER_PORT"] = str(_free_port())
    env.setdefault("LOCAL_SIZE", env.get("LOCAL_WORLD_SIZE", "1"))
    use_venv_extensions_dir()  # one build of DeepSpeed's CPU ops per venv, whatever the entry point
    # DeepSpeed's logger binds sys.stdout when it is imported and its op builder prints: keep both off
    # stdout, which carries results ("Setting accelerator to CPU", "shm_comm_op built successfully")
    with contextlib.redirect_stdout(sys.stderr):
        import deepspeed
        from deepspeed.accelerator import get_accelerator

        accel = get_accelerator()
        backend = "nccl" if accel.device_name() == "cuda" else "gloo"
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    release_shm_buffer(rank, world)
    local_rank = int(env.get("LOCAL_RANK", 0))
    if accel.device_name() == "cuda":
        accel.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        local_size = max(int(env.get("LOCAL_SIZE", 1)), 1)
        if local_size > 1:  # share the cores between the ranks of this node
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
    return DistInfo(rank, local_rank, world, device, backend)


LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE")


@contextlib.contextmanager
def own_process_group(keep: Callable[[], bool] = lambda: False):
    """:func:`init_distributed` for one run. Without a launcher (a notebook, a plain ``python``), the
    single-process group and the variables it set are removed again afterwards, so the calling process is
    left as it was -- unless ``keep()`` says the result still needs the group (a ZeRO-3 model's partitioned
    parameters are gathered through it); under a launcher (or when the caller made a group) nothing is
    torn down."""
    import torch.distributed as tdist

    before = {k: os.environ.get(k) for k in LAUNCH_ENV}
    owned = not tdist.is_initialized() and before["WORLD_SIZE"] is None
    try:
        yield init_distributed()
    finally:
        if owned and tdist.is_initialized() and not keep():
            import deepspeed.comm

            deepspeed.comm.destroy_process_group()  # torch's group and DeepSpeed's references to it
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
