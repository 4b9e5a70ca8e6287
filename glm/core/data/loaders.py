"""Loaders for a user's own TAG files and for the Planetoid bag-of-words graphs.

User TAG (:func:`load_tag_files`)
    nodes file: columns ``id``, ``text`` and optionally ``label``; edges file: ``source``,
    ``target`` (``src``/``dst`` also accepted). Format by extension: ``.csv``, ``.tsv`` (header
    row required; also gzip-compressed, ``.csv.gz``), ``.jsonl`` (one object per line) or ``.parquet``. Good
    files are read by columns with pyarrow (:mod:`glm.core.data.columnar`); a bad one is re-read row by row,
    which names the first bad record. Every problem raises a named
    :class:`~glm.core.data.errors.DataValidationError` with file and line.

Planetoid (:func:`load_planetoid`)
    Reads the raw ``ind.<name>.*`` files the same way as
    ``torch_geometric.io.read_planetoid_data`` (same node order, features, edges) without
    importing PyG. The 15 CiteSeer test nodes that have no label in the raw files get ``-1``
    (PyG gives them class 0).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from glm.core.data.errors import (
    DataNotFoundError,
    DuplicateNodeIdError,
    EmptyTextError,
    MalformedRecordError,
    UnknownLabelError,
    UnknownNodeError,
)
from glm.core.data.columnar import NeedsRowReader, load_tag_columnar, open_text, table_suffix
from glm.core.data.tag import CITESEER_CLASSES, TextAttributedGraph, build_tag, resolve_data_dir
from glm.core.safe_load import restricted_pickle_load

PLANETOID_CLASSES = {
    "cora": ["Case_Based", "Genetic_Algorithms", "Neural_Networks", "Probabilistic_Methods",
             "Reinforcement_Learning", "Rule_Learning", "Theory"],
    "citeseer": ["Agents", "AI", "DB", "IR", "ML", "HCI"],
}
_PLANETOID_FOLDER = {"cora": "Cora", "citeseer": "CiteSeer"}


# -- user files --------------------------------------------------------------------------------
def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for a CSV/TSV (with header) or JSONL file (UTF-8; any field size)."""
    try:
        yield from _parse_records(path)
    except UnicodeDecodeError as exc:
        raise MalformedRecordError(path, None, "encoding", "UTF-8 text",
                                   f"byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start}") from None


def _parse_records(path: Path) -> Iterator[tuple[int, dict]]:
    suffix = table_suffix(path)
    if suffix == ".parquet":  # "line" = 1-based row number
        import pyarrow.parquet as pq

        ln = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
            for rec in batch.to_pylist():
                ln += 1
                yield ln, {str(k).strip().lower(): v for k, v in rec.items()}
        return
    if suffix in (".jsonl", ".jsonl.gz"):
        with open_text(path) as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MalformedRecordError(path, ln, "json", "one JSON object per line", str(exc)) from None
                if not isinstance(rec, dict):
                    raise MalformedRecordError(path, ln, "json", "a JSON object", type(rec).__name__)
                yield ln, rec
        return
    if suffix not in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):
        raise MalformedRecordError(path, None, "format", "a .csv, .tsv (or .gz), .jsonl or .parquet file",
                                   repr(suffix or path.name))
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long abstracts: the default stops at 128 KiB
    with open_text(path) as f:
        reader = csv.reader(f, delimiter="\t" if suffix.startswith(".tsv") else ",")
        header = next(reader, None)
        if header is None:
            raise MalformedRecordError(path, 1, "header", "a header row", "an empty file")
        header = [h.strip().lower() for h in header]
        for row in reader:
            ln = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise MalformedRecordError(path, ln, "row", f"{len(header)} columns {header}", f"{len(row)} columns")
            yield ln, dict(zip(header, row))


def _field(path: Path, ln: int, rec: dict, names: Sequence[str], required: bool = True) -> Optional[str]:
    for n in names:
        if n in rec and rec[n] is not None:
            return str(rec[n])
    if required:
        raise MalformedRecordError(path, ln, names[0], f"a column {' / '.join(names)}", f"columns {sorted(rec)}")
    return None


def load_tag_files(
    nodes: Path | str,
    edges: Path | str,
    name: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    allow_empty_text: bool = False,
) -> TextAttributedGraph:
    """Load a user TAG from a nodes file and an edges file.

    Args:
        nodes: ``id``, ``text``, optional ``label`` per record (an empty label = unlabelled), optional
            ``title`` (title generation's reference; ``text`` is then the rest, e.g. the abstract).
        edges: ``source``, ``target`` per record (undirected; duplicates and self loops dropped).
        name: dataset name (default: the nodes file's stem, or its folder's name when the file is a
            generic ``nodes.*`` -- ``webkb/nodes.csv`` is ``webkb``, not ``nodes``).
        class_names: the allowed labels, in class-index order; a label outside it raises
            :class:`UnknownLabelError`. Default: the sorted set of labels found.
        allow_empty_text: accept empty texts instead of raising :class:`EmptyTextError`.
    """
    nodes, edges = Path(nodes), Path(edges)
    for p in (nodes, edges):
        if not p.is_file():
            raise DataNotFoundError(p.name, [p.parent])
    suffix = table_suffix(nodes)
    base = nodes.name[:-len(suffix)] if suffix and nodes.name.lower().endswith(suffix) else nodes.stem
    name = name or (nodes.parent.name if base.lower() == "nodes" and nodes.parent.name else base)
    try:  # vectorised; on any problem the row reader below names the first bad record
        ids, texts, y, codes, edge_index, titles = load_tag_columnar(nodes, edges, class_names, allow_empty_text)
    except NeedsRowReader:
        return _load_tag_rows(nodes, edges, name, class_names, allow_empty_text)
    return build_tag(name, ids, texts, y, edge_index, class_names=codes, class_codes=codes,
                     source=f"{nodes} + {edges}", titles=titles)


def _load_tag_rows(nodes: Path, edges: Path, name: str, class_names: Optional[Sequence[str]],
                   allow_empty_text: bool) -> TextAttributedGraph:
    """The row-by-row reader: the reference semantics, and the one that names a bad record."""
    ids: list[str] = []
    texts: list[str] = []
    labels: list[Optional[str]] = []
    titles: list[str] = []
    first_line: dict[str, int] = {}
    allowed = None if class_names is None else set(class_names)
    for ln, rec in _records(nodes):
        nid = _field(nodes, ln, rec, ("id", "node_id")).strip()
        text = _field(nodes, ln, rec, ("text",)).strip()
        label = _field(nodes, ln, rec, ("label",), required=False)
        label = label.strip() if label is not None and label.strip() else None
        title = _field(nodes, ln, rec, ("title",), required=False)
        if title is not None:
            titles.append(title.strip())
        if not nid:
            raise MalformedRecordError(nodes, ln, "id", "a non-empty id", "''")
        if nid in first_line:
            raise DuplicateNodeIdError(nodes, ln, "id", "unique ids", f"{nid!r} again (first at line {first_line[nid]})")
        if not text and not allow_empty_text:
            raise EmptyTextError(nodes, ln, "text", "non-empty text", "''")
        if label is not None and allowed is not None and label not in allowed:
            raise UnknownLabelError(nodes, ln, "label", f"one of {list(class_names)}", repr(label))
        first_line[nid] = ln
        ids.append(nid)
        texts.append(text)
        labels.append(label)
    if not ids:
        raise MalformedRecordError(nodes, None, "nodes", "at least one node", "no records")
    index = {nid: i for i, nid in enumerate(ids)}
    src, dst = [], []
    for ln, rec in _records(edges):
        a = _field(edges, ln, rec, ("source", "src")).strip()
        b = _field(edges, ln, rec, ("target", "dst")).strip()
        for col, v in (("source", a), ("target", b)):
            if v not in index:
                raise UnknownNodeError(edges, ln, col, f"an id from {nodes.name}", repr(v))
        src.append(index[a])
        dst.append(index[b])
    codes = list(class_names) if class_names is not None else sorted({l for l in labels if l is not None})
    return build_tag(
        name,
        ids,
        texts,
        labels,
        torch.tensor([src, dst], dtype=torch.long).reshape(2, -1),
        class_names=codes,
        class_codes=codes,
        source=f"{nodes} + {edges}",
        titles=titles if len(titles) == len(ids) else None,
    )


# -- Planetoid ----------------------------------------------------------------------------------------
def _read_planetoid_item(folder: Path, prefix: str, item: str):
    path = folder / f"ind.{prefix}.{item}"
    if item == "test.index":
        return torch.tensor([int(l) for l in path.read_text().split()], dtype=torch.long)
    try:
        import scipy.sparse  # noqa: F401  (the pickles hold scipy sparse matrices)
    except ImportError as exc:  # pragma: no cover - scipy ships with the [gammagl] / [models] extras
        raise ImportError("reading Planetoid raw files needs scipy: pip install scipy") from exc
    with path.open("rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = restricted_pickle_load(f, path)
    if item == "graph":
        return out
    out = out.todense() if hasattr(out, "todense") else out
    return torch.from_numpy(np.asarray(out)).to(torch.float)


def load_planetoid(name: str, data_dir: Optional[Path | str] = None) -> TextAttributedGraph:
    """Cora or CiteSeer from the raw Planetoid files (``<data>/planetoid/<Name>/raw/ind.<name>.*``).

    No text: ``texts`` is ``None`` and ``x`` holds the bag-of-words features (Cora ``[2708, 1433]``,
    CiteSeer ``[3327, 3703]``). Node order, features and edges equal PyG's ``Planetoid``.
    """
    key = name.lower()
    if key not in _PLANETOID_FOLDER:
        raise UnknownLabelError(None, None, "name", f"one of {sorted(_PLANETOID_FOLDER)}", repr(name))
    sub = f"planetoid/{_PLANETOID_FOLDER[key]}/raw"
    folder = resolve_data_dir(data_dir, sub, f"ind.{key}.graph")
    x, tx, allx, y, ty, ally, graph, test_index = (
        _read_planetoid_item(folder, key, i) for i in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    )
    sorted_test = test_index.sort()[0]
    unlabelled = torch.zeros(0, dtype=torch.long)
    if key == "citeseer":  # isolated test nodes missing from tx/ty: zero rows, as PyG
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext = torch.zeros(span, tx.shape[1])
        tx_ext[sorted_test - test_index.min()] = tx
        ty_ext = torch.zeros(span, ty.shape[1])
        ty_ext[sorted_test - test_index.min()] = ty
        missing = torch.ones(span, dtype=torch.bool)
        missing[sorted_test - test_index.min()] = False
        unlabelled = missing.nonzero().flatten() + allx.shape[0]
        tx, ty = tx_ext, ty_ext
    feats = torch.cat([allx, tx])
    feats[test_index] = feats[sorted_test]
    labels = torch.cat([ally, ty]).max(dim=1)[1]
    labels[test_index] = labels[sorted_test]
    labels[unlabelled] = -1
    n = labels.shape[0]
    rows = [k for k, v in graph.items() for _ in v]
    cols = [c for v in graph.values() for c in v]
    codes = PLANETOID_CLASSES[key]
    names = [c.replace("_", " ") for c in codes] if key == "cora" else [n for _, n in CITESEER_CLASSES]
    return build_tag(
        key,
        [str(i) for i in range(n)],
        None,
        labels,
        torch.tensor([rows, cols], dtype=torch.long),
        class_names=names,
        class_codes=codes,
        x=feats,
        source=str(folder),
    )
