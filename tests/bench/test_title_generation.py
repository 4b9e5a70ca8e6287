"""Title generation end to end on the tiny config: adapt, glm eval, glm bench generation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import write_tiny_config  # noqa: E402

from glm.cli.main import main  # noqa: E402

GEN = {"task": "title_generation", "generation": {"train": 3, "val": 0, "test": 6}}


def test_generation_split_keeps_test_nodes_across_draws(tmp_path, monkeypatch):
    from dataclasses import replace

    from glm.core.config import load_config
    from glm.core.data.generation_split import generation_nodes, titled_nodes
    from glm.core.train.pipeline import prepare_data

    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    config = load_config(write_tiny_config(tmp_path, data=GEN))
    data = prepare_data(config)
    titled = set(titled_nodes(data.source))
    a = generation_nodes(data.source, config.data.generation, 0)
    b = generation_nodes(data.source, replace(config.data.generation, draw=1), 0)
    assert a.test == b.test and len(a.test) == 6 and len(a.train) == len(b.train) == 3 and a.train != b.train
    assert set(a.train + a.test) <= titled and not set(b.train) & set(b.test)
    eighty = generation_nodes(data.source, replace(config.data.generation, train=0.8, test=None), 0)
    assert len(eighty.train) == round(0.8 * len(titled)) and len(eighty.train) + len(eighty.test) == len(titled)
    # the bench's <method>@0.8 rows: more training examples, the same test (and validation) nodes
    more = generation_nodes(data.source, replace(config.data.generation, train=0.5, val=2), 0)
    fewer = generation_nodes(data.source, replace(config.data.generation, val=2), 0)
    assert more.test == fewer.test and more.val == fewer.val and len(more.train) > len(fewer.train)
    assert not set(more.train) & set(more.test + more.val)


def test_adapt_eval_and_bench_on_titles(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = write_tiny_config(tmp_path, data=GEN, training={"max_steps": 2, "logging_steps": 1, "save_steps": 0,
                                                          "learning_rate": 1e-2, "loss": "lm"},
                            eval={"max_new_tokens": 6, "batch_size": 4})
    run = tmp_path / "adapt"
    assert main(["adapt", str(cfg), "--output-dir", str(run)]) == 0
    out = tmp_path / "titles.jsonl"
    assert main(["eval", str(cfg), "--adapter", str(run), "--output", str(out), "training.output_dir=" + str(run)]) == 0
    text = capsys.readouterr().out
    assert "test: 6 titles generated" in text and "BLEU " in text and "ROUGE-L" in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(set(r) == {"node", "reference", "output"} and r["reference"] for r in rows)
    bench = tmp_path / "bench"
    assert main(["bench", "generation", str(cfg), "--rows", "neighbour_title,llm_zero_shot,llm_icl,graphlama",
                 "--output-dir", str(bench), "--no-progress"]) == 0
    report = json.loads((bench / "bench.json").read_text())
    rows = {s["row"]: s for s in report["summary"]}
    assert set(rows) == {"neighbour_title", "llm_zero_shot", "llm_icl", "graphlama"}
    assert all(0.0 <= s["bleu"] <= 100.0 and len(s["examples"]) == 5 for s in rows.values())
    assert rows["graphlama"]["train_examples"] == 3 and any((tmp_path / "bench-cache").glob("graphlama-*"))
    assert "Example outputs" in (bench / "bench.md").read_text()
    assert report["overrides"] == [] and report["config"] == str(cfg)
    assert {r["row"] for r in report["results"]} == set(rows)  # one entry per draw
    assert all(r["draw"] == 0 and "rouge1" in r for r in report["results"])
    spent = report["time"]  # where the time went, measured in this run
    assert set(spent["pretrain_seconds"]) == {"graphlama"} and spent["pretrain_seconds"]["graphlama"] > 0
    assert spent["pretrain_reused"] == {} and spent["row_seconds"]["graphlama"] > 0
    assert spent["total_seconds"] >= spent["pretrain_seconds"]["graphlama"] + sum(spent["row_seconds"].values()) - 1
    assert spent["cpu_seconds"] > 0 and spent["peak_rss_mb"] > 0 and "## Time (this run)" in (bench / "bench.md").read_text()
    assert main(["bench", "generation", str(cfg), "--rows", "graphlama", "--output-dir", str(bench), "--no-progress"]) == 0
    again = json.loads((bench / "bench.json").read_text())["time"]  # the row is read back: nothing trains
    assert again["pretrain_seconds"] == {} and again["row_seconds"] == {"graphlama": 0.0}
    assert again["pretrain_reused"]["graphlama"] == round(spent["pretrain_seconds"]["graphlama"], 1)  # its cost, noted
    # --adapt-config METHOD=PATH: that method adapts with the file's training section; its rows are made again
    (tmp_path / "own").mkdir()
    one_step = write_tiny_config(tmp_path / "own", data=GEN, training={"max_steps": 1, "save_steps": 0,
                                                                       "learning_rate": 1e-2, "loss": "lm"})
    assert main(["bench", "generation", str(cfg), "--rows", "graphlama,llm_icl", "--output-dir", str(bench),
                 "--no-progress", "--adapt-config", f"graphlama={one_step}"]) == 0
    own = json.loads((bench / "bench.json").read_text())
    assert own["adapt_configs"] == {"graphlama": str(one_step)} and own["time"]["pretrain_seconds"] == {}
    assert own["time"]["row_seconds"]["graphlama"] > 0 and own["time"]["row_seconds"]["llm_icl"] == 0.0
    state = json.loads((bench / "methods" / "graphlama" / "adapt-draw0" / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    # --adapt-set METHOD:KEY=VALUE: one setting changed on CONFIG's own adaptation, no file to copy
    assert main(["bench", "generation", str(cfg), "--rows", "graphlama", "--output-dir", str(bench), "--no-progress",
                 "--adapt-set", "graphlama:training.max_steps=3"]) == 0
    changed = json.loads((bench / "bench.json").read_text())
    assert changed["adapt_configs"] == {"graphlama": f"{cfg} + training.max_steps=3"}
    assert changed["adapt_settings"] == {"graphlama": {"file": str(cfg), "changes": ["training.max_steps=3"]}}
    assert changed["time"]["row_seconds"]["graphlama"] > 0
    state = json.loads((bench / "methods" / "graphlama" / "adapt-draw0" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
