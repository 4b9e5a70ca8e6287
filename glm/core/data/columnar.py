"""Columnar reading of a user TAG (pyarrow): CSV / TSV (also ``.gz``), JSONL and Parquet, ids mapped vectorised.

:func:`load_tag_columnar` reads both files into Arrow columns and checks every rule of
:func:`glm.core.data.loaders.load_tag_files` with Arrow compute kernels (no Python loop over rows): unique
non-empty ids, non-empty texts, declared labels, edges between known ids. When a rule fails it raises
:class:`NeedsRowReader`; the caller then re-reads with the row reader, which stops at the first bad record
with the named error (file, line or row, field, expected vs found). Good files never pay for the row reader;
bad files stop at the first bad record, as before.

Shapes: a nodes file of ``N`` rows and an edges file of ``E`` rows give ``N`` ids, texts and labels and a
``[2, E]`` index tensor (before symmetrisation by :func:`glm.core.data.tag.build_tag`).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

ID_COLUMNS, TEXT_COLUMNS, LABEL_COLUMNS = ("id", "node_id"), ("text",), ("label",)
SOURCE_COLUMNS, TARGET_COLUMNS = ("source", "src"), ("target", "dst")
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".jsonl", ".jsonl.gz", ".parquet")


class NeedsRowReader(Exception):
    """The columnar pass found a problem; the row reader names it (internal, never reaches the user)."""


def table_suffix(path: Path) -> str:
    """``.csv``, ``.tsv.gz``, ``.parquet``, ... (lower case), or the plain suffix when it is none of these."""
    name = path.name.lower()
    return next((s for s in TABLE_SUFFIXES if name.endswith(s)), path.suffix.lower())


def open_text(path: Path):
    """A text stream of a plain or gzip-compressed file (UTF-8)."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _header(path: Path, delimiter: str) -> list[str]:
    with open_text(path) as f:
        row = next(csv.reader(f, delimiter=delimiter), None)
    if row is None:
        raise NeedsRowReader("empty file")
    return row


def read_table(path: Path):
    """The file as a ``pyarrow.Table`` of string columns with stripped, lower-cased names."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    suffix = table_suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".jsonl", ".jsonl.gz"):
            import pyarrow.json as pajson

            table = pajson.read_json(path)
        elif suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):
            delimiter = "\t" if suffix.startswith(".tsv") else ","
            header = _header(path, delimiter)
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=1 << 26),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                                 quote_char=False if delimiter == "\t" else '"'),
                convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
        else:
            raise NeedsRowReader(f"format {suffix}")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise NeedsRowReader(str(exc)) from None
    names = [n.strip().lower() for n in table.column_names]
    if len(set(names)) != len(names):
        raise NeedsRowReader("repeated column names")
    return table.rename_columns(names)


EDGE_BATCH_ROWS = 1 << 23


def iter_batches(path: Path):
    """The file's record batches (Parquet and CSV streamed: an edges file is never held whole)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    suffix = table_suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(path).iter_batches(batch_size=EDGE_BATCH_ROWS)
        elif suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):
            delimiter = "\t" if suffix.startswith(".tsv") else ","
            header = _header(path, delimiter)
            reader = pacsv.open_csv(
                path, read_options=pacsv.ReadOptions(block_size=1 << 26),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False if delimiter == "\t" else '"'),
                convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
            yield from reader
        else:
            yield from read_table(path).to_batches()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise NeedsRowReader(str(exc)) from None


def _column(table, names: Sequence[str], required: bool = True):
    import pyarrow as pa
    import pyarrow.compute as pc

    for n in names:
        if n in table.column_names:
            col = table.column(n).combine_chunks()
            if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                col = pc.cast(col, pa.string())  # JSON / Parquet ids may be numbers
            if col.null_count:
                if required:
                    raise NeedsRowReader(f"null {n}")
                col = pc.fill_null(col, "")
            return pc.utf8_trim_whitespace(col)
    if required:
        raise NeedsRowReader(f"no column {names[0]}")
    return None


def load_tag_columnar(nodes: Path, edges: Path, class_names: Optional[Sequence[str]] = None,
                      allow_empty_text: bool = False):
    """``(ids, texts, labels, class_codes, edge_index, titles)`` of a user TAG (``titles``: the optional
    ``title`` column, else ``None``), or :class:`NeedsRowReader`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read_table(nodes)
    ids = _column(table, ID_COLUMNS)
    texts = _column(table, TEXT_COLUMNS)
    raw_labels = _column(table, LABEL_COLUMNS, required=False)
    titles = _column(table, ("title",), required=False)
    n = len(ids)
    if n == 0:
        raise NeedsRowReader("no nodes")
    first = pc.index_in(ids, value_set=ids).to_numpy()
    bad = (first != np.arange(n)) | (pc.utf8_length(ids).to_numpy() == 0)
    if not allow_empty_text:
        bad |= pc.utf8_length(texts).to_numpy() == 0
    labels = np.full(n, -1, dtype=np.int64)
    codes: list[str] = list(class_names) if class_names is not None else []
    if raw_labels is not None:
        present = pc.utf8_length(raw_labels).to_numpy() > 0
        if class_names is None:
            codes = sorted(pc.unique(pc.filter(raw_labels, pa.array(present))).to_pylist())
        index = pc.fill_null(pc.index_in(raw_labels, value_set=pa.array(codes, pa.string())), -1).to_numpy()
        unknown = present & (index < 0)
        bad |= unknown
        labels[present & ~unknown] = index[present & ~unknown].astype(np.int64)
    if bad.any():
        raise NeedsRowReader("a node record breaks a rule")
    ends: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for batch in iter_batches(edges):  # streamed: one batch of id strings at a time
        table = pa.Table.from_batches([batch]).rename_columns([n.strip().lower() for n in batch.schema.names])
        if table.num_rows == 0:
            continue
        for out, names in zip(ends, (SOURCE_COLUMNS, TARGET_COLUMNS)):
            pos = pc.index_in(_column(table, names), value_set=ids)
            if pos.null_count:
                raise NeedsRowReader("an edge names an unknown node")
            out.append(pos.to_numpy())
    edge_index = (torch.from_numpy(np.stack([np.concatenate(e) for e in ends]).astype(np.int64)) if ends[0]
                  else torch.zeros(2, 0, dtype=torch.long))
    return (ids.to_pylist(), texts.to_pylist(), torch.from_numpy(labels), codes, edge_index,
            None if titles is None else pc.fill_null(titles, "").to_pylist())
