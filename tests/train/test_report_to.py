"""``training.report_to``: the log records of a real tiny run reach TensorBoard's event files and W&B (offline)."""

from __future__ import annotations

import json
import subprocess

import pytest

from train_helpers import glm_cmd, subprocess_env, write_tiny_config

pytest.importorskip("tensorboard", reason="the report extra (pip install 'graph-glm[report]') is not installed")
pytest.importorskip("wandb", reason="the report extra (pip install 'graph-glm[report]') is not installed")


def _wandb_history(path) -> list[dict]:
    """The history rows of an offline ``run-*.wandb`` file: W&B's 7-byte header, then LevelDB's log format
    (32 KiB blocks; records of checksum u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, rows, pos, part = path.read_bytes(), [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == 0:
            break
    return rows


def test_tensorboard_and_wandb_offline_get_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_tiny_config(tmp_path, training={**{"max_steps": 4, "logging_steps": 1, "save_steps": 0,
                                                   "learning_rate": 1e-2, "deterministic": True,
                                                   "report_to": ["tensorboard", "wandb"]}})
    env = {**subprocess_env(tmp_path), "WANDB_MODE": "offline", "WANDB_PROJECT": "glm-test", "WANDB_SILENT": "true"}
    out = tmp_path / "run"
    proc = subprocess.run(glm_cmd("pretrain", str(cfg), "--output-dir", str(out)), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "runs"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["current_steps"] for r in log] == [1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in log], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([r["lr"] for r in log], rel=1e-6)
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = _wandb_history(next(runs[0].glob("run-*.wandb")))
    assert [h["_step"] for h in history] == [1, 2, 3, 4]
    assert [h["train/loss"] for h in history] == pytest.approx([r["loss"] for r in log], rel=1e-6)


def test_report_to_is_checked_when_the_config_is_read(tmp_path):
    cfg = write_tiny_config(tmp_path)
    proc = subprocess.run(glm_cmd("pretrain", str(cfg), "--output-dir", str(tmp_path / "r"),
                                  "training.report_to=tensorboardx"), env=subprocess_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "training.report_to must be one of none, tensorboard, wandb; found 'tensorboardx'" \
        in proc.stderr and "Traceback" not in proc.stderr
