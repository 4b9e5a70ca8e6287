"""Severe 1: nothing a user hands glm is unpickled. Crafted pickles in a checkpoint (DeepSpeed model /
optimizer states) or in Planetoid raw files are refused with a named error and their payload never runs;
genuine files still load. The RNG state is a safetensors file (no pickle at all)."""

from __future__ import annotations

import json
import pickle
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from glm.core.safe_load import (UnsafeCheckpointError, load_rng_state, restricted_pickle_load, safe_torch_load,
                                save_rng_state)
from train_helpers import glm_cmd, subprocess_env, write_tiny_config


class Payload:
    """Unpickling this creates the file ``marker`` (what an attacker's pickle would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"cpu": Payload(marker)}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-step run with checkpoints under two recipes (plain and ZeRO-2 offload)."""
    root = tmp_path_factory.mktemp("safe")
    cfg = write_tiny_config(root, training={"max_steps": 2, "save_steps": 1, "save_total_limit": 5})
    runs = {}
    for recipe in ("cpu", "3090-zero2-offload"):
        out = root / recipe
        done = subprocess.run(glm_cmd("pretrain", str(cfg), "--recipe", recipe, "--output-dir", str(out),
                                      "--no-progress"), cwd=root, env=subprocess_env(root), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[recipe] = out
    return root, cfg, runs


def _resume(root: Path, cfg: Path, run: Path, recipe: str) -> subprocess.CompletedProcess:
    return subprocess.run(glm_cmd("pretrain", str(cfg), "--recipe", recipe, "--output-dir", str(run),
                                  f"training.resume={run / 'checkpoint-1'}", "training.max_steps=3", "--no-progress"),
                          cwd=root, env=subprocess_env(root), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("victim", [  # the model states load through the same safe loader as the optimizer's
    pytest.param("global_step1/mp_rank_00_model_states.pt", marks=pytest.mark.slow),
    "global_step1/zero_pp_rank_0_mp_rank_00_optim_states.pt"])
def test_crafted_pickles_in_a_checkpoint_are_refused(trained, victim, tmp_path):
    root, cfg, runs = trained
    recipe = "3090-zero2-offload" if "optim" in victim else "cpu"
    run = tmp_path / "run"
    import shutil

    shutil.copytree(runs[recipe], run)
    ckpt = run / "checkpoint-1"
    marker = tmp_path / "pwned"
    _crafted(ckpt / victim, marker)
    done = _resume(root, cfg, run, recipe)  # the file no longer matches the checkpoint's manifest
    assert done.returncode == 2 and "is damaged" in done.stderr and not marker.exists()
    # an attacker who also rewrites the manifest reaches the loader: weights-only refuses the pickle
    from glm.core.train.checkpoint import TRAINER_STATE, file_manifest

    state = json.loads((ckpt / TRAINER_STATE).read_text())
    state["files"] = file_manifest(ckpt)
    (ckpt / TRAINER_STATE).write_text(json.dumps(state))
    done = _resume(root, cfg, run, recipe)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "refused to load" in done.stderr and victim.split("/")[-1] in done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()


def test_genuine_checkpoints_resume(trained, tmp_path):
    root, cfg, runs = trained
    import shutil

    for recipe, run in runs.items():
        copy = tmp_path / recipe
        shutil.copytree(run, copy)
        done = _resume(root, cfg, copy, recipe)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "resumed from" in done.stderr


def test_rng_state_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_rng_state(tmp_path / "rng_state.safetensors")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    assert load_rng_state(tmp_path, "rng_state.safetensors")
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert not load_rng_state(tmp_path / "none", "rng_state.safetensors")


def test_safe_torch_load_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    _crafted(tmp_path / "x.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match="x.pt: refused to load"):
        safe_torch_load(tmp_path / "x.pt")
    assert not marker.exists()


def test_planetoid_files_are_read_with_a_restricted_unpickler(tmp_path):
    import collections

    import scipy.sparse as sp

    good = {"graph": collections.defaultdict(list, {0: [1, 2]}), "x": sp.csr_matrix(np.eye(3, dtype=np.float32)),
            "y": np.zeros((3, 2))}
    for name, obj in good.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj, protocol=2))
        with (tmp_path / name).open("rb") as fh:
            back = restricted_pickle_load(fh, tmp_path / name)
        assert type(back) is type(obj)
    marker = tmp_path / "pwned"
    (tmp_path / "ind.cora.x").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with (tmp_path / "ind.cora.x").open("rb") as fh, pytest.raises(UnsafeCheckpointError, match="ind.cora.x"):
        restricted_pickle_load(fh, tmp_path / "ind.cora.x")
    (tmp_path / "evil").write_bytes(pickle.dumps(getattr(__import__("os"), "system"), protocol=2))
    with (tmp_path / "evil").open("rb") as fh, pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        restricted_pickle_load(fh, tmp_path / "evil")
    assert not marker.exists()
