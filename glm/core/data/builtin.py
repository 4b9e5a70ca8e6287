"""Built-in dataset plugin: registers glm's datasets through the same hook third parties use.

A third-party package adds its own TAG the same way::

    from glm.plugins import hookimpl

    @hookimpl
    def register_datasets(register):
        register("my_tag", lambda data_dir=None, **_: load_tag_files("nodes.csv", "edges.csv"), "my graph")
"""

from __future__ import annotations

from typing import Callable

from glm.plugins.hookspecs import hookimpl


def _citeseer_tag(data_dir=None, **_):
    from glm.core.data.tag import load_citeseer_tag

    return load_citeseer_tag(data_dir)


def _planetoid(name: str):
    def load(data_dir=None, **_):
        from glm.core.data.loaders import load_planetoid

        return load_planetoid(name, data_dir)

    return load


def _synthetic(num_nodes: int = 48, num_classes: int = 4, seed: int = 0, **_):
    from glm.core.data.tag import synthetic_tag

    return synthetic_tag(num_nodes=num_nodes, num_classes=num_classes, seed=seed)


def _tag_files(nodes=None, edges=None, name=None, class_names=None, **_):
    from glm.core.data.loaders import load_tag_files

    if nodes is None or edges is None:
        raise ValueError("dataset 'tag_files' needs nodes=PATH and edges=PATH (CSV/TSV/JSONL)")
    return load_tag_files(nodes, edges, name=name, class_names=class_names)


def _ogb(data_dir=None, name="ogbn-arxiv", texts=None, **_):
    from glm.core.data.layouts import load_ogb_folder

    return load_ogb_folder(data_dir, name, texts)


def _graph_npz(path=None, texts=None, name=None, instructions=None, graph=None, **_):
    from glm.core.data.layouts import load_graph_npz

    return load_graph_npz(path, texts, name, instructions, graph)


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    register("citeseer_tag", _citeseer_tag, description="CiteSeer TAG: 3,186 papers with title+abstract, 6 classes")
    register("cora", _planetoid("cora"), description="Planetoid Cora: 2,708 nodes, bag of words (no text), 7 classes")
    register("citeseer", _planetoid("citeseer"), description="Planetoid CiteSeer: 3,327 nodes, bag of words, 6 classes")
    register("synthetic", _synthetic, description="tiny built-in synthetic TAG (48 nodes, 4 classes) for tests")
    register("tag_files", _tag_files, description="your own TAG: nodes=PATH (id,text[,label]) edges=PATH (source,target)",
             prompt={"graph": "graph", "node": "node", "nodes": "nodes", "split_title": False})
    register("ogb", _ogb, description="an OGB node-property folder (data_dir=the downloaded folder, name=ogbn-arxiv; "
                                      "texts=FILE adds node texts)",
             prompt={"graph": "graph", "node": "node", "nodes": "nodes", "split_title": False})
    register("graph_npz", _graph_npz, description="a graph saved as .npz (path=, texts=, instructions=GraphGPT's "
                                                  "instruction JSON): GraphGPT / LLaGA data converted as docs/data.md shows",
             prompt={"graph": "graph", "node": "node", "nodes": "nodes", "split_title": False})
