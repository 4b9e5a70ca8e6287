"""Resume that cannot silently diverge: changed settings are refused (or logged with --resume-anyway),
incomplete and damaged checkpoints are named and skipped, a torn final log line does not block resume."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from glm.core.train.log import LogFormatError, read_log
from train_helpers import glm_cmd, subprocess_env, write_tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    cfg = write_tiny_config(root, training={"max_steps": 3, "save_steps": 1, "save_total_limit": 5})
    out = root / "run"
    done = subprocess.run(glm_cmd("pretrain", str(cfg), "--output-dir", str(out), "--no-progress"), cwd=root,
                          env=subprocess_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, cfg, out


@pytest.fixture()
def run(finished, tmp_path):
    root, cfg, out = finished
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return cfg, copy


def _resume(tmp_path: Path, cfg: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(glm_cmd("pretrain", str(cfg), "--output-dir", str(out), "--resume", "training.max_steps=4",
                                  "--no-progress", *extra),
                          cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("change,named", [
    ("training.micro_batch_size=2", "training.micro_batch_size: checkpoint 1, now 2"),
    ("training.seed=5", "training.seed: checkpoint 42, now 5"),
    ("data.samples_per_task=3", "data.samples_per_task: checkpoint 4, now 3"),
    ("model.encoder.hidden_dim=32", "model.encoder.hidden_dim: checkpoint 16, now 32"),
])
def test_changed_settings_are_refused(run, tmp_path, change, named):
    cfg, out = run
    done = _resume(tmp_path, cfg, out, change)
    assert done.returncode == 2 and named in done.stderr and "--resume-anyway" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_anyway_logs_each_difference(run, tmp_path):
    cfg, out = run
    done = _resume(tmp_path, cfg, out, "training.seed=5", "--resume-anyway")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resume anyway: training.seed: checkpoint 42, now 5" in done.stderr


def test_checkpoints_without_trainer_state_are_named(run, tmp_path):
    cfg, out = run
    for ckpt in out.glob("checkpoint-*"):
        (ckpt / "trainer_state.json").unlink()
    done = _resume(tmp_path, cfg, out)
    assert done.returncode == 2 and "holds no usable checkpoint" in done.stderr and "checkpoint-1" in done.stderr


def test_damaged_newest_checkpoint_falls_back(run, tmp_path):
    cfg, out = run
    states = out / "checkpoint-3" / "global_step3" / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[:100])  # truncated
    done = _resume(tmp_path, cfg, out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "checkpoint-3 is damaged" in done.stderr and "has 100 bytes" in done.stderr
    assert "resumed from" in done.stderr and "checkpoint-2" in done.stderr.split("resumed from")[1][:200]


def test_torn_final_log_line_is_dropped(run, tmp_path):
    cfg, out = run
    with open(out / "trainer_log.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"current_steps": 4, "lo')
    assert [r["current_steps"] for r in read_log(out)] == [1, 2, 3]
    done = _resume(tmp_path, cfg, out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["current_steps"] for r in read_log(out)] == [1, 2, 3, 4]
    broken = out / "trainer_log.jsonl"
    broken.write_text('{"current_steps": 1}\nnot json\n{"current_steps": 2}\n')
    with pytest.raises(LogFormatError, match="trainer_log.jsonl:2"):
        read_log(out)
