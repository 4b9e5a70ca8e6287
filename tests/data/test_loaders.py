"""Loaders: CiteSeer TAG, Planetoid (vs PyG), user files with validation, synthetic, data-dir resolution, registry."""

import json
import shutil

import pytest
import torch

from glm.core.data import (
    DataNotFoundError,
    DuplicateNodeIdError,
    EmptyTextError,
    MalformedRecordError,
    UnknownLabelError,
    UnknownNodeError,
    load_dataset,
)
from glm.core.data.loaders import load_planetoid, load_tag_files
from glm.core.data.tag import load_citeseer_tag, resolve_data_dir, synthetic_tag, undirected_edge_index


def _assert_undirected_clean(tag):
    ei = tag.edge_index
    assert ei.dtype == torch.long and ei.shape[0] == 2
    assert (ei[0] != ei[1]).all(), "self loops"
    keys = ei[0] * tag.num_nodes + ei[1]
    assert torch.unique(keys).numel() == keys.numel(), "duplicate edges"
    rev = torch.sort(ei[1] * tag.num_nodes + ei[0]).values
    assert torch.equal(torch.sort(keys).values, rev), "not symmetric"


# -- CiteSeer TAG -------------------------------------------------------------------------------
def test_citeseer_tag_counts_and_order(data_dir):
    tag = load_citeseer_tag(data_dir)
    assert tag.num_nodes == 3186 and tag.num_edges == 4225 and tag.num_classes == 6
    assert int((tag.degrees() == 0).sum()) == 86
    assert tag.class_codes == ["Agents", "AI", "DB", "IR", "ML", "HCI"]
    assert tag.class_names[4] == "Machine Learning"
    assert tag.node_ids[0] == "norman00argument" and tag.class_names[int(tag.labels[0])] == "Agents"
    assert all(t for t in tag.texts) and (tag.labels >= 0).all()
    _assert_undirected_clean(tag)
    again = load_citeseer_tag(data_dir / "citeseer_tag")  # the dataset folder itself also works
    assert again.node_ids == tag.node_ids and again.content_hash() == tag.content_hash()


def test_data_dir_resolution_env_and_missing(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GLM_DATA_DIR", str(data_dir))
    assert resolve_data_dir(None, "citeseer_tag", "citeseer_texts.txt") == data_dir / "citeseer_tag"
    with pytest.raises(DataNotFoundError) as err:
        load_citeseer_tag(tmp_path)
    assert str(tmp_path) in str(err.value) and "--data-dir" in str(err.value)


def test_missing_default_dirs_name_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("GLM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as err:
        resolve_data_dir(None, "my_tag", "nodes.csv")
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "my_tag") in msg and "shared" in msg


# -- Planetoid ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,nodes,edges,classes", [("cora", 2708, 5278, 7), ("citeseer", 3327, 4552, 6)])
def test_planetoid_matches_pyg(data_dir, tmp_path, name, nodes, edges, classes):
    tag = load_planetoid(name, data_dir)
    assert (tag.num_nodes, tag.num_edges, tag.num_classes) == (nodes, edges, classes)
    assert tag.texts is None and tag.x.shape[0] == nodes
    _assert_undirected_clean(tag)
    planetoid = pytest.importorskip("torch_geometric.datasets", reason="PyG not installed: cross-check skipped").Planetoid
    folder = {"cora": "Cora", "citeseer": "CiteSeer"}[name]
    shutil.copytree(data_dir / "planetoid" / folder, tmp_path / folder)
    data = planetoid(str(tmp_path), folder)[0]
    assert torch.equal(tag.x, data.x)
    ref = data.edge_index
    assert torch.equal(tag.edge_index, ref[:, torch.argsort(ref[0] * nodes + ref[1])])
    labelled = tag.labels >= 0
    assert torch.equal(tag.labels[labelled], data.y[labelled])
    assert int((~labelled).sum()) == (15 if name == "citeseer" else 0)


# -- user files -------------------------------------------------------------------------------------
def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_tag_files_formats(tmp_path, fmt):
    rows = [("a", "Alpha paper about graphs", "X"), ("b", "Beta, with a comma", "Y"), ("c", "Gamma", "")]
    if fmt == "jsonl":
        nodes = _write(tmp_path / "n.jsonl", "\n".join(json.dumps({"id": i, "text": t, "label": l}) for i, t, l in rows))
        edges = _write(tmp_path / "e.jsonl", '{"source": "a", "target": "b"}\n{"source": "b", "target": "c"}\n')
    else:
        sep = "," if fmt == "csv" else "\t"
        quote = (lambda s: f'"{s}"') if fmt == "csv" else (lambda s: s)
        nodes = _write(tmp_path / f"n.{fmt}", f"id{sep}text{sep}label\n" + "".join(
            f"{i}{sep}{quote(t)}{sep}{l}\n" for i, t, l in rows))
        edges = _write(tmp_path / f"e.{fmt}", f"source{sep}target\na{sep}b\nb{sep}c\nb{sep}a\n")
    tag = load_tag_files(nodes, edges, name="mine")
    assert tag.node_ids == ["a", "b", "c"] and tag.texts[1] == "Beta, with a comma"
    assert tag.class_names == ["X", "Y"] and tag.labels.tolist() == [0, 1, -1]
    assert tag.num_edges == 2
    _assert_undirected_clean(tag)


@pytest.mark.parametrize(
    "nodes_text,edges_text,error,line,field",
    [
        ("id,text,label\na,one,X\nb,two,Y\na,three,X\n", "source,target\n", DuplicateNodeIdError, 4, "id"),
        ("id,text,label\na,one,X\nb,two,Y\n", "source,target\na,b\nb,zz\n", UnknownNodeError, 3, "target"),
        ("id,text,label\na,one,X\nb,  ,Y\n", "source,target\n", EmptyTextError, 3, "text"),
        ("id,text,label\na,one,X\nb,two,Q\n", "source,target\n", UnknownLabelError, 3, "label"),
        ("id,text,label\na,one,X\nb,two\n", "source,target\n", MalformedRecordError, 3, "row"),
        ("id,label\na,X\n", "source,target\n", MalformedRecordError, 2, "text"),
    ],
)
def test_tag_files_validation(tmp_path, nodes_text, edges_text, error, line, field):
    nodes = _write(tmp_path / "nodes.csv", nodes_text)
    edges = _write(tmp_path / "edges.csv", edges_text)
    with pytest.raises(error) as err:
        load_tag_files(nodes, edges, class_names=["X", "Y"])
    bad_file = edges if error is UnknownNodeError else nodes
    assert err.value.file == bad_file and err.value.line == line and err.value.field == field
    assert f"{bad_file}:{line}" in str(err.value)


def test_tag_files_bad_jsonl_and_extension(tmp_path):
    nodes = _write(tmp_path / "n.jsonl", '{"id": "a", "text": "x"}\nnot json\n')
    edges = _write(tmp_path / "e.jsonl", "")
    with pytest.raises(MalformedRecordError) as err:
        load_tag_files(nodes, edges)
    assert err.value.line == 2
    with pytest.raises(MalformedRecordError, match="csv"):
        load_tag_files(_write(tmp_path / "n.xml", "<x/>"), edges)


# -- synthetic + registry ------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_tag_like():
    a, b = synthetic_tag(), synthetic_tag()
    assert a.content_hash() == b.content_hash() and a.texts == b.texts
    assert synthetic_tag(seed=1).content_hash() != a.content_hash()
    assert a.num_nodes == 48 and a.num_classes == 4 and a.num_edges > 20
    _assert_undirected_clean(a)
    same = (a.labels[a.edge_index[0]] == a.labels[a.edge_index[1]]).float().mean()
    assert same > 0.6  # homophilous


def test_undirected_edge_index_cleans():
    ei = undirected_edge_index(torch.tensor([0, 1, 2, 2]), torch.tensor([1, 0, 2, 3]), 4)
    assert ei.tolist() == [[0, 1, 2, 3], [1, 0, 3, 2]]


def test_builtin_datasets_registered_through_plugin_seam():
    from glm.plugins.manager import get_registry

    reg = get_registry()
    for name in ("citeseer_tag", "cora", "citeseer", "synthetic", "tag_files"):
        assert reg.datasets[name].plugin == "glm.core.data.builtin"
    assert load_dataset("synthetic", num_nodes=12).num_nodes == 12


def test_third_party_dataset_hook():
    from glm.core.data.builtin import register_datasets
    from glm.plugins.registry import Registry

    reg = Registry()
    register_datasets(lambda *a, **k: reg.add_dataset(*a, plugin="x", **k))
    reg.add_dataset("mine", lambda **_: synthetic_tag(num_nodes=8), plugin="third")
    assert reg.dataset("mine").loader().num_nodes == 8


@pytest.mark.parametrize("reader", ["columnar", "rows"])
def test_a_title_column_gives_title_generation_its_references(tmp_path, reader, monkeypatch):
    from glm.core.data.generation_split import titled_nodes
    from glm.core.data.tasks import GENERIC, GraphSource

    nodes = _write(tmp_path / "n.csv", "id,title,text,label\na,Graph Tokens,we splice nodes,x\nb,,no title here,y\n"
                                       "c,Soft Prompts,we tune prompts,x\n")
    edges = _write(tmp_path / "e.csv", "source,target\na,b\nb,c\n")
    if reader == "rows":  # the row reader, which names a bad record, must read titles the same way
        from glm.core.data import loaders

        monkeypatch.setattr(loaders, "load_tag_columnar",
                            lambda *a, **k: (_ for _ in ()).throw(loaders.NeedsRowReader("forced")))
    tag = load_tag_files(nodes, edges)
    assert tag.titles == ["Graph Tokens", "", "Soft Prompts"] and tag.texts[0] == "we splice nodes"
    source = GraphSource(tag, torch.zeros(3, 4), [2], 0, template=GENERIC)
    assert source.text_parts(0) == ("Graph Tokens", "we splice nodes") and source.text_parts(1) == (None, "no title here")
    assert titled_nodes(source) == [0, 2]
