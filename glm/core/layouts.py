"""The backend-neutral parameter layouts of glm's built-in GNN layer names, declared once.

A checkpoint stores a built-in layer's parameters under these keys whatever backend trained it, so a
run trained on PyG loads on GammaGL and back. Every reader takes them from :data:`LAYOUTS`: the
backends' layers (:class:`glm.backends._layers.NeutralLayer` checks its keys and takes
``supports_edge_weight`` from here), the conformance kit (:data:`glm.testing.NEUTRAL_KEYS`), the
baselines' GNN rows, the backend benches and tests, and the docs (:func:`markdown_table`; a test keeps
:mod:`glm.core.encoder`'s table equal to it). Weights are ``[out, in]`` as in ``torch.nn.Linear``.

Adding a built-in layer name is one row here plus its implementation in each backend; a plugin's layer
needs no row (``register_gnn_layers``; its keys are its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NeutralLayout:
    """One layer name's layout.

    Args:
        name: the ``model.encoder.layer`` name.
        keys: neutral key -> its shape, in words (``bias`` is absent when built with ``bias=False``).
        semantics: what the layer computes (PyG's conventions), one paragraph.
        edge_weight: whether ``forward`` uses ``edge_weight`` (others ignore it).
        square: needs ``in_dim == out_dim`` (a residual).
        options: the options tests and benches build it with (e.g. several heads).
    """

    name: str
    keys: dict[str, str]
    semantics: str
    edge_weight: bool = False
    square: bool = False
    options: dict[str, Any] = field(default_factory=dict)


LAYOUTS: dict[str, NeutralLayout] = {layout.name: layout for layout in [
    NeutralLayout("gcn", {"weight": "[out, in]", "bias": "[out]"},
                  "PyG ``GCNConv``: self loops added, symmetric normalisation with weighted in-degrees.",
                  edge_weight=True),
    NeutralLayout("gat", {"weight": "[heads*C, in]", "att_src": "[heads, C]", "att_dst": "[heads, C]",
                          "bias": "[heads*C] (concat) or [C]"},
                  "PyG ``GATConv``: existing self loops replaced by one per node, LeakyReLU 0.2; ``out_dim`` is ``heads*C`` when concatenating.",
                  options={"heads": 2}),
    NeutralLayout("sage", {"lin_neigh.weight": "[out, in]", "lin_root.weight": "[out, in]", "bias": "[out]"},
                  "mean aggregation: ``lin_neigh(mean_j x_j) + lin_root(x_i) + bias``."),
    NeutralLayout("gt", {"wq": "[d, d]", "wk": "[d, d]", "wv": "[d, d]", "norm.weight": "[d]", "norm.bias": "[d]"},
                  "GraphLAMA's sparse graph-transformer layer (official ``graph_transformer.py``): per head, "
                  "``a_ij = exp(clamp(<q_i, k_j>, -10, 10))`` normalised over the incoming edges of ``i``, "
                  "``h_i' = LayerNorm(h_i + sum_j a_ij v_j)``; ``q = x wq^T`` etc. (no bias).",
                  square=True, options={"heads": 4}),
    NeutralLayout("gin", {"mlp.0.weight": "[out, in]", "mlp.0.bias": "[out]", "mlp.2.weight": "[out, out]",
                          "mlp.2.bias": "[out]"},
                  "PyG ``GINConv`` (eps 0, fixed): ``mlp(x_i + sum_j x_j)``, ``mlp`` = Linear, ReLU, Linear."),
]}


def markdown_table() -> str:
    """The layouts as a markdown table (docs/backends.md holds a copy that a test compares)."""
    rows = ["| layer | neutral keys | edge weights | computes |", "|---|---|---|---|"]
    for layout in LAYOUTS.values():
        keys = ", ".join(f"`{k} {shape}`" for k, shape in layout.keys.items())
        rows.append(f"| `{layout.name}` | {keys} | {'used' if layout.edge_weight else 'ignored'} | "
                    f"{layout.semantics.replace('``', '`')} |")
    return "\n".join(rows)
