"""The field's data layouts: OGB's node-property folders and the graph files of GraphGPT / LLaGA (as ``.npz``).

``ogb`` (:func:`load_ogb_folder`) reads the folder ``ogb.nodeproppred`` downloads, without the ``ogb``
package and without its pickled ``processed/`` files::

    <root>/ogbn_arxiv/raw/edge.csv.gz            E lines "source,target" (node indices)
                      raw/node-label.csv.gz      N lines, the class index (nan = unlabelled)
                      raw/node-feat.csv.gz       N lines of F floats (optional: the native features)
                      mapping/labelidx2*.csv.gz  "label idx,<name>" (optional: class names)
                      mapping/nodeidx2*.csv.gz   "node idx,<id>" (optional: node ids)

OGB carries no text; ``texts=FILE`` (any user-TAG format with columns ``id``, ``text``; ``id`` is the node
index or the mapping's id, e.g. a MAG paper id of ``titleabs.tsv``) adds it.

``graph_npz`` (:func:`load_graph_npz`) reads a graph saved as ``.npz`` (``allow_pickle=False``):
``edge_index`` ``[2, E]`` int, ``y`` ``[N]`` int (``-1`` = unlabelled), optional ``x`` ``[N, F]`` and
``label_names`` ``[C]`` (strings), plus ``texts=FILE`` as above. GraphGPT's ``graph_data_all.pt`` and
LLaGA's ``processed_data.pt`` are pickles, which glm never loads; docs/data.md shows the four lines that
turn them into this ``.npz`` in the user's own environment. ``instructions=FILE`` adds GraphGPT's
instruction JSON (:mod:`glm.core.data.instructions`): its target nodes' texts and class names from its answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from glm.core.data.errors import DataNotFoundError, DataValidationError
from glm.core.data.tag import TextAttributedGraph, build_tag


def _read_csv_gz(path: Path, header: bool = False):
    import pyarrow.csv as pacsv

    opts = pacsv.ReadOptions(autogenerate_column_names=not header, block_size=1 << 26)
    try:
        return pacsv.read_csv(path, read_options=opts)
    except Exception as exc:  # pyarrow.ArrowInvalid: a line of another width, a non-number
        raise DataValidationError(path, None, "rows", "comma-separated numbers, the same count on every line",
                                  str(exc).splitlines()[0][:200]) from None


def _matrix(path: Path, dtype) -> np.ndarray:
    table = _read_csv_gz(path)
    return np.stack([c.to_numpy(zero_copy_only=False) for c in table.columns], axis=1).astype(dtype)


def _one_column(folder: Path, pattern: str) -> Optional[list[str]]:
    """The second column of the first ``mapping/<pattern>`` file (its rows in index order), or ``None``."""
    found = sorted((folder / "mapping").glob(pattern)) if (folder / "mapping").is_dir() else []
    if not found:
        return None
    table = _read_csv_gz(found[0], header=True)
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(table.column(1), pa.string()).to_pylist()


def _texts(spec: Optional[str], ids: list[str], num_nodes: int) -> Optional[list[str]]:
    """Texts in node order from a user-TAG file keyed by node index or by node id."""
    if spec is None:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    from glm.core.data.columnar import NeedsRowReader, read_table

    path = Path(spec)
    if not path.is_file():
        raise DataNotFoundError(str(path), [path.parent], hint="texts=FILE names a file with columns id, text")
    try:
        table = read_table(path)
    except NeedsRowReader as exc:
        raise DataValidationError(path, None, "texts", "a CSV / TSV / JSONL / Parquet file", str(exc)) from None
    for col in ("id", "text"):
        if col not in table.column_names:
            raise DataValidationError(path, None, col, "columns id, text", f"columns {table.column_names}")
    keys = pc.utf8_trim_whitespace(pc.cast(table.column("id"), pa.string()))
    for candidates in (ids, [str(i) for i in range(num_nodes)]):
        pos = pc.index_in(pa.array(candidates, pa.string()), value_set=keys)
        if pos.null_count == 0:
            return pc.take(pc.cast(table.column("text"), pa.string()), pos).to_pylist()
    missing = int(pc.index_in(pa.array(ids, pa.string()), value_set=keys).null_count)
    raise DataValidationError(path, None, "id", f"a text for each of the {num_nodes} nodes (by node index or id)",
                              f"{missing} nodes without one")


def ogb_folder(data_dir: Optional[Path | str], name: str) -> Path:
    """``data_dir`` itself when it holds ``raw/edge.csv.gz``, else ``data_dir/<name with _>``."""
    base = Path(data_dir) if data_dir is not None else Path(".")
    for folder in (base, base / name.replace("-", "_"), base / name):
        if (folder / "raw" / "edge.csv.gz").is_file():
            return folder
    raise DataNotFoundError(f"{name}/raw/edge.csv.gz", [base, base / name.replace("-", "_")],
                            hint="data.data_dir names the folder ogb downloaded (holding raw/ and mapping/)")


def load_ogb_folder(data_dir: Optional[Path | str] = None, name: str = "ogbn-arxiv",
                    texts: Optional[str] = None) -> TextAttributedGraph:
    folder = ogb_folder(data_dir, name)
    raw = folder / "raw"
    edges = _matrix(raw / "edge.csv.gz", np.int64)
    if not (raw / "node-label.csv.gz").is_file():
        raise DataNotFoundError("raw/node-label.csv.gz", [raw])
    labels_f = _matrix(raw / "node-label.csv.gz", np.float64)[:, 0]
    n = labels_f.shape[0]
    labels = np.where(np.isfinite(labels_f), labels_f, -1).astype(np.int64)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise DataValidationError(raw / "edge.csv.gz", None, "node index", f"0..{n - 1}",
                                  f"{edges.min()}..{edges.max()}")
    x = torch.from_numpy(_matrix(raw / "node-feat.csv.gz", np.float32)) if (raw / "node-feat.csv.gz").is_file() else None
    if x is not None and x.shape[0] != n:
        raise DataValidationError(raw / "node-feat.csv.gz", None, "rows", f"{n} (one per node)", x.shape[0])
    num_classes = int(labels.max()) + 1 if (labels >= 0).any() else 0
    names = _one_column(folder, "labelidx2*.csv.gz") or [f"class {c}" for c in range(num_classes)]
    ids = _one_column(folder, "nodeidx2*.csv.gz") or [str(i) for i in range(n)]
    return build_tag(name, ids, _texts(texts, ids, n), torch.from_numpy(labels), torch.from_numpy(edges.T.copy()),
                     class_names=names[:max(num_classes, len(names))], x=x, source=str(folder))


def load_graph_npz(path: Optional[str] = None, texts: Optional[str] = None, name: Optional[str] = None,
                   instructions: Optional[str] = None, graph: Optional[str] = None, **_) -> TextAttributedGraph:
    """``instructions=FILE``: GraphGPT's instruction JSON (:mod:`glm.core.data.instructions`) adds the texts of
    its target nodes and, when the ``.npz`` has no ``label_names``, class names from its answers; ``graph``
    picks its items (``"<graph>_..."`` ids; default: ``name`` or the file's stem)."""
    if path is None:
        raise DataValidationError(None, None, "data.options.path", "the .npz file (edge_index, y[, x, label_names])",
                                  "nothing")
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(str(file), [file.parent])
    try:
        arrays = np.load(file, allow_pickle=False)
        found = {k: arrays[k] for k in arrays.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataValidationError(file, None, "arrays", "numeric / string arrays (never unpickled)",
                                  str(exc).splitlines()[0]) from None
    for key in ("edge_index", "y"):
        if key not in found:
            raise DataValidationError(file, None, key, "an array named " + key, f"arrays {sorted(found)}")
    y = found["y"].reshape(-1).astype(np.int64)
    ei = found["edge_index"].astype(np.int64)
    n = y.shape[0]
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise DataValidationError(file, None, "edge_index", "shape [2, E]", f"shape {ei.shape}")
    if ei.size and (ei.min() < 0 or ei.max() >= n):
        raise DataValidationError(file, None, "edge_index", f"node indices 0..{n - 1}", f"{ei.min()}..{ei.max()}")
    x = found.get("x")
    if x is not None and (x.ndim != 2 or x.shape[0] != n):
        raise DataValidationError(file, None, "x", f"shape [{n}, F]", f"shape {x.shape}")
    num_classes = int(y.max()) + 1 if (y >= 0).any() else 0
    names = [str(s) for s in found["label_names"]] if "label_names" in found else [f"class {c}" for c in range(num_classes)]
    ids = [str(i) for i in range(n)]
    node_texts = _texts(texts, ids, n)
    if instructions is not None:
        from glm.core.data import instructions as gi

        ins = gi.read_instructions(instructions, graph or name or file.stem, n)
        node_texts = gi.texts_with_instructions(ins, n, node_texts)
        if "label_names" not in found:
            names = gi.class_names_from_answers(ins, y, num_classes) or names
    if len(names) < num_classes:
        raise DataValidationError(file, None, "label_names", f"{num_classes} names (y goes up to {num_classes - 1})",
                                  len(names))
    return build_tag(name or file.stem, ids, node_texts, torch.from_numpy(y), torch.from_numpy(ei),
                     class_names=names, x=None if x is None else torch.from_numpy(x.astype(np.float32)),
                     source=str(file))
