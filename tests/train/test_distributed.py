"""Two ranks on CPU (gloo) through torch.distributed.run: gradients are averaged by the
DeepSpeed engine, so the trainable tensors of both ranks must be identical after training
(and must have moved from their initial values).

On GPUs the same code runs under DeepSpeed's launcher:
``deepspeed --no_local_rank --num_gpus 2 $(which glm) pretrain cfg.yaml``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from train_helpers import subprocess_env, write_tiny_config

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_ranks_stay_in_sync(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 4, "save_steps": 2, "learning_rate": 5e-2})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "dist_worker.py"), str(cfg), str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0 = torch.load(out / "rank0.pt", weights_only=False)
    r1 = torch.load(out / "rank1.pt", weights_only=False)
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["tensors"].keys() == r1["tensors"].keys() and r0["tensors"]
    for name, t in r0["tensors"].items():
        assert torch.equal(t, r1["tensors"][name]), f"ranks diverged on {name}"
    # training happened: the saved adapter is the trained state, not the initial one
    from safetensors.torch import load_file

    adapter = load_file(str(out / "adapter_model.safetensors"))
    for name, t in r0["tensors"].items():
        torch.testing.assert_close(adapter[name], t.reshape(adapter[name].shape))
    first = load_file(str(out / "checkpoint-2" / "adapter_model.safetensors"))
    init_differs = any(not torch.equal(first[n], adapter[n]) for n in adapter)
    assert init_differs, "parameters did not change between step 2 and step 4"
    # one checkpoint, written once, with one RNG file per rank
    assert (out / "checkpoint-4" / "rng_state_0.safetensors").is_file() and (out / "checkpoint-4" / "rng_state_1.safetensors").is_file()
