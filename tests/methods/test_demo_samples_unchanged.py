"""Slow: the demo's pre-training, adaptation and test samples (prompts, answers, task texts, subgraphs)
are exactly those of glm 0.1 -- with the bit-identical model path (test_graphlama_compat.py) this is why
`make demo` prints 0.1's numbers. Hash recorded with glm 0.1 (commit 526f370) on the real CiteSeer TAG."""

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLM_01_HASH = "97e6936bf51b09f43a32041b2152ba0154374a4bf29c4e5bc2b475ffb0d1ac21"


@pytest.mark.slow
def test_demo_samples_are_those_of_glm_01(shared_dir):
    from glm.core.config import load_config
    from glm.core.train import pipeline as P

    h = hashlib.sha256()
    for name, stage in (("demo_pretrain.yaml", "pretrain"), ("demo_adapt.yaml", "adapt")):
        cfg = load_config(ROOT / "examples" / name)
        data = P.prepare_data(cfg, progress=False)
        for s in P.stage_samples(cfg, data, stage) + P.eval_samples(cfg, data, "test"):
            h.update(json.dumps([s.prompt, s.answer, s.task, s.task_text, [g.num_nodes for g in s.graphs],
                                 [g.x.sum().item() for g in s.graphs]]).encode())
    assert h.hexdigest() == GLM_01_HASH
