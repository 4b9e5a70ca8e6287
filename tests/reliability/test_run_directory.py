"""Severe 2 and 3, and the start/stop cases: --overwrite never loses the previous run, one run per
folder (lock with stale detection), a failed start leaves nothing behind, Ctrl-C says where to resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from glm.core.train import checkpoint as ckpt
from glm.core.train.outdir import OutputDirError, RunDirectory, RunLock
from train_helpers import glm_cmd, subprocess_env, write_tiny_config


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(glm_cmd(*args), cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture()
def cfg(tmp_path):
    return write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0})


OVERFLOW = ("model.llm.max_length=24",)  # passes config checks, fails at the first batch (context overflow)


def test_failing_overwrite_keeps_the_previous_run(tmp_path, cfg):
    out = tmp_path / "run"
    assert _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--no-progress").returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--overwrite", "--no-progress", *OVERFLOW)
    assert done.returncode == 2 and "context" in done.stderr and "Traceback" not in done.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not (tmp_path / "run.previous").exists() and not (tmp_path / "run.lock").exists()
    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--overwrite", "--no-progress",
                "training.seed=7")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed: 7" in (out / "glm_config.yaml").read_text() and not (tmp_path / "run.previous").exists()


def test_failed_start_leaves_nothing_and_the_plain_rerun_works(tmp_path, cfg):
    out = tmp_path / "fresh"
    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--no-progress", *OVERFLOW)
    assert done.returncode == 2
    assert not out.exists()
    assert _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--no-progress").returncode == 0


def test_a_held_lock_refuses_a_second_run_and_a_stale_one_is_replaced(tmp_path, cfg):
    out = tmp_path / "run"
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(["sleep", "120"])
    try:
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "then"}))
        done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--overwrite", "--no-progress")
        assert done.returncode == 2
        assert f"is in use by pid {holder.pid}" in done.stderr and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--no-progress")  # holder gone: stale
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stale lock" in done.stderr and not lock.exists()


def test_run_lock_is_exclusive_and_reentrant(tmp_path):
    lock = RunLock(tmp_path / "out")
    with lock:
        with RunLock(tmp_path / "out"):  # the same process may nest (CLI + trainer)
            assert lock.path.exists()
        assert lock.path.exists()
        lock.path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "x"}))
        RunLock._held.clear()
        with pytest.raises(OutputDirError, match="in use by pid 1 on elsewhere"):
            RunLock(tmp_path / "out").acquire()
    lock.path.unlink()


def test_output_dir_that_is_a_file(tmp_path, cfg):
    (tmp_path / "afile").write_text("x")
    done = _run(tmp_path, "pretrain", str(cfg), "--output-dir", str(tmp_path / "afile"), "--no-progress")
    assert done.returncode == 2 and "is a file" in done.stderr and (tmp_path / "afile").read_text() == "x"


def test_sigint_says_where_to_resume(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 400, "save_steps": 2})
    out = tmp_path / "run"
    # a shell that runs the suite in the background ignores SIGINT, and children inherit that: restore the default
    proc = subprocess.Popen(glm_cmd("pretrain", str(cfg), "--output-dir", str(out), "--no-progress"), cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "glm: interrupted: interrupted at step" in err and "resume with --resume" in err
    assert "Traceback" not in err and not list(out.glob("*.tmp")) and not (tmp_path / "run.lock").exists()


class _Engine(torch.nn.Linear):
    """A module with DeepSpeed's ``save_checkpoint`` signature (writes one file, as a rank would)."""

    def save_checkpoint(self, save_dir: str, tag: str, **_: object) -> None:
        Path(save_dir, tag).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(save_dir, tag, "model_states.pt"))


def test_a_rank_dying_after_the_checkpoint_rename_keeps_the_new_run(tmp_path, monkeypatch):
    """The launcher kill flake: rank 1 killed while rank 0 waits in the save's last barrier (the checkpoint
    is already renamed into place, commit() not yet called). The new run must stay resumable; rolling it
    back removed its checkpoint and log."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "trainer_log.jsonl").write_text('{"step": 1, "old": true}\n')
    config = SimpleNamespace(training=SimpleNamespace(output_dir=str(out), resume=None, overwrite_output_dir=True))
    barriers = {"n": 0}

    def barrier() -> None:  # the 4th barrier of a save is the one after the rename
        barriers["n"] += 1
        if barriers["n"] == 4:
            raise RuntimeError("[gloo] Connection closed by peer")

    monkeypatch.setattr(ckpt, "_barrier", barrier)
    with pytest.raises(RuntimeError, match="Connection closed"):
        with RunDirectory(config.training, resume=None):
            (out / "trainer_log.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
            ckpt.save_checkpoint(_Engine(2, 2), out, 3, {"log_history": []}, "seed: 7\n")
    assert (out / "checkpoint-3" / ckpt.TRAINER_STATE).is_file()
    assert ckpt.resolve_resume("latest", out) == out / "checkpoint-3"
    assert '"old"' not in (out / "trainer_log.jsonl").read_text()
    assert not (tmp_path / "run.previous").exists() and not (tmp_path / "run.lock").exists()


def test_a_failure_before_any_checkpoint_still_rolls_back(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "trainer_log.jsonl").write_text('{"old": true}\n')
    config = SimpleNamespace(training=SimpleNamespace(output_dir=str(out), resume=None, overwrite_output_dir=True))
    with pytest.raises(RuntimeError):
        with RunDirectory(config.training, resume=None):
            (out / "trainer_log.jsonl").write_text('{"new": true}\n')
            (out / "checkpoint-3.tmp").mkdir()  # a save cut short is not a checkpoint
            raise RuntimeError("[gloo] Connection closed by peer")
    assert (out / "trainer_log.jsonl").read_text() == '{"old": true}\n'
    assert not (out / "checkpoint-3.tmp").exists() and not (tmp_path / "run.previous").exists()
