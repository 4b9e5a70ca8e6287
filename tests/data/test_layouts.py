"""The field's layouts: an OGB node-property folder and a GraphGPT / LLaGA graph converted to .npz.

The fixtures are written here in those layouts (small graphs); nothing is downloaded or unpickled.
"""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from glm.core.data import DataNotFoundError, DataValidationError, load_dataset


def _gz(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


@pytest.fixture()
def ogb(tmp_path):
    root = tmp_path / "ogbn_arxiv"
    _gz(root / "raw" / "edge.csv.gz", "0,1\n1,2\n2,0\n3,1\n")
    _gz(root / "raw" / "node-label.csv.gz", "1\n0\n1\nnan\n")  # node 3 unlabelled
    _gz(root / "raw" / "node-feat.csv.gz", "".join(",".join(f"{i + j / 10:.1f}" for j in range(3)) + "\n"
                                                  for i in range(4)))
    _gz(root / "mapping" / "labelidx2arxivcategeory.csv.gz", "label idx,arxiv category\n0,arxiv cs ai\n1,arxiv cs lg\n")
    _gz(root / "mapping" / "nodeidx2paperid.csv.gz", "node idx,paper id\n0,9000\n1,9001\n2,9002\n3,9003\n")
    return tmp_path


def test_ogb_folder_reads_edges_labels_features_and_names(ogb):
    tag = load_dataset("ogb", data_dir=str(ogb), name="ogbn-arxiv")
    assert tag.num_nodes == 4 and tag.num_edges == 4 and tag.class_names == ["arxiv cs ai", "arxiv cs lg"]
    assert tag.labels.tolist() == [1, 0, 1, -1] and tag.node_ids == ["9000", "9001", "9002", "9003"]
    assert tag.texts is None and torch.allclose(tag.x[2], torch.tensor([2.0, 2.1, 2.2]))


def test_ogb_texts_join_on_the_mapping_ids(ogb):
    (ogb / "titleabs.tsv").write_text("id\ttext\n9003\tfour\n9000\tone\n9001\ttwo\n9002\tthree\n", encoding="utf-8")
    tag = load_dataset("ogb", data_dir=str(ogb / "ogbn_arxiv"), texts=str(ogb / "titleabs.tsv"))
    assert tag.texts == ["one", "two", "three", "four"]
    (ogb / "short.tsv").write_text("id\ttext\n9000\tone\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="3 nodes without one"):
        load_dataset("ogb", data_dir=str(ogb), texts=str(ogb / "short.tsv"))


def test_ogb_errors_are_named(tmp_path, ogb):
    with pytest.raises(DataNotFoundError, match="raw/edge.csv.gz"):
        load_dataset("ogb", data_dir=str(tmp_path / "nowhere"))
    _gz(ogb / "ogbn_arxiv" / "raw" / "edge.csv.gz", "0,1\n1,9\n")
    with pytest.raises(DataValidationError, match="node index.*0..3, found 0..9"):
        load_dataset("ogb", data_dir=str(ogb))


def test_graph_npz_with_texts_as_llaga_converts_it(tmp_path):
    np.savez(tmp_path / "arxiv_graph.npz", edge_index=np.array([[0, 1, 2], [1, 2, 0]]), y=np.array([0, 1, 1]),
             x=np.eye(3, dtype=np.float32), label_names=np.array(["cs.AI", "cs.LG"]))
    pq.write_table(pa.table({"id": [0, 1, 2], "text": ["a", "b", "c"]}), tmp_path / "texts.parquet")
    tag = load_dataset("graph_npz", path=str(tmp_path / "arxiv_graph.npz"), texts=str(tmp_path / "texts.parquet"))
    assert tag.name == "arxiv_graph" and tag.class_names == ["cs.AI", "cs.LG"] and tag.texts == ["a", "b", "c"]
    assert tag.num_edges == 3 and torch.equal(tag.x, torch.eye(3))


def test_graph_npz_refuses_pickles_and_bad_shapes(tmp_path):
    np.savez(tmp_path / "obj.npz", edge_index=np.array([[0], [1]]), y=np.array([{"a": 1}, {}], dtype=object))
    with pytest.raises(DataValidationError, match="never unpickled"):
        load_dataset("graph_npz", path=str(tmp_path / "obj.npz"))
    np.savez(tmp_path / "bad.npz", edge_index=np.array([[0, 5], [1, 0]]), y=np.array([0, 1]))
    with pytest.raises(DataValidationError, match="node indices 0..1, found 0..5"):
        load_dataset("graph_npz", path=str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "noy.npz", edge_index=np.array([[0], [1]]))
    with pytest.raises(DataValidationError, match="an array named y"):
        load_dataset("graph_npz", path=str(tmp_path / "noy.npz"))


def _item(id_: str, node_list: list[int], idx: int, text: str, answer: str) -> dict:
    human = (f"Given a citation graph: \n<graph>\nwhere the 0th node is the target paper, with the following "
             f"information: \n{text}\n Question: Which arXiv CS sub-category does this paper belong to?")
    return {"id": id_, "graph": {"node_idx": idx, "node_list": node_list, "edge_index": [[0], [1]]},
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]}


def test_graphgpt_instruction_json_adds_texts_and_class_names(tmp_path):
    import json

    # GraphGPT's graph_data_all.pt["arxiv"] converted as docs/data.md shows: no label_names, no texts
    np.savez(tmp_path / "arxiv.npz", edge_index=np.array([[0, 1, 2, 3], [1, 2, 3, 0]]), y=np.array([0, 1, 1, 0]),
             x=np.eye(4, dtype=np.float32))
    items = [_item("arxiv_train_0", [0, 1], 0, "Abstract: zero. Title: Zero", "cs.AI, Artificial Intelligence"),
             _item("arxiv_train_1", [3, 2, 1], 2, "Abstract: one. Title: One", "cs.LG, Machine Learning"),
             _item("arxiv_test_2", [2], 0, "Abstract: two. Title: Two", "cs.LG, Machine Learning"),
             _item("arxiv_test_3", [3, 0], 0, "Abstract: three. Title: Three", "cs.LG, Machine Learning"),
             _item("arxiv_test_4", [3], 0, "Abstract: three again", "cs.AI, Artificial Intelligence"),
             _item("pubmed_train_0", [9999], 0, "another graph's item", "Diabetes")]
    (tmp_path / "arxiv_instruct.json").write_text(json.dumps(items), encoding="utf-8")
    tag = load_dataset("graph_npz", path=str(tmp_path / "arxiv.npz"), instructions=str(tmp_path / "arxiv_instruct.json"))
    # node 3 (class 0) has two answers: the majority over its class's targets names the class
    assert tag.class_names == ["cs.AI, Artificial Intelligence", "cs.LG, Machine Learning"]
    assert tag.texts == ["Abstract: zero. Title: Zero", "Abstract: one. Title: One", "Abstract: two. Title: Two",
                         "Abstract: three. Title: Three"]
    from glm.core.data.instructions import read_instructions

    ins = read_instructions(tmp_path / "arxiv_instruct.json", "arxiv", 4)
    assert ins.nodes.tolist() == [0, 1, 2, 3, 3] and ins.splits == ["train", "train", "test", "test", "test"]


def test_graphgpt_instruction_errors_are_named(tmp_path):
    import json

    np.savez(tmp_path / "arxiv.npz", edge_index=np.array([[0], [1]]), y=np.array([0, 1]))
    bad = tmp_path / "i.json"
    bad.write_text(json.dumps([_item("cora_train_0", [0], 0, "t", "a")]), encoding="utf-8")
    with pytest.raises(DataValidationError, match="items of graph 'arxiv'.*'cora' \\(1\\)"):
        load_dataset("graph_npz", path=str(tmp_path / "arxiv.npz"), instructions=str(bad))
    bad.write_text(json.dumps([_item("arxiv_train_0", [7], 0, "t", "a")]), encoding="utf-8")
    with pytest.raises(DataValidationError, match="item 0.graph.node_list.*0..1, found 7"):
        load_dataset("graph_npz", path=str(tmp_path / "arxiv.npz"), instructions=str(bad))
    bad.write_text("[{\"id\": ", encoding="utf-8")
    with pytest.raises(DataValidationError, match="i.json.*JSON list"):
        load_dataset("graph_npz", path=str(tmp_path / "arxiv.npz"), instructions=str(bad))
