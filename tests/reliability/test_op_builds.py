"""DeepSpeed's CPU ops are built once per venv (by make) and never again by a training run or a worker:
two different entry points leave the ninja build logs unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from train_helpers import ROOT, glm_cmd, subprocess_env, write_tiny_config

OPS = ("deepspeed_shm_comm", "cpu_adam")


def _extensions_dir() -> Path:
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory("cpu_adam", verbose=False)).parent


@pytest.mark.slow  # 29 s; guards a one-time build: make test-all runs it
def test_entry_points_do_not_rebuild_ops(tmp_path):
    built = subprocess.run([sys.executable, "-m", "glm.core.train.ds_compat"], env=subprocess_env(tmp_path),
                           capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, built.stderr[-2000:]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or _extensions_dir())
    logs = {op: root / op / ".ninja_log" for op in OPS}
    if not all(p.is_file() for p in logs.values()):
        pytest.skip(f"DeepSpeed's CPU ops could not be built here: {built.stdout.strip()} {built.stderr[-300:]}")
    before = {op: p.read_bytes() for op, p in logs.items()}
    cfg = write_tiny_config(tmp_path, training={"max_steps": 1, "save_steps": 0})
    offload = write_tiny_config(tmp_path, training={"max_steps": 1, "save_steps": 0}, recipe="3090-zero2-offload")
    runs = [glm_cmd("pretrain", str(cfg), "--output-dir", str(tmp_path / "a"), "--recipe", "3090-zero2-offload",
                    "--no-progress"),
            [sys.executable, str(ROOT / "tests" / "train" / "recipe_worker.py"), str(offload), str(tmp_path / "b"),
             str(tmp_path / "report.json")]]
    for cmd in runs:
        done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        if cmd[1:3] == ["-m", "glm.cli.main"]:  # glm's own output: results only, DeepSpeed's chatter on stderr
            assert "built successfully" not in done.stdout and "Setting accelerator" not in done.stdout
        assert {op: p.read_bytes() for op, p in logs.items()} == before, f"{cmd[:3]} rebuilt an op"
