"""Columnar TAG files: every format gives the row reader's graph, bad records keep their named errors."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from glm.core.data import DuplicateNodeIdError, EmptyTextError, UnknownLabelError, UnknownNodeError
from glm.core.data import loaders
from glm.core.data.columnar import NeedsRowReader, load_tag_columnar
from glm.core.data.loaders import load_tag_files

ROWS = [("p1", "Alpha paper, about graphs", "X"), ("p2", 'Beta "quoted"\nover two lines', "Y"),
        ("p3", "Gamma", ""), ("10", "  padded text  ", "X")]
EDGES = [("p1", "p2"), ("p2", "p3"), ("p2", "p1"), ("10", "p1"), ("p3", "p3")]


def _csv(rows, header, sep=","):
    def cell(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if sep == "," else v
    return sep.join(header) + "\n" + "".join(sep.join(cell(v) for v in r) + "\n" for r in rows)


def _write(tmp_path, fmt: str, rows=ROWS, edges=EDGES):
    n, e = tmp_path / f"nodes.{fmt}", tmp_path / f"edges.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                                 "label": [r[2] for r in rows]}), n)
        pq.write_table(pa.table({"source": [a for a, _ in edges], "target": [b for _, b in edges]}), e)
    elif fmt == "jsonl":
        n.write_text("".join(json.dumps({"id": i, "text": t, "label": l}) + "\n" for i, t, l in rows), encoding="utf-8")
        e.write_text("".join(json.dumps({"source": a, "target": b}) + "\n" for a, b in edges), encoding="utf-8")
    else:
        sep = "\t" if fmt.startswith("tsv") else ","
        rows = [(i, t.replace("\n", " ") if sep == "\t" else t, l) for i, t, l in rows]
        node_text, edge_text = _csv(rows, ["ID", " Text", "label"], sep), _csv(edges, ["source", "target"], sep)
        if fmt.endswith(".gz"):
            n.write_bytes(gzip.compress(node_text.encode()))
            e.write_bytes(gzip.compress(edge_text.encode()))
        else:
            n.write_text(node_text, encoding="utf-8")
            e.write_text(edge_text, encoding="utf-8")
    return n, e


@pytest.mark.parametrize("fmt", ["csv", "tsv", "csv.gz", "tsv.gz", "jsonl", "parquet"])
def test_every_format_reads_by_columns_and_equals_the_row_reader(tmp_path, fmt, monkeypatch):
    n, e = _write(tmp_path, fmt)
    calls = []
    monkeypatch.setattr(loaders, "_load_tag_rows", lambda *a, **k: calls.append(a))
    tag = load_tag_files(n, e)
    assert not calls, "a good file never goes through the row reader"
    monkeypatch.undo()
    rows = loaders._load_tag_rows(n, e, tag.name, None, False)
    assert tag.name == "tmp" or tag.name == n.parent.name
    assert tag.node_ids == rows.node_ids == ["p1", "p2", "p3", "10"]
    assert tag.texts == rows.texts and tag.texts[3] == "padded text"
    assert tag.class_names == rows.class_names == ["X", "Y"] and tag.labels.tolist() == rows.labels.tolist() == [0, 1, -1, 0]
    assert torch.equal(tag.edge_index, rows.edge_index) and tag.num_edges == 3
    assert tag.content_hash() == rows.content_hash()


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet"])
@pytest.mark.parametrize("rows,edges,error,csv_line,parquet_row,field", [  # p2's text spans two CSV lines
    (ROWS + [("p1", "again", "X")], EDGES, DuplicateNodeIdError, 7, 5, "id"),
    (ROWS[:2] + [("p3", " ", "X")], [], EmptyTextError, 5, 3, "text"),
    (ROWS[:1] + [("p9", "nine", "Q")], [], UnknownLabelError, 3, 2, "label"),
    (ROWS, EDGES + [("p1", "nobody")], UnknownNodeError, 7, 6, "target"),
])
def test_bad_records_keep_their_named_errors(tmp_path, fmt, rows, edges, error, csv_line, parquet_row, field):
    n, e = _write(tmp_path, fmt, rows, edges)
    with pytest.raises(error) as err:
        load_tag_files(n, e, class_names=["X", "Y"])
    line = parquet_row if fmt == "parquet" else csv_line
    assert err.value.field == field and err.value.line == line, str(err.value)
    assert f":{line}: field {field!r}" in str(err.value)


def test_the_columnar_pass_refuses_what_the_row_reader_must_name(tmp_path):
    n, e = _write(tmp_path, "csv", ROWS + [("p1", "again", "X")])
    with pytest.raises(NeedsRowReader):
        load_tag_columnar(n, e)
