"""``glm bench fewshot``: rows learn where they should on an easy synthetic TAG, seeds redraw the shots but
never the test nodes, ICL never sees the test node, the table equals the JSON, finished rows are reused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import glm_cmd, subprocess_env, write_tiny_config  # noqa: E402

from glm.bench.method_rows import BenchRun  # noqa: E402
from glm.core.config import load_config  # noqa: E402
from glm.bench import fewshot as bench  # noqa: E402

EASY = {"dataset": "synthetic", "embedder": "hashing", "fanout": [5, 5], "options": {"num_nodes": 96},
        "n_way": 2, "k_shot": 5, "test_per_class": 10, "max_text_words": 8, "tasks": ["node_classification"],
        "samples_per_task": 8}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from glm.core.train.pipeline import prepare_data

    root = tmp_path_factory.mktemp("bench")
    cfg = load_config(write_tiny_config(root, data=EASY), [f"data.cache_dir={root / 'cache'}"])
    return bench.BenchContext(cfg, prepare_data(cfg), root / "out", progress=False)


def test_seeds_redraw_shots_not_test_nodes(ctx):
    test = set(ctx.test)
    draws = [ctx.shots(s) for s in range(4)]
    assert draws[0] == list(ctx.data.split.train)
    assert len({tuple(d) for d in draws}) == 4
    for d in draws:
        assert not set(d) & test and not set(d) & set(ctx.data.split.val)
        assert sorted(ctx.label_index(d)) == [0] * 5 + [1] * 5  # balanced k shots per class
    assert ctx.test == list(ctx.data.split.test)


def test_icl_demonstrations_never_hold_the_test_node(ctx, monkeypatch):
    """The ICL row builds its demonstrations from the seed's shots only, the same for every test node
    (so neither the test node nor its label can pick them); recorded by watching which nodes' texts are read."""
    from glm.bench import text_baselines as tb

    read: list[int] = []
    real = tb.node_text
    monkeypatch.setattr(tb, "node_text", lambda source, node, words: read.append(node) or real(source, node, words))
    captured: list[str] = []
    monkeypatch.setattr(tb, "text_row", lambda llm, tok, prompts, free, choices, bs: captured.extend(prompts)
                        or tb.RowResult([0] * len(prompts)))
    monkeypatch.setattr(ctx, "_llm", (None, None))
    bench.BASELINE_ROWS["llm_icl"].run(ctx, 1)
    shots, test = ctx.shots(1), ctx.test
    assert read[: len(test)] == test  # the queries
    assert sorted(read[len(test):]) == sorted(shots) and not set(read[len(test):]) & set(test)
    demo_block = {p.split("Now the target paper:")[0] for p in captured}
    assert len(demo_block) == 1 and next(iter(demo_block)).count("Category:") == len(shots)


def test_feature_and_gnn_rows_learn_separable_classes(ctx):
    rows = ["chance", "majority", "linear_probe", "sgc", "gnn_gcn", "gnn_sage", "gnn_gat", "gnn_gt"]
    summary = {s["row"]: s for s in bench.summarise(bench.run_rows(ctx, rows, 2, force=True, log=lambda _: None))}
    assert summary["chance"]["accuracy"] == 0.5 and summary["majority"]["accuracy"] == 0.5
    for row in rows[2:]:
        assert summary[row]["accuracy"] >= 0.9, (row, summary[row])


def test_llm_rows_run_with_the_tiny_llm(ctx):
    summary = {s["row"]: s for s in bench.summarise(
        bench.run_rows(ctx, ["llm_zero_shot", "llm_icl"], 1, force=True, log=lambda _: None))}
    for row in ("llm_zero_shot", "llm_icl"):
        assert 0 <= summary[row]["accuracy"] <= 1 and summary[row]["calibrated_accuracy"] is not None
    assert summary["llm_icl"]["icl_time_ratio"] == pytest.approx(1.0)


def test_finished_rows_are_reused_and_force_recomputes(ctx, monkeypatch):
    calls = []
    real = bench.BASELINE_ROWS["linear_probe"]

    def counting(c, seed):
        calls.append(seed)
        return real.run(c, seed)

    monkeypatch.setitem(bench.BASELINE_ROWS, "linear_probe", bench.RowSpec("linear_probe", counting, "features", "x"))
    first = bench.run_rows(ctx, ["linear_probe"], 3, force=True, log=lambda _: None)
    again = bench.run_rows(ctx, ["linear_probe"], 3, log=lambda _: None)
    assert calls == [0, 1, 2] and [r.accuracy for r in again] == [r.accuracy for r in first]
    bench.run_rows(ctx, ["linear_probe"], 4, log=lambda _: None)  # one more seed: only that one runs
    assert calls == [0, 1, 2, 3]


def test_cli_table_equals_json_and_method_rows_run(tmp_path):
    cfg = write_tiny_config(tmp_path, data=EASY, training={"max_steps": 2, "save_steps": 0})
    out = tmp_path / "b"
    cmd = glm_cmd("bench", "fewshot", str(cfg), "training.align.steps=2", "--seeds", "2",
                  "--rows", "majority,linear_probe,graphlama,llaga", "--output-dir", str(out), "--no-progress")
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "bench.json").read_text())
    table = (out / "bench.md").read_text()
    for s in report["summary"]:
        line = next(l for l in table.splitlines() if l.startswith(f"| {s['row']} |"))
        assert f"{s['accuracy']:.3f}" in line
    assert {s["row"] for s in report["summary"]} == {"majority", "linear_probe", "graphlama", "llaga"}
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {s["row"]: s for s in report["summary"]}
    assert rows["graphlama"]["adapter_bytes"] > 0 and rows["graphlama"]["seeds"] == 2
    assert 0 <= rows["graphlama"]["token_probe"] <= 1 and 0 <= rows["llaga"]["token_probe"] <= 1
    assert rows["linear_probe"]["token_probe"] is None  # no soft tokens
    assert 0 <= rows["graphlama"]["encoder_probe"] <= 1 and rows["llaga"]["encoder_probe"] is None  # no GNN
    graphlama_line = next(l for l in table.splitlines() if l.startswith("| graphlama |"))
    assert graphlama_line.endswith(f"| {rows['graphlama']['shot_accuracy']:.3f} | "
                                   f"{rows['graphlama']['encoder_probe']:.3f} / {rows['graphlama']['token_probe']:.3f} |")
    assert 0 <= rows["llaga"]["shot_accuracy"] <= 1 and rows["linear_probe"]["shot_accuracy"] is None
    # one command compares them all: LLaGA (k tokens per graph) pre-trains without the warm-up, and says so
    assert report["pretrained_without_align"] == ["llaga"] and "warm-up (k soft tokens per graph): llaga." in table
    # the report says what made it: the overrides, and each method's pre-training time (made by this run)
    assert report["overrides"] == ["training.align.steps=2"] and report["pretrain_reused"] == {}
    assert report["config"] == str(cfg)
    assert set(report["pretrain_seconds"]) == {"graphlama", "llaga"} and min(report["pretrain_seconds"].values()) > 0
    cache = tmp_path / "bench-cache"  # pre-trained runs: $GLM_BENCH_CACHE/<method>-<hash>
    assert (next(cache.glob("graphlama-*")) / "align_log.jsonl").is_file()
    assert not (next(cache.glob("llaga-*")) / "align_log.jsonl").exists()
    rerun = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0 and "training" not in rerun.stderr  # every row reused, nothing trained again
    assert re.search(r"bench: 4 rows x 2 seeds", rerun.stdout)
    # --generate: the method row decodes too, and every answer parser reads the same answers
    gen = subprocess.run([*cmd[: cmd.index("--seeds")], "--seeds", "1", "--rows", "graphlama", "--generate",
                          "--output-dir", str(out), "--no-progress"], cwd=tmp_path, env=subprocess_env(tmp_path),
                         capture_output=True, text=True, timeout=900)
    assert gen.returncode == 0, gen.stderr[-3000:]
    parsers = json.loads((out / "bench.json").read_text())["summary"][0]["parsers"]
    assert set(parsers) == {"exact", "substring", "graphlama", "graphgpt", "llaga"}
    nodes = rows["graphlama"]["test_nodes"]
    assert all(0 <= v["accuracy"] <= 1 and 0 <= v["unmatched"] <= nodes for v in parsers.values())
    line = next(l for l in (out / "bench.md").read_text().splitlines() if l.startswith("| graphlama |") and "(" in l)
    assert f"{parsers['exact']['accuracy']:.3f} ({parsers['exact']['unmatched']:.1f})" in line


@pytest.mark.parametrize("stage", ["tokens", "encoder"])
def test_stage_probes_fit_the_shots_target_vectors(ctx, stage):
    """The probe reads the target's soft token or encoder output (not the text, not the test labels at
    fit time): the same logistic regression on vectors read independently through the embedding hook,
    one stage at a time, equals each stage's probe from the one pass that reads both."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from glm.core.data import tasks as T
    from glm.core.eval.embeddings import target_vectors
    from glm.bench.method_rows import _config, stage_probes
    from glm.core.train.pipeline import build_model, make_collator

    cfg = _config(ctx, "graphlama", "adapt", ctx.out / "probe")
    model = build_model(cfg)
    shots = ctx.shots(1)
    classes = ctx.data.split.class_indices(ctx.tag, "heldout")
    collate = make_collator(cfg, model, ctx.data)
    vec = {name: target_vectors(model, T.node_classification(ctx.data.source, nodes, classes=classes,
                                                             include_text=False), collate, stage).numpy()
           for name, nodes in (("shots", shots), ("test", ctx.test))}
    scaler = StandardScaler().fit(vec["shots"])
    clf = LogisticRegression(max_iter=2000, random_state=0).fit(scaler.transform(vec["shots"]), ctx.label_index(shots))
    expected = (clf.predict(scaler.transform(vec["test"])) == ctx.label_index(ctx.test)).mean()
    assert stage_probes(ctx, cfg, model, shots, ("tokens", "encoder"))[stage] == pytest.approx(float(expected))


def test_shot_accuracy_scores_the_shots_as_the_test_nodes_are(ctx, monkeypatch):
    """The fit on the shots is the row's own scoring (``_evaluate``) with the shots as the scored nodes: the
    same samples (nodes, prompts, subgraphs) reach the real scorer, and the same accuracy comes out."""
    from glm.bench.method_rows import _config, _evaluate, shot_accuracy
    from glm.core.eval import predict
    from glm.core.train.pipeline import build_model

    scored, real = [], predict.evaluate
    monkeypatch.setattr(predict, "evaluate", lambda model, samples, *a, **kw: (scored.append(list(samples)),
                                                                               real(model, samples, *a, **kw))[1])
    cfg = _config(ctx, "graphlama", "adapt", ctx.out / "shots")
    model = build_model(cfg)
    shots = ctx.shots(1)
    as_test = replace(ctx, data=replace(ctx.data, split=replace(ctx.data.split, test=shots)))
    row = _evaluate(as_test, cfg, model, 0.0, 0, None)
    expected = sum(p == g for p, g in zip(row.predictions, ctx.label_index(shots))) / len(shots)
    fit = shot_accuracy(ctx, cfg, model, shots)
    assert fit == pytest.approx(expected) and len(row.predictions) == len(shots)
    by_row, by_fit = scored[0], scored[-1]  # (_evaluate also scores one content-free sample)
    assert [s.meta["node"] for s in by_fit] == list(shots) and set(shots).isdisjoint(ctx.test)
    assert [s.prompt for s in by_fit] == [s.prompt for s in by_row]
    assert all(torch.equal(a.graphs[0].x, b.graphs[0].x) for a, b in zip(by_fit, by_row))


def test_icl_time_ratio_only_for_llm_rows():
    def seed(row, per_node):
        return bench.RowSeed(row, 0, 0.5, 0.5, None, 10, 0, None, 0.0, per_node, {})

    summary = {s["row"]: s for s in bench.summarise(
        [seed("linear_probe", 1e-5), seed("llm_icl", 2.0), seed("graphlama", 0.25)])}
    assert summary["linear_probe"]["icl_time_ratio"] is None  # microsecond rows: a 10^5 ratio says nothing
    assert summary["graphlama"]["icl_time_ratio"] == pytest.approx(8.0)
    assert summary["llm_icl"]["icl_time_ratio"] == pytest.approx(1.0)


def test_split_val_scores_validation_nodes_and_stores_apart(ctx, tmp_path):
    from glm.core.train.pipeline import prepare_data

    with pytest.raises(bench.BenchError, match="no validation nodes"):
        bench.run_rows(replace(ctx, split="val", out=tmp_path / "none"), ["linear_probe"], 1)
    cfg = load_config(write_tiny_config(tmp_path, data={**EASY, "val_per_class": 4}),
                      [f"data.cache_dir={tmp_path / 'cache'}"])
    val = bench.BenchContext(cfg, prepare_data(cfg), tmp_path / "out", progress=False, split="val")
    assert val.test == val.data.split.val and not set(val.test) & set(val.data.split.test)
    assert all(not set(val.shots(s)) & set(val.test) for s in range(3))  # shots never come from validation
    (found,) = bench.run_rows(val, ["linear_probe"], 1)
    assert found.test_nodes == 8 and (tmp_path / "out" / "rows-val" / "linear_probe" / "seed-0.json").is_file()
    assert not (tmp_path / "out" / "rows").exists()
    assert bench.write_report(val, [found], 1)["markdown"].name == "bench-val.md"
    assert "8 validation nodes" in (tmp_path / "out" / "bench-val.md").read_text()


def _counted_pretraining(ctx, monkeypatch, what):
    """``(runs, config)``: every pipeline run appends ``what(its config)`` to ``runs``; the config trains 1 step."""
    import copy

    from glm.core.train import pipeline

    runs = []
    real = pipeline.run_stage
    monkeypatch.setattr(pipeline, "run_stage", lambda cfg, **kw: runs.append(what(cfg)) or real(cfg, **kw))
    cfg = copy.deepcopy(ctx.config)
    cfg.training.max_steps = 1
    return runs, cfg


def test_method_pretraining_is_redone_when_its_settings_change(ctx, tmp_path, monkeypatch):
    """A bench output folder reused with other pre-training settings trains the method again (it used to
    adapt on the stale pre-trained run); the same settings reuse it; ``force`` trains it once per run."""
    import copy

    from glm.bench import method_rows

    runs, cfg = _counted_pretraining(ctx, monkeypatch, lambda c: c.training.learning_rate)
    base = replace(ctx, config=cfg, out=tmp_path / "out", run=BenchRun())

    def fresh(c):
        return replace(c, run=BenchRun())  # a new bench run on the same folder

    out = method_rows.pretrained(base, "graphlama")
    again = fresh(base)
    method_rows.pretrained(again, "graphlama")
    assert runs == [cfg.training.learning_rate] and again.run.pretrain_reused["graphlama"] > 0
    stamp = out / method_rows.PRETRAIN_STAMP  # an older cache: its stamp never recorded the seconds
    stamp.write_text(json.dumps({k: v for k, v in json.loads(stamp.read_text()).items() if k != "seconds"}))
    older = fresh(base)
    method_rows.pretrained(older, "graphlama")
    assert len(runs) == 1 and older.run.pretrain_reused == {"graphlama": None}  # reused, its cost unknown
    changed = copy.deepcopy(cfg)
    changed.training.learning_rate = cfg.training.learning_rate / 2
    method_rows.pretrained(fresh(replace(base, config=changed)), "graphlama")
    assert runs[-1] == changed.training.learning_rate and len(runs) == 2
    forced = fresh(replace(base, config=changed, force=True))
    method_rows.pretrained(forced, "graphlama")
    method_rows.pretrained(forced, "graphlama")  # the second seed of the same run
    assert len(runs) == 3


def test_benches_share_one_pretrained_run(ctx, tmp_path, monkeypatch):
    """A bench of a pre-training config and another bench with it as ``--pretrain-config`` (the generation
    bench's way) pre-train a method once between them, in ``$GLM_BENCH_CACHE``, whatever their output folders."""
    import copy

    from glm.bench import method_rows

    runs, cfg = _counted_pretraining(ctx, monkeypatch, lambda c: c.training.output_dir)
    own = replace(ctx, config=cfg, out=tmp_path / "fewshot", run=BenchRun())
    other_config = copy.deepcopy(cfg)
    other_config.eval.max_new_tokens = 7  # the other bench's own settings differ; its pre-training does not
    pretrain_config = copy.deepcopy(cfg)  # an override of the title split reaches it too, and changes nothing
    pretrain_config.data = replace(cfg.data, generation=replace(cfg.data.generation, test=60))
    other = replace(ctx, config=other_config, pretrain_config=pretrain_config, out=tmp_path / "generation",
                    run=BenchRun())
    first, second = method_rows.pretrained(own, "graphlama"), method_rows.pretrained(other, "graphlama")
    assert first == second and len(runs) == 1
    other_k = copy.deepcopy(cfg)  # another k (``--shots``) changes the held-out classes only, never pre-training
    other_k.data = replace(cfg.data, k_shot=cfg.data.k_shot + 1)
    assert method_rows.pretrained(replace(own, config=other_k, run=BenchRun()), "graphlama") == first
    assert len(runs) == 1
    assert first.parent == tmp_path / "bench-cache" and first.name.startswith("graphlama-")


def test_each_method_adapts_with_its_own_settings(ctx, tmp_path):
    """``--adapt-config METHOD=PATH``: the method's rows adapt with that config's training section and
    stage_extra, the others with the default; only the rows of a method whose settings changed are
    recomputed; a method without a GNN encoder leaves the encoder's patterns out and says so; other
    settings that cannot fit a method are refused before anything trains."""
    import copy

    from glm.cli.bench import adapt_settings
    from glm.cli.common import CliError
    from glm.bench.method_rows import _config

    whole = write_tiny_config(tmp_path, training={"learning_rate": 1e-3, "lr_groups": {"encoder.*": 1e-4}},
                              model={"stage_extra": ["projector.*", "encoder.*"]}).rename(tmp_path / "whole.yaml")
    plain = write_tiny_config(tmp_path, training={"learning_rate": 1e-2})
    adapt = adapt_settings([str(whole), f"llaga={plain}"], [])
    assert set(adapt) == {"", "llaga"} and adapt[""].stage_extra == ("projector.*", "encoder.*")
    c = replace(ctx, adapt=adapt)
    lama, llaga = (_config(c, m, "adapt", tmp_path / m) for m in ("graphlama", "llaga"))
    assert lama.model.stage_extra == ["projector.*", "encoder.*"] and lama.training.lr_groups == {"encoder.*": 1e-4}
    assert llaga.model.stage_extra == [] and llaga.training.learning_rate == 1e-2 and not llaga.training.lr_groups
    assert _config(c, "graphlama", "pretrain", tmp_path / "p").training.stage == "pretrain"  # CONFIG's training

    rows = bench.all_rows()
    other = replace(c, adapt={**adapt, "llaga": replace(adapt["llaga"], training=copy.deepcopy(lama.training))})
    assert other.row_hash(rows["llaga"]) != c.row_hash(rows["llaga"])
    assert other.row_hash(rows["graphlama"]) == c.row_hash(rows["graphlama"])
    assert other.row_hash(rows["linear_probe"]) == c.row_hash(rows["linear_probe"]) == bench.config_hash(ctx.config)

    said: list[str] = []
    bench._check_request(c, ["graphlama", "llaga"], log=said.append)  # each fits its method
    assert said == []
    one = replace(ctx, adapt={"": adapt[""]})  # LLaGA has no encoder to widen or give a rate: left out, said
    bench._check_request(one, ["linear_probe", "graphlama", "llaga"], log=said.append)
    assert said == [f"llaga has no GNN encoder: its adaptation leaves out ['encoder.*'] of --adapt-config {whole}"]
    left = _config(one, "llaga", "adapt", tmp_path / "l")
    assert left.model.stage_extra == ["projector.*"] and left.training.lr_groups == {}
    assert _config(one, "graphlama", "adapt", tmp_path / "g").model.stage_extra == ["projector.*", "encoder.*"]
    typo = replace(ctx, adapt={"": replace(adapt[""], stage_extra=("projector.*", "encodr.*"))})
    with pytest.raises(bench.BenchError, match=rf"--adapt-config {whole}, method llaga: model.stage_extra: "
                                               r"\['encodr\.\*'\] match no parameter \(parameters: \['projector', 'template'\]\)"):
        bench._check_request(typo, ["linear_probe", "llaga"])
    no_extra = replace(ctx, adapt={"": replace(adapt[""], stage_extra=())})
    with pytest.raises(bench.BenchError, match=r"method graphlama: training.lr_groups: \['encoder\.\*'\] match no "
                                               r"trainable parameter of this stage .*; give graphlama its own "
                                               r"adaptation: --adapt-config graphlama=PATH"):
        bench._check_request(no_extra, ["graphlama"])
    with pytest.raises(CliError, match="unknown method 'graphlam'; known: graphgpt, graphlama, llaga"):
        adapt_settings([f"graphlam={plain}"], [])
    with pytest.raises(CliError, match="METHOD=llaga given twice"):
        adapt_settings([f"llaga={plain}", f"llaga={whole}"], [])


def test_adapt_set_changes_one_setting_of_every_method_or_of_one(tmp_path):
    """``--adapt-set [METHOD:]KEY=VALUE``: on top of the method's file (or the default file, or CONFIG), the
    changes for every method, then its own; only the adaptation's keys; the report names file and changes."""
    from glm.bench.settings import adapt_of, adapt_report, config_hash
    from glm.cli.bench import adapt_settings
    from glm.cli.common import CliError
    from glm.core.config import load_config

    cfg = write_tiny_config(tmp_path, training={"learning_rate": 1e-2, "max_steps": 7})
    adapt = adapt_settings([], [], ["graphlama:training.learning_rate=1e-3"], str(cfg))
    assert set(adapt) == {"graphlama"} and adapt["graphlama"].training.learning_rate == 1e-3
    assert adapt["graphlama"].training.max_steps == 7 and adapt_of(adapt, "llaga") is None  # the others: CONFIG's
    assert adapt_report(adapt) == {"adapt_configs": {"graphlama": f"{cfg} + training.learning_rate=1e-3"},
                                   "adapt_settings": {"graphlama": {"file": str(cfg),
                                                                    "changes": ["training.learning_rate=1e-3"]}}}

    (tmp_path / "own").mkdir()
    own = write_tiny_config(tmp_path / "own", training={"learning_rate": 5e-3, "max_steps": 3})
    both = adapt_settings([f"llaga={own}"], ["training.seed=9"],
                          ["training.max_steps=2", "llaga:training.max_steps=4",
                           'llaga:training.lr_groups={"projector.*": 1.0e-4}'], str(cfg))
    assert set(both) == {"", "llaga"}
    assert both[""].training.max_steps == 2 and both[""].training.learning_rate == 1e-2  # CONFIG + every method's
    assert both["llaga"].training.max_steps == 4 and both["llaga"].training.learning_rate == 5e-3  # then its own
    assert both["llaga"].training.lr_groups == {"projector.*": 1e-4} and both["llaga"].training.seed == 9
    (tmp_path / "copy").mkdir()  # a change hashes as a copy of the file with it written in: rows are reused
    copy = write_tiny_config(tmp_path / "copy", training={"learning_rate": 1e-2, "max_steps": 2})
    base = load_config(cfg)
    assert config_hash(base, adapt_settings([str(copy)], [])[""]) == \
        config_hash(base, adapt_settings([], [], ["training.max_steps=2"], str(cfg))[""])

    with pytest.raises(CliError, match=r"--adapt-set data.k_shot=3: expected \[METHOD:\]training.KEY=VALUE .*"
                                       r"found 'data.k_shot=3'"):
        adapt_settings([], [], ["data.k_shot=3"], str(cfg))
    with pytest.raises(CliError, match="--adapt-set graphlam:training.max_steps=1: unknown method 'graphlam'"):
        adapt_settings([], [], ["graphlam:training.max_steps=1"], str(cfg))
    with pytest.raises(CliError, match="expected"):
        adapt_settings([], [], ["graphlama:training.max_steps"], str(cfg))


def test_shots_sweep_writes_a_curve_of_every_row(tmp_path, capsys):
    from glm.cli.main import main

    cfg = write_tiny_config(tmp_path, data={**EASY, "cache_dir": str(tmp_path / "cache")})
    out = tmp_path / "sweep"
    args = ["bench", "fewshot", str(cfg), "--rows", "majority,linear_probe", "--seeds", "2", "--output-dir", str(out),
            "--no-progress"]
    assert main([*args, "--shots", "2,1"]) == 0
    lines = (out / "curve.md").read_text().splitlines()
    assert "| row | k=1 | k=2 |" in lines and "synthetic: 2-way k-shot" in lines[2]
    curve = json.loads((out / "curve.json").read_text())
    assert curve["shots"] == [1, 2] and (out / "curve.png").stat().st_size > 0
    for k in (1, 2):
        bench_json = json.loads((out / f"k{k}" / "bench.json").read_text())
        assert "1-shot" in bench_json["title"] if k == 1 else "2-shot" in bench_json["title"]
        probe = next(s for s in bench_json["summary"] if s["row"] == "linear_probe")
        assert curve["rows"]["linear_probe"][str(k)]["accuracy"] == probe["accuracy"]
        assert f"{probe['accuracy']:.3f} ± {probe['accuracy_std']:.3f}" in next(
            l for l in lines if l.startswith("| linear_probe |")).split(" | ")[k]
    capsys.readouterr()
    for bad in ("0,2", "a", "2,2"):
        assert main([*args, "--shots", bad]) == 2
        assert f"--shots: expected distinct k >= 1 separated by commas (1,2,5), found '{bad}'" in capsys.readouterr().err


def test_draws_that_cannot_differ_are_refused(tmp_path, capsys):
    """test_per_class: null leaves exactly k nodes per class outside test/val: five 'draws' would be one."""
    from glm.cli.main import main
    from glm.core.data.splits import make_few_shot_split, shot_pools
    from glm.core.data.tag import synthetic_tag

    tag = synthetic_tag()
    split = make_few_shot_split(tag, 2, 2, 0, val_per_class=0, test_per_class=None)
    assert set(shot_pools(split, tag).values()) == {2}
    assert min(shot_pools(make_few_shot_split(tag, 2, 2, 0, val_per_class=0, test_per_class=3), tag).values()) > 2
    cfg = write_tiny_config(tmp_path, data={**EASY, "test_per_class": None})
    args = ["bench", "fewshot", str(cfg), "--rows", "majority", "--output-dir", str(tmp_path / "b"), "--no-progress"]
    assert main([*args, "--seeds", "3"]) == 2
    assert "every draw would use the same shots" in capsys.readouterr().err
    assert main([*args, "--seeds", "1"]) == 0


def test_an_option_added_later_keeps_the_hash_of_results_made_before_it(tmp_path, monkeypatch):
    """``LATER_OPTIONS``: at its default the option is left out of the hash (a config from before it existed,
    simulated by a ``to_dict`` without it, hashes the same); set, it changes the hash."""
    from glm.bench.settings import LATER_OPTIONS, config_hash
    from glm.core.config import load_config

    cfg = load_config(write_tiny_config(tmp_path))
    now = config_hash(cfg)
    real = type(cfg).to_dict

    def before(self):
        d = real(self)
        for *parents, key in LATER_OPTIONS:
            section = d
            for name in parents:
                section = section[name]
            section.pop(key)
        return d

    monkeypatch.setattr(type(cfg), "to_dict", before)
    assert config_hash(cfg) == now
    monkeypatch.setattr(type(cfg), "to_dict", real)
    cfg.data.standardize = True
    assert config_hash(cfg) != now


def test_auto_dtype_hashes_as_what_it_resolves_to(tmp_path, monkeypatch):
    """``model.llm.dtype: auto`` gives fp32 on one machine and bf16 on another: results made either way are
    never read back as the other's; a fixed dtype does not depend on the machine."""
    import glm.core.llm as llm
    from glm.bench.settings import config_hash
    from glm.core.config import load_config

    auto = load_config(write_tiny_config(tmp_path), ["model.llm.dtype=auto"])
    fixed = load_config(write_tiny_config(tmp_path), ["model.llm.dtype=float32"])
    hashes = {}
    for fast in (False, True):
        monkeypatch.setattr(llm, "fast_bf16", lambda device="cpu", fast=fast: fast)
        hashes[fast] = config_hash(auto), config_hash(fixed)
    assert hashes[False][0] != hashes[True][0] and hashes[False][1] == hashes[True][1]


def test_validation_and_test_benches_share_one_adaptation(tmp_path, monkeypatch):
    """A seed's adaptation is kept beside its pre-trained run, keyed by the adaptation's settings and shots:
    the test bench after ``--split val`` (and a bench in another folder) reads it back and scores exactly as
    the trained model did; other shots, other settings or ``force`` train again."""
    import copy

    from glm.bench import method_rows
    from glm.core.train.pipeline import prepare_data

    cfg = load_config(write_tiny_config(tmp_path, data={**EASY, "val_per_class": 4}),
                      [f"data.cache_dir={tmp_path / 'cache'}", "training.max_steps=2"])
    data = prepare_data(cfg)
    stages, short = _counted_pretraining(
        bench.BenchContext(cfg, data, tmp_path / "x"), monkeypatch, lambda c: c.training.stage)
    test = bench.BenchContext(short, data, tmp_path / "test", progress=False)
    first = method_rows.run_method(test, "graphlama", 1)
    assert stages == ["pretrain", "adapt"] and Path(first.extra["run"]).parent.name == "adapted"
    again = method_rows.run_method(replace(test, out=tmp_path / "elsewhere", run=BenchRun()), "graphlama", 1)
    val = method_rows.run_method(replace(test, split="val", out=tmp_path / "val", run=BenchRun()), "graphlama", 1)
    assert stages == ["pretrain", "adapt"]  # both read the adaptation back
    assert again.predictions == first.predictions and again.calibrated == first.calibrated
    assert (again.train_seconds, again.trainable_params) == (first.train_seconds, first.trainable_params)
    assert again.extra == first.extra and len(val.predictions) == 8
    method_rows.run_method(test, "graphlama", 2)  # other shots
    changed = copy.deepcopy(short)
    changed.training.learning_rate /= 2  # other adaptation settings (pre-training too here)
    method_rows.run_method(replace(test, config=changed, run=BenchRun()), "graphlama", 1)
    assert stages == ["pretrain", "adapt", "adapt", "pretrain", "adapt"]
    forced = method_rows.run_method(replace(test, force=True, run=BenchRun()), "graphlama", 1)
    assert stages[5:] == ["pretrain", "adapt"] and forced.predictions == first.predictions
