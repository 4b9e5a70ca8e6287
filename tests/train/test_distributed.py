"""Two CPU ranks (gloo) through the real CLI, started by torchrun and by DeepSpeed's launcher exactly as
README shows (``deepspeed --no_local_rank --num_gpus 2 $(which glm) pretrain ...``).

Rank 0 checks and locks the output folder; the other rank waits for it at a barrier. Two ranks with one
micro-batch each see the same global batch as one process with two accumulated micro-batches, so the
logged losses and the final adapter must agree with that single-process run (tolerance 1e-6 relative:
room for the order in which an all-reduce sums; measured: identical bits, dropout off).
A rank killed with SIGKILL takes the run down; ``--resume`` through the same launcher finishes it with
each step logged once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train_helpers import run_glm, subprocess_env, write_tiny_config

STEPS = 40
BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, **training) -> Path:
    # no dropout: the ranks' dropout masks would differ from one process's, and so would the updates
    model = {"llm": {"name": "tiny-random", "max_length": 1024},
             "encoder": {"layer": "gcn", "in_dim": 16, "hidden_dim": 16, "out_dim": 16, "num_layers": 2, "dropout": 0.0},
             "graphlama": {"graph_dim": 16, "gate_dim": 16}}
    return write_tiny_config(tmp, model=model, training={"max_steps": STEPS, "save_steps": 3, "logging_steps": 1,
                                            "learning_rate": 5e-2, **training})


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    assert [r["current_steps"] for r in rows] == list(range(1, STEPS + 1)), "each step logged exactly once"
    return [r["loss"] for r in rows]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(_free_port()), "-m", "glm.cli.main", *args]


def _deepspeed(*args: str) -> list[str]:  # README's command: the launcher script and the glm script of this venv
    return [str(BIN / "deepspeed"), "--no_local_rank", "--num_gpus", "2", "--master_port", str(_free_port()),
            str(BIN / "glm"), *args]


def _ninja_log() -> Path:
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path(sys.prefix) / "torch_extensions") \
        / "deepspeed_shm_comm" / ".ninja_log"


@pytest.fixture(scope="module", autouse=True)
def shm_op_built_once():
    """Three kinds of process (glm, torchrun, DeepSpeed's launcher) load the venv's one shm-op build."""
    before = _ninja_log().read_bytes() if _ninja_log().is_file() else None
    yield
    if before is None:
        pytest.skip("no shm comm op was built for this venv (make install builds it)")
    assert _ninja_log().read_bytes() == before, f"an entry point rebuilt DeepSpeed's shm comm op ({_ninja_log()})"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One process, two accumulated micro-batches per step: the same global batches as two ranks."""
    tmp = tmp_path_factory.mktemp("one")
    cfg = _config(tmp, gradient_accumulation_steps=2)
    proc = run_glm(tmp, "pretrain", str(cfg), "--output-dir", str(tmp / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run"


def _same_run(run: Path, reference: Path) -> None:
    torch.testing.assert_close(torch.tensor(_losses(run)), torch.tensor(_losses(reference)), rtol=1e-6, atol=0)
    mine, theirs = load_file(str(run / "adapter_model.safetensors")), load_file(str(reference / "adapter_model.safetensors"))
    assert mine.keys() == theirs.keys() and mine
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)


def test_torchrun_cli_matches_one_process(tmp_path, reference):
    cfg = _config(tmp_path)
    proc = subprocess.run(_torchrun("pretrain", str(cfg), "--output-dir", "runs/mp", "--no-progress"), cwd=tmp_path,
                          env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = tmp_path / "runs" / "mp"
    assert "in use by pid" not in proc.stderr
    assert not (tmp_path / "runs" / "mp.lock").exists(), "the run lock is released"
    assert proc.stdout.count(f"pretrain: {STEPS} steps") == 1, "the summary line comes from rank 0 only"
    assert (run / "checkpoint-39" / "rng_state_1.safetensors").is_file(), "every rank saved its RNG state"
    _same_run(run, reference)


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if "pretrain" in " ".join(child.cmdline()) and child.environ().get("RANK") == str(rank):
                return child.pid
        except psutil.Error:
            continue
    return None


def test_deepspeed_launcher_kill_one_rank_then_resume(tmp_path, reference):
    cfg = _config(tmp_path)
    run, env = tmp_path / "runs" / "mp", subprocess_env(tmp_path)
    args = ("pretrain", str(cfg), "--output-dir", "runs/mp", "--no-progress")
    launcher = subprocess.Popen(_deepspeed(*args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoint-3" / "trainer_state.json").exists():
            assert launcher.poll() is None, launcher.stderr.read()[-4000:]
            assert time.time() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.01)
        pid = _rank_pid(launcher, 1)
        assert pid is not None, "rank 1 not found among the launcher's children"
        os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert launcher.returncode != 0, "the launcher reports the killed rank"
    assert not (run / "trainer_log.jsonl").read_text().count(f'"current_steps": {STEPS},'), "killed before the end"
    proc = subprocess.run(_deepspeed(*args, "--resume"), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resumed from" in proc.stdout + proc.stderr
    _same_run(run, reference)
