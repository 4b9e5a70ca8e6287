"""The bad and weak cases of the 131-case catalogue (issue: scale out), one test each.

Config cases go through :func:`load_config` (what every command reads first, before any model is built);
command cases go through the CLI's ``main``; process cases start ``glm`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from glm.cli.main import main
from glm.core.config import ConfigError, load_config
from glm.core.config_rules import RULES, problems
from glm.core.data.errors import DataValidationError
from glm.core.data.splits import make_few_shot_split
from glm.core.data.tag import build_tag
from train_helpers import glm_cmd, run_glm, subprocess_env, write_tiny_config


def test_an_empty_yaml_is_a_named_error(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty.yaml: the config file is empty"):
        load_config(empty)


@pytest.mark.parametrize("override,named", [
    ("training.learning_rate=.inf", "training.learning_rate must be a finite number, found inf"),
    ("training.learning_rate=.nan", "training.learning_rate must be a finite number, found nan"),
    ("training.max_grad_norm=.nan", "training.max_grad_norm must be a finite number, found nan"),
    ("training.warmup_ratio=-0.5", "training.warmup_ratio must be >= 0 and <= 1, found -0.5"),
    ("model.encoder.num_layers=0", "model.encoder.num_layers must be >= 1, found 0"),
    ("model.encoder.heads=0", "model.encoder.heads must be >= 1, found 0"),
    ("model.encoder.dropout=1.5", "model.encoder.dropout must be >= 0 and < 1, found 1.5"),
    ("model.encoder.activation=bogus", "model.encoder.activation must be one of gelu, none, relu; found 'bogus'"),
    ("training.adam_betas=[0.9,1.5]", r"training.adam_betas\[1\] must be >= 0 and < 1, found 1.5"),
    ("model.graphlama.alpha_init=.inf", "model.graphlama.alpha_init must be a finite number"),
    ("data.fanout=[3,0]", r"data.fanout\[1\] must be >= 1, found 0"),
    ("training.lr_groups={'projector.*': .inf}", r"must be a learning rate > 0, found inf \(a finite number\)"),
])
def test_bad_numbers_are_refused_when_the_config_is_read(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(None, [override])


def test_every_rule_names_a_real_field():
    from glm.core.config import RunConfig
    from glm.core.config_rules import _fields

    config = RunConfig()
    for method in ("graphlama", "graphgpt", "llaga"):
        config.model.method = method
        _ = config.model.method_config
    names = {name for name, _ in _fields(config, "")}
    assert set(RULES) <= names, sorted(set(RULES) - names)
    assert not list(problems(config)), "the defaults obey the table"


def test_another_methods_section_is_not_checked():
    from glm.core.config import RunConfig

    config = RunConfig()
    config.model.method = "llaga"
    config.model.method_config.hops = 0
    assert list(problems(config, "llaga")) and not list(problems(config, "graphlama"))


def test_nodes_without_labels_name_the_label_column():
    tag = build_tag("nolabels", ["a", "b"], ["a", "b"], [None, None], [(0, 1)])
    with pytest.raises(DataValidationError, match="label.*labelled nodes.*no label on any node of nolabels"):
        make_few_shot_split(tag, 1, 1, 0)


def test_unknown_llm_names_the_field_and_the_known_names():
    from glm.core.config import LlmConfig
    from glm.core.llm import LLMLoadError, load_llm_from_config

    with pytest.raises(LLMLoadError, match=r"model.llm.name='bogus-llm': not a known LLM \(smollm2-135m, tiny-random"):
        load_llm_from_config(LlmConfig(name="bogus-llm"))


def test_infer_with_empty_nodes_is_refused(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    assert main(["infer", str(cfg), "--nodes", "", "--adapter", str(tmp_path)]) == 2
    assert "--nodes is empty" in capsys.readouterr().err


def test_plan_takes_overrides_after_options(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    assert main(["plan", str(cfg), "--gpu", "3090", "training.micro_batch_size=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_bench_commands_take_overrides_after_options():
    from glm.cli.main import build_parser

    for argv in (["bench", "fewshot", "c.yaml", "--seeds", "2", "data.k_shot=3", "--force"],
                 ["bench", "generation", "c.yaml", "--draws", "2", "data.generation.test=9", "--force"]):
        args = build_parser().parse_args(argv)
        assert args.overrides == [argv[5]] and args.force, argv


def test_convert_on_a_pickle_names_the_refused_global(tmp_path, capsys):
    import argparse

    bad = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "obj": argparse.Namespace(a=1)}, bad)  # a class torch will not load
    out = tmp_path / "out.safetensors"
    assert main(["convert", "official-gt", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert "refused to load the global" in err and "weights_only=False" not in err and not out.exists()


def _resume_cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return glm_cmd("pretrain", str(cfg), "--output-dir", str(out), "--no-progress", *extra)


def test_resume_after_an_interrupted_overwrite_refuses(tmp_path):
    """The overwrite was killed before its first checkpoint: resuming would train inside the old run."""
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "run"
    assert run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out)).returncode == 0
    old = sorted(p.name for p in out.iterdir())
    # what kill -9 inside an overwrite leaves: the old run moved aside, the new run's first files
    previous = tmp_path / "run.previous"
    previous.mkdir()
    for child in list(out.iterdir()):
        os.replace(child, previous / child.name)
    (out / "glm_config.yaml").write_text("training: {seed: 7}\n", encoding="utf-8")
    (out / "trainer_log.jsonl").write_text("", encoding="utf-8")
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--resume", "training.seed=7")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "overwrite was interrupted before its first checkpoint" in proc.stderr
    assert proc.stderr.count("\n") <= 3
    assert sorted(p.name for p in previous.iterdir()) == old, "the replaced run is untouched"
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--overwrite")
    assert proc.returncode == 0 and not previous.exists()
    steps = [json.loads(line)["current_steps"] for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_a_failing_resume_keeps_the_runs_config(tmp_path):
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "run"
    assert run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out)).returncode == 0
    before = (out / "glm_config.yaml").read_text()
    # the checkpoint's own config differs: refused, and the run's top-level config is not rewritten
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--resume", "training.learning_rate=0.5")
    assert proc.returncode == 2 and "differs" in proc.stderr
    assert (out / "glm_config.yaml").read_text() == before


def test_stale_temporary_files_are_removed(tmp_path):
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".glm_config.yaml.999999.tmp"  # a pid that does not exist
    stale.write_text("x", encoding="utf-8")
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not stale.exists()


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 200, "save_steps": 100000, "logging_steps": 1})
    out = tmp_path / "run"
    env = subprocess_env(tmp_path)
    proc = subprocess.Popen(_resume_cmd(cfg, out), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = out / "trainer_log.jsonl"
    deadline = time.time() + 300
    while not (log.is_file() and log.read_text().count("\n") >= 3):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM) at step" in err and "resume with --resume" in err
    assert not (tmp_path / "run.lock").exists(), "the lock is released"
    saved = [p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    assert len(saved) == 1, "one checkpoint, written on SIGTERM (save_steps is never reached)"
    step = int(saved[0].name.split("-")[1])
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), "--resume")
    # resuming continues from that step (and runs to the end)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resumed from {saved[0]}" in proc.stdout + proc.stderr or f"(step {step})" in proc.stdout + proc.stderr


def test_sigterm_during_start_up_exits_143_and_releases_the_lock(tmp_path):
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "run"
    proc = subprocess.Popen(_resume_cmd(cfg, out), cwd=tmp_path, env=subprocess_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "run.lock"
    deadline = time.time() + 120
    while not lock.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not lock.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs (a full disk on demand) needs root")
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, overwrite):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this container may not mount a tmpfs")
    try:
        cfg = write_tiny_config(tmp_path)
        out = disk / "run"
        if overwrite:  # a small previous run that fits, replaced by --overwrite
            out.mkdir()
            (out / "trainer_log.jsonl").write_text('{"current_steps": 1, "loss": 1.0}\n', encoding="utf-8")
        proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(out), *(["--overwrite"] if overwrite else []))
        assert proc.returncode == 2, proc.stderr[-3000:]
        err = proc.stderr.strip().splitlines()
        assert err[-1].startswith("glm: error: no space left on the device writing") and str(out) in err[-1]
        assert "Traceback" not in proc.stderr
        assert not list(out.glob("*.tmp")), "no partial checkpoint is left"
        if overwrite:
            assert (out / "trainer_log.jsonl").read_text().startswith('{"current_steps": 1'), "the old run is back"
    finally:
        subprocess.run(["umount", str(disk)])


def test_two_benches_on_one_folder_do_not_run_side_by_side(tmp_path, capsys):
    from glm.core.train.outdir import RunLock

    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "bench"
    holder = subprocess.Popen(["sleep", "60"])  # the first bench, as far as the lock can tell
    try:
        out.with_name("bench.lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                           "since": "now"}), encoding="utf-8")
        assert main(["bench", "fewshot", str(cfg), "--rows", "majority", "--output-dir", str(out)]) == 2
        assert f"is in use by pid {holder.pid}" in capsys.readouterr().err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(out):  # the holder is gone: its lock is stale and is replaced
        pass


def test_the_log_shows_the_warm_up_rate_each_step_applied(tmp_path):
    """warmup_steps: 1 halves step 1's rate ((0+1)/(1+1)); the log used to show the next step's full rate."""
    cfg = write_tiny_config(tmp_path, training={"max_steps": 4, "warmup_steps": 1, "lr_scheduler": "constant",
                                                "learning_rate": 0.01})
    proc = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lrs = [json.loads(l)["lr"] for l in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.005, 0.01, 0.01, 0.01])
