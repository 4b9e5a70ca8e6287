"""Baselines without an LLM, on the same nodes and features as the graph language models.

* :func:`chance_and_majority`: ``1 / n_way`` and always-the-largest-test-class (they differ on
  unbalanced test sets);
* :func:`linear_probe`: logistic regression (scikit-learn) on the node features of the k shots;
* :func:`sgc_probe`: the same after SGC-style propagation ``(D^-1/2 (A + I) D^-1/2)^K X`` over the
  whole graph (Wu et al., ICML'19);
* :func:`gnn_supervised`: a :class:`~glm.core.encoder.GraphEncoder` of one layer family (each
  built-in layer name, glm.core.layouts) on the configured backend plus a linear head, trained on the k shots' sampled subgraphs
  (the same subgraphs the LLM methods see), the target node's embedding classified.

Each returns a :class:`RowResult` (predicted class index per test node, train/infer seconds,
trainable parameters).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from glm.core.data.propagate import propagate


@dataclass
class RowResult:
    """What one bench row produced for one seed (predictions are class indices into ``classes``)."""

    predictions: list[int]
    train_seconds: float = 0.0
    infer_seconds: float = 0.0
    trainable_params: int = 0
    adapter_bytes: Optional[int] = None
    calibrated: Optional[list[int]] = None
    extra: dict[str, Any] = field(default_factory=dict)


def chance_and_majority(test_labels: Sequence[int], n_way: int) -> tuple[float, float]:
    """``(1 / n_way, share of the most frequent test class)``."""
    counts = Counter(test_labels)
    return 1.0 / n_way, (max(counts.values()) / len(test_labels)) if test_labels else float("nan")


def fit_predict(train_x: Tensor, train_y: Sequence[int], test_x: Tensor, seed: int) -> tuple[list[int], float, float]:
    """Standardised logistic regression fitted on ``train_x``; ``(predictions for test_x, fit s, predict s)``
    (the linear probe, also the bench's token probe)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(train_x.numpy())
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(train_x.numpy()), list(train_y))
    t1 = time.perf_counter()
    pred = clf.predict(scaler.transform(test_x.numpy())).tolist()
    return [int(p) for p in pred], t1 - t0, time.perf_counter() - t1


def linear_probe(x: Tensor, train: Sequence[int], train_y: Sequence[int], test: Sequence[int], seed: int = 0) -> RowResult:
    """Logistic regression on the rows ``train`` of ``x`` (``[N, F]`` node features)."""
    pred, fit_s, infer_s = fit_predict(x[list(train)].float(), train_y, x[list(test)].float(), seed)
    return RowResult(pred, fit_s, infer_s, trainable_params=(x.shape[1] + 1) * len(set(train_y)))


def sgc_probe(x: Tensor, edge_index: Tensor, train: Sequence[int], train_y: Sequence[int], test: Sequence[int],
              hops: int = 2, seed: int = 0) -> RowResult:
    """:func:`linear_probe` on :func:`propagate`-d features."""
    t0 = time.perf_counter()
    h = propagate(x, edge_index, hops)
    prop_s = time.perf_counter() - t0
    result = linear_probe(h, train, train_y, test, seed)
    result.train_seconds += prop_s
    return result


def gnn_supervised(encoder: nn.Module, out_dim: int, train_graphs: list, train_y: Sequence[int], test_graphs: list,
                   n_way: int, seed: int = 0, epochs: int = 100, lr: float = 1e-2) -> RowResult:
    """Train ``encoder`` + ``Linear(out_dim, n_way)`` on the targets of ``train_graphs`` (full batch, Adam)."""
    from glm.core.graph import SubgraphBatch

    torch.manual_seed(seed)
    head = nn.Linear(out_dim, n_way)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=5e-4)
    batch = SubgraphBatch.from_subgraphs(train_graphs)
    y = torch.tensor(list(train_y))
    t0 = time.perf_counter()
    encoder.train()
    for _ in range(epochs):
        opt.zero_grad()
        logits = head(encoder(batch)[batch.target_index])
        nn.functional.cross_entropy(logits, y).backward()
        opt.step()
    train_s = time.perf_counter() - t0
    encoder.eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        test = SubgraphBatch.from_subgraphs(test_graphs)
        pred = head(encoder(test)[test.target_index]).argmax(-1).tolist()
    return RowResult(pred, train_s, time.perf_counter() - t1, trainable_params=sum(p.numel() for p in params))
