"""docs/api.md runs as written (tiny random LLM, few steps): pre-train, adapt, evaluate, predict from Python."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_walkthrough_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GLM_WALKTHROUGH_LLM", "tiny-random")
    monkeypatch.setenv("GLM_WALKTHROUGH_STEPS", "4")
    monkeypatch.setenv("GLM_WALKTHROUGH_DIR", str(tmp_path))
    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 4
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), scope)  # noqa: S102 - the project's own documentation
    assert scope["result"].global_step == 4
    import os

    import torch.distributed

    # a notebook is left as it was: no process group, no launcher variables (two trainings ran in it)
    assert not torch.distributed.is_initialized() and "RANK" not in os.environ and "MASTER_PORT" not in os.environ
    assert 0.0 <= scope["scores"].accuracy <= 1.0 and scope["scores"].num_samples == 60
    assert [p["node"] for p in scope["predictions"]] == [0, 1, 2]
    assert (tmp_path / "adapt" / "adapter_model.safetensors").is_file()
    assert [step for step, _ in scope["trace"].losses] == [1, 2]  # the user's callback saw every record
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "adapt" / "runs")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    saved = tmp_path / "my-model"
    card = (saved / "README.md").read_text()
    assert "library_name: glm" in card and "| accuracy |" in card and "init_from: null" in card
    from glm.core.adapter import read_adapter

    tensors, meta = read_adapter(saved / "adapter_model.safetensors")
    assert meta["extra"]["init_from"] is None and any(k.startswith("encoder.") for k in tensors)  # pre-trained part too
