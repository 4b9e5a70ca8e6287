"""A user's TrainerCallback runs after the built-in ones: it sees every step, its log fields land in
trainer_log.jsonl and trainer_state.json, and its control flags stop and save the run."""

from __future__ import annotations

import json

import glm
from glm.core.train.callbacks import TrainerCallback
from train_helpers import write_tiny_config


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_train_begin(self, state, engine, resumed):
        self.events.append(("begin", state.step))

    def on_pre_optimizer_step(self, state, engine):
        assert state.grad_norm is not None  # the health callback measured this step's gradients first
        self.events.append(("pre", state.step))

    def on_step_end(self, state, engine, control):
        self.events.append(("end", state.step))
        control.should_stop = control.should_save = state.step == 3

    def log_fields(self, state):
        return {"my_metric": state.step * 10}

    def state_fields(self):
        return {"my_state": len(self.events)}

    def on_train_end(self, state, engine):
        self.events.append(("train_end", state.step))
        return False


def test_user_callback_sees_steps_logs_and_stops_the_run(tmp_path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    config = glm.load_config(write_tiny_config(tmp_path, training={"max_steps": 8, "save_steps": 0,
                                                                   "logging_steps": 1}),
                             training={"output_dir": str(tmp_path / "run")})
    recorder = Recorder()
    result = glm.train(config, callbacks=[recorder])
    assert result.global_step == 3  # stopped by the callback
    assert recorder.events == [("begin", 0), ("pre", 1), ("end", 1), ("pre", 2), ("end", 2), ("pre", 3), ("end", 3),
                               ("train_end", 3)]
    log = [json.loads(line) for line in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["my_metric"] for r in log] == [10, 20, 30]
    state = json.loads((tmp_path / "run" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["my_state"] == 7
