"""2-D maps of what the graph side produces for each node, coloured by class (``glm plot embeddings``).

Stages (read with forward hooks during :meth:`GraphLanguageModel.embed`, so the frozen LLM never
runs):

* ``encoder``: the GNN output at the target node (methods with an ``encoder`` submodule);
* ``gate``: GraphLAMA's gated vector at the target node (an ``gate`` submodule);
* ``tokens``: the soft token(s) spliced in for the target (per-node methods: the target's token;
  k tokens per graph: their mean), before ``model.token_norm`` rescaling.

A map is PCA, t-SNE (scikit-learn) or UMAP (``umap-learn``, when installed) of the vectors; the
silhouette score of the classes is computed on the vectors themselves (cosine), so the picture
has a number that does not depend on the projection.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from glm.errors import GlmError

STAGES = ("encoder", "gate", "tokens")
PROJECTIONS = ("pca", "tsne", "umap")


class EmbeddingError(GlmError, ValueError):
    """A stage the model does not have, or a projection that is not installed."""


def _stage_module(model, stage: str):
    if stage not in STAGES:
        raise EmbeddingError(f"--stage must be one of {', '.join(STAGES)}, found {stage!r}")
    if stage == "tokens":
        return model.node_token_module
    module = getattr(model, stage, None)
    if module is None:
        method = getattr(getattr(model, "method", None), "name", "this method")
        raise EmbeddingError(f"stage {stage!r}: {method} has no {stage!r} submodule; use --stage tokens")
    return module


@torch.no_grad()
def target_vectors(model, samples: Sequence[Any], collate, stage: str = "encoder", batch_size: int = 16) -> Tensor:
    """``[len(samples), d]``: the ``stage`` vector of each sample's first graph's target node."""
    return stage_vectors(model, samples, collate, (stage,), batch_size)[stage]


@torch.no_grad()
def stage_vectors(model, samples: Sequence[Any], collate, stages: Sequence[str],
                  batch_size: int = 16) -> dict[str, Tensor]:
    """``{stage: [len(samples), d_stage]}`` from one pass of the graph side: every stage's hook reads the
    same forward (see :func:`target_vectors`)."""
    modules = {stage: _stage_module(model, stage) for stage in stages}
    seen: dict[str, Tensor] = {}

    def keep(stage: str):
        return lambda _m, _i, out: seen.__setitem__(stage, out.detach().float().cpu())

    handles = [module.register_forward_hook(keep(stage)) for stage, module in modules.items()]
    was_training = model.training
    model.eval()
    rows: dict[str, list[Tensor]] = {stage: [] for stage in modules}
    k = model.node_token_module.tokens_per_graph
    try:
        for start in range(0, len(samples), batch_size):
            batch = collate(list(samples[start:start + batch_size]))
            seen.clear()
            model.embed(batch)
            if len(seen) < len(modules):
                raise EmbeddingError(f"stage(s) {sorted(set(modules) - set(seen))} did not run in the graph side's forward")
            graphs = batch.graphs
            first_graph = torch.cumsum(batch.graphs_per_sample, 0) - batch.graphs_per_sample
            for stage, out in seen.items():
                if stage == "tokens" and k is not None:  # k tokens per graph, sample-major
                    rows[stage].append(out.reshape(graphs.num_graphs, int(k), -1)[first_graph].mean(dim=1))
                else:
                    rows[stage].append(out[graphs.ptr[:-1][first_graph]])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {stage: torch.cat(parts) for stage, parts in rows.items()}


def project(vectors: Tensor, method: str = "pca", seed: int = 0) -> Tensor:
    """``[n, 2]`` map of ``vectors``."""
    x = vectors.double().numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        return torch.from_numpy(PCA(n_components=2, random_state=seed).fit_transform(x))
    if method == "tsne":
        from sklearn.manifold import TSNE

        return torch.from_numpy(TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3)),
                                     random_state=seed, init="pca").fit_transform(x))
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise EmbeddingError("--method umap needs umap-learn: pip install umap-learn") from None
        return torch.from_numpy(umap.UMAP(n_components=2, random_state=seed).fit_transform(x))
    raise EmbeddingError(f"--method must be one of {', '.join(PROJECTIONS)}, found {method!r}")


def silhouette(vectors: Tensor, labels: Sequence[str]) -> Optional[float]:
    """Cosine silhouette of the classes (``None`` with fewer than 2 classes or 3 points)."""
    from sklearn.metrics import silhouette_score

    if len(set(labels)) < 2 or len(labels) < 3:
        return None
    return float(silhouette_score(vectors.double().numpy(), list(labels), metric="cosine"))


def plot_maps(panels: Sequence[dict[str, Any]], path, title: str = "") -> None:
    """One PNG, one panel per map: ``{"points" [n, 2], "labels", "support" [n] bool, "title"}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glm.core.io import atomic_path

    classes = sorted({c for p in panels for c in p["labels"]})
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(classes)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        pts, labels, support = panel["points"], panel["labels"], panel["support"]
        for c in classes:
            idx = [i for i, lab in enumerate(labels) if lab == c and not support[i]]
            ax.scatter(pts[idx, 0], pts[idx, 1], s=14, color=colours[c], alpha=0.75, label=c)
            sup = [i for i, lab in enumerate(labels) if lab == c and support[i]]
            if sup:
                ax.scatter(pts[sup, 0], pts[sup, 1], s=90, marker="*", color=colours[c], edgecolors="black",
                           linewidths=0.7, label=f"{c} (shot)")
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def default_stage(model) -> str:
    """``gate`` when the method has one (what GraphLAMA's adaptation changes), else ``encoder``, else ``tokens``."""
    for stage in ("gate", "encoder"):
        if getattr(model, stage, None) is not None:
            return stage
    return "tokens"


def embedding_panel(model, nodes: Sequence[Any], shots: Sequence[Any], collator, stage: Optional[str] = None,
                    method: str = "pca", title: str = "", split: str = "test") -> dict[str, Any]:
    """The map of the held-out ``nodes`` plus the k ``shots`` (marked; samples, collated by ``collator``) at
    ``stage``; adds ``silhouette`` (classes, shots left out) to the panel dict that :func:`plot_maps` draws."""
    stage = stage or default_stage(model)
    samples = list(nodes) + list(shots)
    vectors = target_vectors(model, samples, collator, stage)
    labels = [s.answer for s in samples]
    support = [False] * len(nodes) + [True] * len(shots)
    score = silhouette(vectors[: len(nodes)], labels[: len(nodes)])
    name = f"{title + ': ' if title else ''}{stage}, {split} ({len(nodes)}) + {len(shots)} shots"
    sil = "n/a" if score is None else f"{score:.3f}"
    return {"points": project(vectors, method).numpy(), "labels": labels, "support": support, "stage": stage,
            "silhouette": score, "title": f"{name}\nsilhouette {sil} ({method})"}
