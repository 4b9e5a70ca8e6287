"""Helpers for training tests: a tiny, fully offline run configuration (random-init LLM,
synthetic TAG, hashing text features, real DeepSpeed on CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

TINY_CONFIG = {
    "model": {
        "llm": {"name": "tiny-random", "max_length": 1024},
        "encoder": {"layer": "gcn", "in_dim": 16, "hidden_dim": 16, "out_dim": 16, "num_layers": 2,
                    "dropout": 0.1},
        "graphlama": {"graph_dim": 16, "gate_dim": 16},
    },
    "data": {
        "dataset": "synthetic", "embedder": "hashing", "fanout": [3, 2],
        "tasks": ["node_classification", "graph_matching", "link_prediction"],
        "samples_per_task": 4, "n_way": 2, "k_shot": 2, "test_per_class": 3, "max_text_words": 8,
        "graph_matching_nodes": 4,
    },
    "training": {"max_steps": 6, "logging_steps": 1, "save_steps": 3, "learning_rate": 1.0e-2,
                 "deterministic": True, "warmup_steps": 1},
    "recipe": "cpu",
    "backend": "pyg",
}


def write_tiny_config(directory: Path, **sections) -> Path:
    """Write the tiny config (sections deep-merged with ``sections``) and return its path."""
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GLM_CACHE_DIR=str(tmp_path / "cache"), TL_BACKEND="torch", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE"):
        env.pop(var, None)
    return env


def glm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "glm.cli.main", *args]


def run_glm(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(glm_cmd(*args), cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True,
                          text=True, timeout=timeout)



def sigkill_at(cmd: list[str], marker: Path, cwd: Path, env: dict[str, str], poll: float = 0.01) -> int:
    """Start ``cmd``, SIGKILL it as soon as ``marker`` exists (e.g. a checkpoint's trainer_state.json);
    return its exit code (``-SIGKILL``). Fails if it ends first or takes over 10 minutes."""
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not marker.exists():
            assert proc.poll() is None, f"the run ended before {marker} appeared"
            assert time.time() < deadline, f"{marker} did not appear within 10 minutes"
            time.sleep(poll)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    return proc.returncode
