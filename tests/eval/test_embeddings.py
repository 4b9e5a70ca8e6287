"""Embedding maps: the hooked vectors are the module outputs at the target nodes, the silhouette
separates well-separated clusters, projections give [n, 2], the PNG has one panel per map."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from model_helpers import random_subgraph, tiny_model  # noqa: E402

from glm.core.data.collate import GraphCollator  # noqa: E402
from glm.core.eval.embeddings import (  # noqa: E402
    EmbeddingError, STAGES, plot_maps, project, silhouette, stage_vectors, target_vectors,
)
from glm.core.sample import Sample  # noqa: E402


def _samples(n=6):
    gen = torch.Generator().manual_seed(0)
    return [Sample(prompt=f"node {i}: <graph>?", answer="A" if i % 2 else "B", graphs=[random_subgraph(3 + i % 3, 6, 8, gen)],
                   task="node_classification", task_text="which?") for i in range(n)]


@pytest.mark.parametrize("stage", ["encoder", "gate", "tokens"])
def test_vectors_are_the_stage_outputs_at_each_target(stage):
    model = tiny_model("llama")
    model.set_task_embedding(torch.randn(model.config.gate_dim))
    samples = _samples()
    collate = GraphCollator(model.tokenizer, inference=True, padding_side="left")
    got = target_vectors(model, samples, collate, stage, batch_size=4)
    assert got.shape[0] == len(samples)
    with torch.no_grad():  # direct: run the stage on each sample alone, take node 0
        for i, s in enumerate(samples):
            batch = collate([s])
            module = {"encoder": model.encoder, "gate": model.gate, "tokens": model.node_token_module}[stage]
            seen = []
            h = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
            model.embed(batch)
            h.remove()
            torch.testing.assert_close(got[i], seen[-1][0].float(), rtol=1e-4, atol=1e-5)


def test_one_pass_reads_every_stage_as_separate_passes_do():
    model = tiny_model("llama")
    model.set_task_embedding(torch.randn(model.config.gate_dim))
    samples, collate = _samples(), GraphCollator(model.tokenizer, inference=True, padding_side="left")
    together = stage_vectors(model, samples, collate, STAGES, batch_size=4)
    assert list(together) == list(STAGES)
    for stage in STAGES:
        torch.testing.assert_close(together[stage], target_vectors(model, samples, collate, stage, batch_size=4))


def test_a_stage_that_does_not_run_is_named(monkeypatch):
    from glm.core.eval import embeddings

    model = tiny_model("llama")
    model.set_task_embedding(torch.randn(model.config.gate_dim))
    unused, real = torch.nn.Linear(2, 2), embeddings._stage_module
    monkeypatch.setattr(embeddings, "_stage_module", lambda m, stage: unused if stage == "gate" else real(m, stage))
    with pytest.raises(EmbeddingError, match=r"\['gate'\] did not run"):
        stage_vectors(model, _samples(), GraphCollator(model.tokenizer, inference=True, padding_side="left"),
                      ("tokens", "gate"))


def test_missing_stage_is_named():
    model = tiny_model("llama")
    del model.gate
    with pytest.raises(EmbeddingError, match="gate"):
        target_vectors(model, _samples(), GraphCollator(model.tokenizer), "gate")


def test_silhouette_and_projections(tmp_path):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20, 8, generator=gen) * 0.1 + torch.tensor([5.0] + [0.0] * 7)
    b = torch.randn(20, 8, generator=gen) * 0.1 + torch.tensor([0.0, 5.0] + [0.0] * 6)
    x, labels = torch.cat([a, b]), ["a"] * 20 + ["b"] * 20
    assert silhouette(x, labels) > 0.5
    mixed = torch.randn(40, 8, generator=gen)
    assert silhouette(mixed, labels) < 0.2
    panels = []
    for method in ("pca", "tsne"):
        pts = project(x, method)
        assert pts.shape == (40, 2)
        panels.append({"points": pts.numpy(), "labels": labels, "support": [i % 10 == 0 for i in range(40)],
                       "title": method})
    path = tmp_path / "maps.png"
    plot_maps(panels, path, "two panels")
    from PIL import Image

    img = np.asarray(Image.open(path).convert("L"))
    assert img.shape[1] > 1.8 * img.shape[0] and img.std() > 10  # two panels side by side, not blank
    with pytest.raises(EmbeddingError, match="method"):
        project(x, "isomap")
