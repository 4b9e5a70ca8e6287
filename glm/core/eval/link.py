"""Link prediction quality by the pair's hop distance in the original graph (``glm eval --task link_prediction``).

Pairs are drawn among the held-out classes' nodes (pre-training never saw them), balanced yes/no
(:func:`glm.core.data.tasks.link_pairs`: existing edges and non-edges, the pair's own edge removed
while sampling both subgraphs), and choice-scored over ``yes`` / ``no``. The score of a pair is
``log p(yes) - log p(no)``: AUC over it, accuracy, precision and recall of the links, and per distance
bucket (``1`` = linked, ``2``, ``>=3`` = three hops or more, or disconnected) the pairs, the share the
model calls linked and the accuracy. Negatives at distance 2 share a neighbour: the hard ones.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

BUCKETS = ("1", "2", ">=3")


def link_eval_samples(config: Any, data: Any, num_pairs: int, split: str = "test") -> list:
    """Link-prediction samples among the held-out classes' nodes (``data.seed``; ``+1`` for ``val``)."""
    from glm.core.data import tasks as T

    tag = data.tag
    classes = torch.tensor(data.split.class_indices(tag, "heldout"))
    nodes = torch.isin(tag.labels, classes).nonzero().flatten()
    seed = config.data.seed + (1 if split == "val" else 0)
    return T.link_prediction(data.source, num_pairs, seed=seed, nodes=nodes, include_text=config.data.node_text)


def pair_distances(edge_index: torch.Tensor, num_nodes: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Hop distance of each pair in the graph, capped at 3 (3 = three or more hops, or none)."""
    from glm.core.hop_distance import hop_distances

    ptr = torch.tensor([0, num_nodes])
    by_source: dict[int, torch.Tensor] = {}
    out = []
    for a, b in pairs:
        if a not in by_source:
            by_source[a] = hop_distances(edge_index, ptr=ptr, max_hops=2, target_index=torch.tensor([a]))
        out.append(int(by_source[a][b]))
    return out


def link_report(result: Any, dist: Sequence[int]) -> dict[str, Any]:
    """AUC, accuracy, precision / recall of links, and accuracy by hop distance (``dist``, one per
    prediction, from :func:`pair_distances`), for an :class:`~glm.core.eval.predict.EvalResult`."""
    from sklearn.metrics import roc_auc_score

    truth = [p.label == "yes" for p in result.predictions]
    said = [p.matched == "yes" for p in result.predictions]
    score = [p.scores["yes"] - p.scores["no"] for p in result.predictions]
    auc = roc_auc_score(truth, score) if len(set(truth)) == 2 else None
    tp = sum(t and s for t, s in zip(truth, said))
    report: dict[str, Any] = {
        "pairs": len(truth), "auc": auc, "accuracy": sum(t == s for t, s in zip(truth, said)) / max(len(truth), 1),
        "precision": tp / max(sum(said), 1), "recall": tp / max(sum(truth), 1), "by_distance": {},
    }
    for bucket in BUCKETS:
        rows = [i for i, d in enumerate(dist) if BUCKETS[min(max(d, 1), 3) - 1] == bucket]
        report["by_distance"][bucket] = {
            "pairs": len(rows), "linked": sum(truth[i] for i in rows),
            "said_yes": sum(said[i] for i in rows) / len(rows) if rows else None,
            "accuracy": sum(truth[i] == said[i] for i in rows) / len(rows) if rows else None,
        }
    return report


def format_link_report(report: dict[str, Any]) -> str:
    auc = "n/a" if report["auc"] is None else f"{report['auc']:.4f}"
    lines = [f"link prediction: {report['pairs']} pairs, AUC {auc}, accuracy {report['accuracy']:.4f}, "
             f"precision {report['precision']:.4f}, recall {report['recall']:.4f}",
             f"{'hop distance':<13} {'pairs':>6} {'linked':>7} {'said yes':>9} {'accuracy':>9}"]
    for bucket, row in report["by_distance"].items():
        said = "-" if row["said_yes"] is None else f"{row['said_yes']:.3f}"
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"{bucket:<13} {row['pairs']:>6} {row['linked']:>7} {said:>9} {acc:>9}")
    return "\n".join(lines)
