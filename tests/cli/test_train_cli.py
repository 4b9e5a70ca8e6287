"""``glm pretrain|adapt|eval|infer|recipes|plot|demo`` end to end, in subprocesses (real
DeepSpeed, tiny random-init LLM, synthetic TAG) plus a quick demo on the real CiteSeer TAG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import run_glm, subprocess_env, write_tiny_config  # noqa: E402

from glm.cli.main import main  # noqa: E402


def test_recipes_lists_builtins_one_line_each(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [l.split()[0] for l in lines]
    for name in ("cpu", "single-gpu", "3090-zero2-offload", "3090-zero3-offload"):
        assert name in names
    assert all(len(l.split(None, 1)) == 2 for l in lines)


def test_recipe_resolved_from_a_config(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path, training={"micro_batch_size": 2, "gradient_accumulation_steps": 3})
    assert main(["recipes", "3090-zero2-offload", "--config", str(cfg)]) == 0
    ds = json.loads(capsys.readouterr().out)
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["gradient_accumulation_steps"] == 3
    assert ds["zero_optimization"]["stage"] == 2


def test_print_config_shows_overrides_and_writes_nothing(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "never"
    assert main(["pretrain", str(cfg), "training.max_steps=3", "data.fanout=[2,2]", "--output-dir", str(out),
                 "--recipe", "single-gpu", "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["training"]["max_steps"] == 3 and shown["data"]["fanout"] == [2, 2]
    assert shown["recipe"] == "single-gpu" and shown["training"]["output_dir"] == str(out)
    assert not out.exists()


def test_bad_config_key_is_a_named_error(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    assert main(["adapt", str(cfg), "training.lr=0.1", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'training.lr'" in err and str(cfg) in err and "learning_rate" in err


def test_plot_writes_pngs(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"current_steps": i, "loss": 3.0 / i, "lr": 1e-3 * (1 - i / 20)} for i in range(1, 20)]
    (run / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["plot", str(run)]) == 0
    for key in ("loss", "lr"):
        png = run / f"training_{key}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "empty")]) == 2


def test_pretrain_adapt_eval_infer_on_tiny_model(tmp_path, capsys, monkeypatch):
    # Training commands run in subprocesses (DeepSpeed initialises torch.distributed and a deterministic
    # mode that must not leak into this process); eval and infer use no DeepSpeed and run in-process.
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0})
    pre, ada = tmp_path / "pre", tmp_path / "ada"
    r = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(pre), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "pretrain: 2 steps" in r.stdout
    assert (pre / "glm_config.yaml").is_file() and (pre / "checkpoint-2" / "trainer_state.json").is_file()
    log = [json.loads(l) for l in (pre / "trainer_log.jsonl").read_text().splitlines()]
    assert [x["current_steps"] for x in log] == [1, 2]
    for key in ("loss", "lr", "grad_norm", "throughput", "elapsed_time", "remaining_time", "rss_mb", "epoch"):
        assert key in log[0]

    # a second run into the same directory is refused unless asked
    r = run_glm(tmp_path, "pretrain", str(cfg), "--output-dir", str(pre), "--no-progress")
    assert r.returncode == 2 and "not empty" in r.stderr

    r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(ada), f"training.init_from={pre}",
                "training.max_steps=2", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    from glm.core.adapter import read_adapter

    tensors, meta = read_adapter(ada / "adapter_model.safetensors")
    assert meta["stage"] == "adapt" and not any(k.startswith(("llm.", "encoder.", "projector.")) for k in tensors)

    for key, value in subprocess_env(tmp_path).items():  # the same offline environment as the subprocesses
        if key.startswith(("GLM_", "HF_", "TRANSFORMERS_", "TL_")):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    preds = tmp_path / "preds.jsonl"
    capsys.readouterr()
    assert main(["eval", str(cfg), "--adapter", str(ada), "--output", str(preds)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and str(pre) in out  # the pre-trained graph side was applied first
    rows = [json.loads(l) for l in preds.read_text().splitlines()]
    assert len(rows) == 6 and all(set(row["scores"]) == {row["label"], *row["scores"]} for row in rows)

    nodes = [str(row["node"]) for row in rows[:3]]
    assert main(["infer", str(cfg), "--adapter", str(ada), "--nodes", ",".join(nodes),
                 "eval.max_new_tokens=4", "eval.batch_size=2"]) == 0
    got = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    assert [str(g["node"]) for g in got] == nodes and all(isinstance(g["prediction"], str) for g in got)
    assert main(["infer", str(cfg), "--adapter", str(ada), "--nodes", "a,b"]) == 2
    assert "--nodes must be all, a file, or comma-separated integers" in capsys.readouterr().err


def test_quick_demo_end_to_end_with_tiny_llm(tmp_path, data_dir):
    """The demo pipeline on the real CiteSeer TAG, with a tiny LLM in place of SmolLM2 (speed)."""
    r = run_glm(tmp_path, "demo", "--quick", "--backend", "pyg", "--no-baseline", "--output-dir", str(tmp_path / "d"),
                "--draws", "2", "--json", str(tmp_path / "d.json"),
                "model.llm.name=tiny-random", "model.llm.max_length=4096", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "backend" in r.stdout and "pyg" in r.stdout and "held-out classes" in r.stdout
    for run in ("adapt", "adapt-draw1"):  # the second k-shot draw adapts the same pre-trained side again
        assert (tmp_path / "d" / "pyg" / run / "adapter_model.safetensors").is_file()
    (row,) = json.loads((tmp_path / "d.json").read_text())
    assert len(row["draw_accuracies"]) == 2 and row["draw_accuracies"][0] == row["accuracy"]
    assert " ± " in r.stdout and "(2)" in r.stdout
    assert run_glm(tmp_path, "demo", "--quick", "--draws", "0").returncode == 2
    _demo_run_is_the_benchs(tmp_path, tmp_path / "d" / "pyg" / "pretrain",
                            ["model.llm.name=tiny-random", "model.llm.max_length=4096"])


def _demo_run_is_the_benchs(tmp_path, demo_run, overrides):
    """The demo keeps its pre-trained graph side in the bench's cache, under the key of the run the bench
    would make from the demo's pre-training config: a bench finds it (nothing trains), and a bench that
    pre-trains those settings itself (a process like the demo's: bits depend on the thread count) makes the
    same bytes under the same key."""
    import subprocess

    snippet = (
        "import sys; from pathlib import Path; from types import SimpleNamespace\n"
        "from glm.bench import method_rows; from glm.core.config import load_config; from glm.demo import examples_dir\n"
        "cfg = load_config(examples_dir() / 'demo_pretrain_quick.yaml', sys.argv[1:])\n"
        "ctx = SimpleNamespace(config=cfg, pretrain_config=cfg, out=Path('b'), adapt_for=lambda m: None,\n"
        "                      run=method_rows.BenchRun(), force=False, progress=False, data=None)\n"
        "out = method_rows.pretrained(ctx, 'graphlama')\n"
        "print(out, sorted(ctx.run.pretrain_reused), sorted(ctx.run.pretrain_seconds))\n")

    def bench_pretraining(cache):
        env = {**subprocess_env(tmp_path), "GLM_BENCH_CACHE": str(cache)}
        r = subprocess.run([sys.executable, "-c", snippet, *overrides], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip().splitlines()[-1].split(" ", 1)

    kept, done = bench_pretraining(tmp_path / "bench-cache")  # the demo's cache ($GLM_BENCH_CACHE of this test)
    assert done == "['graphlama'] []"  # reused, nothing trained
    own, done = bench_pretraining(tmp_path / "own-cache")
    assert done == "[] ['graphlama']" and Path(own).name == Path(kept).name
    adapter = "adapter_model.safetensors"
    assert (Path(kept) / adapter).read_bytes() == (demo_run / adapter).read_bytes() == (Path(own) / adapter).read_bytes()
    assert not list(Path(kept).glob("checkpoint-*"))  # the finished run only


@pytest.mark.slow
def test_quick_demo_with_smollm2_both_backends(tmp_path, data_dir):
    r = run_glm(tmp_path, "demo", "--quick", "--output-dir", str(tmp_path / "d"), "--json", str(tmp_path / "d.json"),
                timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "d.json").read_text())
    assert [row["backend"] for row in rows] == ["pyg", "gammagl"]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["adapter_bytes"] > 0


def test_an_unmatched_lr_group_is_named_not_blamed_on_the_recipe(tmp_path):
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0, "lr_groups": {"nothing.*": 1e-3},
                                                "output_dir": "runs/x"})
    r = run_glm(tmp_path, "pretrain", str(cfg), "--no-progress")
    assert r.returncode == 2
    assert "training.lr_groups: ['nothing.*'] match no trainable parameter" in r.stderr
    assert "recipe" not in r.stderr.splitlines()[-1] and not (tmp_path / "runs/x").exists()
