"""Write a TAG (or the part of it on some classes) as user TAG files: ``nodes.csv`` + ``edges.csv``.

The format is the one ``tag_files`` reads (docs/data.md, "Your own TAG"): ``id,text,label`` and
``source,target``. A class subset keeps the induced subgraph: edges between kept nodes only. Two
disjoint subsets make a pre-training graph and an unseen graph for the transfer setting
(``data.split: new_graph``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional, Sequence

from glm.core.data.errors import DataError
from glm.core.data.tag import TextAttributedGraph
from glm.core.io import atomic_write_text

NODES_FILE, EDGES_FILE = "nodes.csv", "edges.csv"


class ExportError(DataError):
    """The graph cannot be written as TAG files (no text, unknown class, nothing left, target exists)."""


def kept_classes(tag: TextAttributedGraph, classes: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None) -> list[str]:
    """Class names kept by ``classes`` (default all) minus ``exclude``, in the graph's class order."""
    for given, what in ((classes, "--classes"), (exclude, "--exclude-classes")):
        unknown = [c for c in given or () if c not in tag.class_names]
        if unknown:
            raise ExportError(f"{tag.name}: {what} {unknown} are not classes of the graph; "
                              f"known: {tag.class_names}")
    kept = [c for c in tag.class_names if (classes is None or c in classes) and c not in (exclude or ())]
    if not kept:
        raise ExportError(f"{tag.name}: no class left to export (classes {classes}, excluded {exclude})")
    return kept


def export_tag_files(tag: TextAttributedGraph, out: Path | str, classes: Optional[Sequence[str]] = None,
                     exclude: Optional[Sequence[str]] = None, overwrite: bool = False) -> dict[str, int]:
    """Write the nodes of the kept classes and the edges among them to ``out/nodes.csv`` and
    ``out/edges.csv`` (each written atomically); return the counts."""
    out = Path(out)
    if tag.texts is None:
        raise ExportError(f"{tag.name}: has no node texts; TAG files need a text per node")
    targets = [out / NODES_FILE, out / EDGES_FILE]
    if not overwrite and any(p.exists() for p in targets):
        raise ExportError(f"{out}: holds {NODES_FILE} / {EDGES_FILE} already; pass --overwrite to replace them")
    kept = set(kept_classes(tag, classes, exclude))
    keep = [i for i in range(tag.num_nodes)
            if int(tag.labels[i]) >= 0 and tag.class_names[int(tag.labels[i])] in kept]
    index = set(keep)
    nodes, edges = io.StringIO(), io.StringIO()
    w = csv.writer(nodes, lineterminator="\n")
    w.writerow(["id", "text", "label"])
    for i in keep:
        w.writerow([tag.node_ids[i], tag.texts[i], tag.class_names[int(tag.labels[i])]])
    w = csv.writer(edges, lineterminator="\n")
    w.writerow(["source", "target"])
    n_edges = 0
    for s, t in tag.edge_index.t().tolist():
        if s < t and s in index and t in index:  # stored both ways; write each undirected edge once
            w.writerow([tag.node_ids[s], tag.node_ids[t]])
            n_edges += 1
    for text, path in zip((nodes.getvalue(), edges.getvalue()), targets):
        atomic_write_text(text, path)
    return {"nodes": len(keep), "edges": n_edges, "classes": len(kept)}
