"""GraphGPT's instruction JSON: node texts, class names and the author's node list, read without pickle.

GraphGPT (and GraphLAMA, which reuses its data) ships each task as one JSON list; an item is::

    {"id": "arxiv_train_17",                       # "<graph>_<...>": the graph of graph_data_all.pt
     "graph": {"node_idx": 0,                      # the target's position in node_list
               "node_list": [17, 4021, ...],       # global node indices of the sampled subgraph
               "edge_index": [[0, 0, ...], [1, 2, ...]]},
     "conversations": [{"from": "human", "value": "Given a citation graph: \\n<graph>\\nwhere the 0th node
                        is the target paper, with the following information: \\nAbstract: ... Title: ...
                        \\n Question: Which arXiv CS sub-category ..."},
                       {"from": "gpt", "value": "cs.LG, Machine Learning"}]}

The graph itself (``graph_data_all.pt``) is a pickle; it is read as the ``.npz`` of docs/data.md. What the
JSON adds, and what :func:`read_instructions` returns, is plain data: each target node's text (the human
turn between its "with the following information:" preamble and its "Question:", or the whole turn without
the ``<graph>`` line when those markers are absent), its answer, and which items the file holds. glm samples
its own subgraphs, so the items' ``edge_index`` is not used.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from glm.core.data.errors import DataNotFoundError, DataValidationError

GRAPH_PLACEHOLDER = "<graph>"
_PREAMBLE = re.compile(r"^.*?with the following information:\s*", re.S)
_QUESTION = re.compile(r"\s*Question:.*$", re.S)
MAX_CLASS_NAME_CHARS = 100  # a longer majority answer is an explanation (chain of thought), not a class name


@dataclass
class Instructions:
    """The targets of one graph's instruction items, in file order (one entry per item)."""

    nodes: np.ndarray          # [M] int64 global node index of each item's target
    texts: list[str]           # [M] the target's text from the human turn
    answers: list[str]         # [M] the gpt turn
    splits: list[str]          # [M] "train" / "test" / ... from the id ("arxiv_test_5" -> "test"), "" if none


def node_text(human: str) -> str:
    """The node's own text in a GraphGPT human turn: preamble, ``<graph>`` line and question cut off."""
    text = human.replace(GRAPH_PLACEHOLDER, "")
    if _PREAMBLE.search(text):
        text = _PREAMBLE.sub("", text, count=1)
    return _QUESTION.sub("", text).strip()


def read_instructions(path: str | Path, graph: str, num_nodes: int) -> Instructions:
    """The items of ``path`` whose id names ``graph`` (``"<graph>_..."``), checked against ``num_nodes``."""
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(str(file), [file.parent], hint="instructions=FILE names GraphGPT's instruction JSON")
    try:
        items = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataValidationError(file, getattr(exc, "lineno", None), "json", "a JSON list of instruction items",
                                  str(exc).splitlines()[0][:200]) from None
    if not isinstance(items, list):
        raise DataValidationError(file, None, "json", "a JSON list of instruction items", type(items).__name__)
    nodes, texts, answers, splits, prefixes = [], [], [], [], Counter()
    for k, item in enumerate(items):
        where = f"item {k}"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise DataValidationError(file, None, f"{where}.id", "a string '<graph>_<split>_<n>'", repr(item)[:80])
        prefix, *rest = item["id"].split("_")
        prefixes[prefix] += 1
        if prefix != graph:
            continue
        g, conv = item.get("graph"), item.get("conversations")
        if not isinstance(g, dict) or "node_idx" not in g or not isinstance(g.get("node_list"), list):
            raise DataValidationError(file, None, f"{where}.graph", "{node_idx, node_list, edge_index}", repr(g)[:80])
        turns = {t.get("from"): t.get("value") for t in conv or [] if isinstance(t, dict)}
        if not isinstance(turns.get("human"), str) or not isinstance(turns.get("gpt"), str):
            raise DataValidationError(file, None, f"{where}.conversations", "a 'human' and a 'gpt' turn",
                                      sorted(k for k in turns if k))
        try:
            node = int(g["node_list"][int(g["node_idx"])])
        except (IndexError, TypeError, ValueError):
            raise DataValidationError(file, None, f"{where}.graph.node_idx",
                                      f"a position in node_list (0..{len(g['node_list']) - 1})", g["node_idx"]) from None
        if not 0 <= node < num_nodes:
            raise DataValidationError(file, None, f"{where}.graph.node_list", f"node indices 0..{num_nodes - 1}", node)
        nodes.append(node)
        texts.append(node_text(turns["human"]))
        answers.append(turns["gpt"].strip())
        splits.append(rest[0] if len(rest) > 1 else "")
    if not nodes:
        found = ", ".join(f"{p!r} ({n})" for p, n in prefixes.most_common(5)) or "no items"
        raise DataValidationError(file, None, "id", f"items of graph {graph!r} ('{graph}_...')", found)
    return Instructions(np.asarray(nodes, dtype=np.int64), texts, answers, splits)


def class_names_from_answers(ins: Instructions, y: np.ndarray, num_classes: int) -> Optional[list[str]]:
    """Each class's most frequent answer among its labelled targets, or ``None`` when some class has no
    target or its majority answer is no class name (longer than :data:`MAX_CLASS_NAME_CHARS`, or shared
    with another class)."""
    votes: list[Counter] = [Counter() for _ in range(num_classes)]
    for node, answer in zip(ins.nodes.tolist(), ins.answers):
        if 0 <= y[node] < num_classes:
            votes[int(y[node])][answer] += 1
    names = [v.most_common(1)[0][0] if v else None for v in votes]
    if any(n is None or len(n) > MAX_CLASS_NAME_CHARS for n in names) or len(set(names)) < len(names):
        return None
    return names  # type: ignore[return-value]


def texts_with_instructions(ins: Instructions, num_nodes: int, texts: Optional[list[str]]) -> list[str]:
    """Node texts: ``texts`` (or empty strings) with every instruction target's text filled in."""
    out = list(texts) if texts is not None else [""] * num_nodes
    for node, text in zip(ins.nodes.tolist(), ins.texts):
        if text and not out[node]:
            out[node] = text
    return out
