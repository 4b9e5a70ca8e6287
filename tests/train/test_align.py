"""``training.align``: the alignment warm-up's losses against a direct computation, its targets
against the LLM's own embedding rows, that it moves soft tokens towards their node's text and
only the stage's graph-side tensors, that it runs once per run (not again on resume), and that
methods without one token per node are refused by name. Real pieces: tiny random-init LLM,
synthetic TAG through the real samplers and collator, real DeepSpeed through the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml

from glm.core.config import AlignSettings, ConfigError, config_from_dict
from glm.core.data.tasks import clip_words
from glm.core.stages import set_stage
from glm.core.train.align import AlignError, TextEmbeddingTargets, align_loss, align_warmup
from glm.core.train.pipeline import build_model, make_collator, prepare_data, stage_samples

from train_helpers import TINY_CONFIG, run_glm, write_tiny_config


def tiny(tmp_path, **training):
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    data["data"]["samples_per_task"] = 12
    data["training"].update(training)
    return config_from_dict(data, "<tiny>").validate("<tiny>")


def test_losses_equal_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(5, 12, generator=g), torch.randn(5, 12, generator=g)
    ids = torch.tensor([3, 7, 3, 9, 11])
    cos = F.cosine_similarity(z, t, dim=-1)
    assert float(align_loss(z, t, ids, "cosine")) == pytest.approx(float((1 - cos).mean()), rel=1e-6)
    sim = F.normalize(z, dim=-1) @ F.normalize(t, dim=-1).T / 0.5
    expected = 0.0
    for i in range(5):  # row i: its own target against every other node's (node 3 twice: not its own negative)
        keep = [j for j in range(5) if j == i or ids[j] != ids[i]]
        expected += -torch.log_softmax(sim[i, keep], 0)[keep.index(i)] / 10
        keep_col = [j for j in range(5) if j == i or ids[j] != ids[i]]
        expected += -torch.log_softmax(sim[keep_col, i], 0)[keep_col.index(i)] / 10
    assert float(align_loss(z, t, ids, "contrastive", temperature=0.5)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(AlignError, match="training.align.loss"):
        align_loss(z, t, ids, "l2")


def test_targets_are_the_mean_embedding_rows_of_the_clipped_text(tmp_path):
    config = tiny(tmp_path)
    model = build_model(config)
    data = prepare_data(config)
    weight = model.llm.get_input_embeddings().weight
    targets = TextEmbeddingTargets(weight, model.tokenizer, data.tag.texts, max_words=3)
    ids = model.tokenizer(clip_words(data.tag.texts[5], 3), add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(targets(torch.tensor([5, 5]))[1], weight[ids].float().mean(0))


def test_warmup_pulls_tokens_towards_their_text_and_trains_only_the_stage(tmp_path):
    config = tiny(tmp_path)
    model = build_model(config)
    set_stage(model, "pretrain")
    data = prepare_data(config)
    samples = stage_samples(config, data)
    collate = make_collator(config, model, data)
    targets = TextEmbeddingTargets(model.llm.get_input_embeddings().weight, model.tokenizer, data.tag.texts, 8)
    probe = collate(samples[:16])

    def mean_cos():
        with torch.no_grad():
            tokens = model.node_tokens(probe.graphs, probe.graphs_per_sample, probe.task_embedding)
        return float(F.cosine_similarity(tokens, targets(probe.graphs.node_ids), dim=-1).mean())

    before_cos = mean_cos()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    settings = AlignSettings(steps=60, learning_rate=1e-2, batch_size=8, loss="cosine")
    records = align_warmup(model, samples, collate, targets, settings, seed=0, logging_steps=20, log_dir=tmp_path)
    assert [r["align_step"] for r in records] == [20, 40, 60]
    assert [json.loads(line) for line in (tmp_path / "align_log.jsonl").read_text().splitlines()] == records
    assert records[-1]["align_loss"] < records[0]["align_loss"]
    assert mean_cos() > before_cos + 0.2
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert not any(n.startswith("llm.") for n in changed)


def test_adaptation_stages_skip_the_warmup(tmp_path):
    from glm.core.train.pipeline import make_align_warmup

    config = tiny(tmp_path, align={"steps": 5})
    model, data = build_model(config), prepare_data(config)
    assert make_align_warmup(config, model, data, [], None) is not None
    config.training.stage = "adapt"
    assert make_align_warmup(config, model, data, [], None) is None


def test_methods_without_one_token_per_node_are_refused_by_name():
    model = SimpleNamespace(node_token_module=SimpleNamespace(tokens_per_graph=4))
    with pytest.raises(AlignError, match="training.align.steps=3: .*per graph"):
        align_warmup(model, [], None, None, AlignSettings(steps=3), seed=0)


@pytest.mark.parametrize("key, value", [("steps", -1), ("batch_size", 0), ("learning_rate", 0),
                                        ("temperature", -0.1), ("loss", "l2")])
def test_bad_settings_are_named(key, value):
    with pytest.raises(ConfigError, match=f"training.align.{key}"):
        config_from_dict({"training": {"align": {key: value}}}, "<t>").validate("<t>")


def test_runs_once_per_run_and_not_again_on_resume(tmp_path):
    cfg = write_tiny_config(tmp_path, training={**TINY_CONFIG["training"], "output_dir": "runs/a",
                                                "align": {"steps": 4, "batch_size": 4}})
    first = run_glm(tmp_path, "pretrain", str(cfg), "--no-progress")
    assert first.returncode == 0, first.stderr[-2000:]
    log = tmp_path / "runs/a/align_log.jsonl"
    assert len(log.read_text().splitlines()) == 4
    log.write_text("kept\n")
    resumed = run_glm(tmp_path, "pretrain", str(cfg), "training.resume=runs/a/checkpoint-3",
                      "training.overwrite_output_dir=false", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert log.read_text() == "kept\n"  # the checkpoint held the warm-up's result; it did not run again
    bad = run_glm(tmp_path, "pretrain", str(cfg), "model.method=llaga", "training.output_dir=runs/l")
    assert bad.returncode == 2 and "training.align.steps=4" in bad.stderr
    assert not (tmp_path / "runs/l").exists()
