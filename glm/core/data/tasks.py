"""Instruction tasks on a TAG: node classification, graph (node-text) matching, link prediction,
title generation. Each builder turns node ids into :class:`~glm.core.sample.Sample` objects whose
prompt has one ``<graph>`` placeholder per subgraph and whose answer is the supervised reply.

Prompts follow GraphGPT / GraphLAMA ("... where the 0th node is the target paper ..."); the chat
template is applied later by the collator. Their domain words come from a :class:`PromptTemplate`
(CiteSeer's citation graph of papers by default; a dataset plugin or ``data.prompt`` sets others,
e.g. a web graph of pages whose text is not split into title and abstract). Node texts are cut to a
word budget so that CPU demos keep prompts at a few hundred tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

from glm.core.data.errors import InsufficientNodesError
from glm.core.data.sampling import DEFAULT_FANOUTS, NeighborSampler, SampledSubgraphs, precompute_subgraphs
from glm.core.data.tag import TextAttributedGraph
from glm.core.graph import GraphValidationError, Subgraph
from glm.core.sample import Sample
from glm.core.tokens import GRAPH_PLACEHOLDER

# Task texts fed to the task-related gate (GraphLAMA reshape_cora.py::task_text; NC texts carry the choices).
LINK_PREDICTION_TASK_TEXT = "Is there a connection between these two target nodes?"



@dataclass(frozen=True)
class PromptTemplate:
    """The domain words of every task prompt.

    Args:
        graph: what the graph is (``citation graph``, ``web graph``, ...).
        node / nodes: what a node is, singular and plural (``paper`` / ``papers``).
        split_title: split node text into ``Title`` and ``Abstract`` (the CiteSeer heuristic of
            :func:`split_title_abstract`); ``False`` shows it as ``Text: ...``.
    """

    graph: str = "citation graph"
    node: str = "paper"
    nodes: str = "papers"
    split_title: bool = True

    @classmethod
    def from_options(cls, *layers: Optional[dict[str, Any]], where: str = "data.prompt") -> "PromptTemplate":
        """Later layers override earlier ones; unknown keys raise ``ValueError`` naming them."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer or {})
        unknown = sorted(set(merged) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**merged)

    def graph_matching_text(self) -> str:
        return (f"please reorder the list of {self.nodes} according to the order of graph tokens "
                f"(i.e., complete the matching of graph tokens and {self.nodes}).")

    def title_generation_text(self) -> str:
        return f"Please generate a suitable title for this {self.node}. Directly give the title."


CITATION = PromptTemplate()
GENERIC = PromptTemplate(graph="graph", node="node", nodes="nodes", split_title=False)
GRAPH_MATCHING_TASK_TEXT = CITATION.graph_matching_text()
TITLE_GENERATION_TASK_TEXT = CITATION.title_generation_text()

_TITLE_STOPWORDS = frozenset(
    "a an and or the of in on for to with by from at as into via versus vs through towards toward using "
    "based over under about between within without its their not new".split())
_ABSTRACT_OPENERS = frozenset("In The This We A An Our These Recent Most Many It".split())


def split_title_abstract(text: str, max_title_words: int = 30) -> tuple[Optional[str], str]:
    """Split CiteSeer's "Title Abstract" text (no delimiter in the data) into ``(title, abstract)``.

    Heuristic (titles are Title Case, abstracts start with a sentence): the abstract starts at the
    first capitalised word, not after a colon, that follows a lone ``.``/``:`` or a word ending in
    ``.``, or that is followed by a lower-case word which is not a title stop word (``in``, ``of``,
    ...) unless it is a typical opener ("In this", "The", "We" ...). Returns ``(None, text)`` when
    no boundary is found in the first ``max_title_words`` words (about 4% of CiteSeer).
    """
    w = text.split()
    for i in range(1, min(len(w) - 1, max_title_words + 1)):
        cur, nxt, prev = w[i], w[i + 1], w[i - 1]
        if cur == ":" or cur == ".":
            return " ".join(w[:i]), " ".join(w[i + 1:])
        if not cur[:1].isupper() or prev.endswith(":"):
            continue
        if (prev.endswith(".") and len(prev) > 1) or (
                nxt[:1].islower() and nxt[:1].isalpha()
                and (nxt.lower().strip(",.:;") not in _TITLE_STOPWORDS or cur in _ABSTRACT_OPENERS)):
            return " ".join(w[:i]).rstrip(" ."), " ".join(w[i:])
    return None, text


def clip_words(text: str, max_words: Optional[int]) -> str:
    words = text.split()
    if max_words is None or len(words) <= max_words:
        return " ".join(words)
    return " ".join(words[:max_words]) + " ..."


def truncate_subgraph(sg: Subgraph, max_nodes: int) -> Subgraph:
    """Keep the first ``max_nodes`` nodes (target and nearest hops: glm's node order is by hop) and
    the edges among them. Connectivity is kept because every node is drawn from an earlier one."""
    if sg.num_nodes <= max_nodes:
        return sg
    keep = (sg.edge_index < max_nodes).all(0)
    return Subgraph(x=sg.x[:max_nodes], edge_index=sg.edge_index[:, keep], target=sg.target,
                    edge_weight=None if sg.edge_weight is None else sg.edge_weight[keep],
                    node_ids=None if sg.node_ids is None else sg.node_ids[:max_nodes],
                    hop=None if sg.hop is None else sg.hop[:max_nodes])


class GraphSource:
    """Features + subgraphs of one TAG, shared by all task builders.

    Args:
        tag: the graph.
        x: ``[N, F]`` node features (see :func:`glm.core.data.features.node_features`).
        fanouts / seed: sampler settings (default ``[10, 10]``).
        cache_dir: where :attr:`store` (the subgraphs of all nodes, sampled once) is cached (``None``: default
            cache folder; ``False``: no disk cache).
        template: the prompts' domain words (default: CiteSeer's :data:`CITATION`).

    Subgraphs are sampled on the fly from the CSR index, only for the nodes asked for: a node's subgraph
    depends on ``(seed, node)`` alone (:mod:`glm.core.data.sampling`), so it equals the row of the all-node
    :attr:`store`, which is built only when something asks for it (``glm data prepare --subgraphs``).
    """

    def __init__(self, tag: TextAttributedGraph, x: Tensor, fanouts: Sequence[int] = DEFAULT_FANOUTS,
                 seed: int = 0, cache_dir: Optional[Path | str | bool] = None,
                 template: Optional[PromptTemplate] = None):
        if x.shape[0] != tag.num_nodes:
            raise GraphValidationError(f"{tag.name}: x has {x.shape[0]} rows, expected {tag.num_nodes} (one per node)")
        if not all(bool(torch.isfinite(x[i:i + 65536]).all()) for i in range(0, x.shape[0], 65536)):  # bounded memory
            raise GraphValidationError(f"{tag.name}: node features contain NaN/inf")
        self.tag, self.x, self.fanouts, self.seed = tag, x, tuple(fanouts), seed
        self.template = template or CITATION
        self.sampler = NeighborSampler(tag.edge_index, tag.num_nodes, fanouts, seed)
        self._cache_dir = cache_dir
        self._store: Optional[SampledSubgraphs] = None
        self._row: dict[int, int] = {}

    @property
    def store(self) -> SampledSubgraphs:
        """Subgraphs of every node, sampled once (and cached on disk unless ``cache_dir=False``)."""
        if self._store is None:
            cache = self._cache_dir
            self._store = precompute_subgraphs(
                self.tag.edge_index, self.tag.num_nodes, None, self.fanouts, self.seed,
                dataset_hash=None if cache is False else self.tag.content_hash(),
                cache_dir=None if cache in (None, False, True) else cache)
            self._row = self._store.index()
        return self._store

    def subgraphs(self, nodes: Sequence[int] | Tensor, exclude: Optional[Tensor] = None) -> list[Subgraph]:
        """One validated :class:`Subgraph` per node (target at 0, features attached)."""
        nodes = torch.as_tensor(nodes, dtype=torch.long).flatten()
        if exclude is None and self._store is not None:
            out = [self._store.subgraph(self._row[int(n)], self.x) for n in nodes]
        else:
            s = self.sampler.sample(nodes, exclude=exclude)
            out = [s.subgraph(i, self.x) for i in range(len(s))]
        for sg, n in zip(out, nodes.tolist()):
            sg.validate(f"{self.tag.name} subgraph of node {n}")
        return out

    def text_parts(self, node: int) -> tuple[Optional[str], Optional[str]]:
        """``(title, abstract)`` of a node; ``(None, text)`` when no title could be split off or the
        template does not split titles."""
        if self.tag.texts is None:
            return None, None
        if self.tag.titles is not None:  # a title column: the text is the rest
            return self.tag.titles[node] or None, self.tag.texts[node]
        if not self.template.split_title:
            return None, self.tag.texts[node]
        return split_title_abstract(self.tag.texts[node])


def _info_block(source: GraphSource, node: int, max_words: Optional[int]) -> str:
    title, abstract = source.text_parts(node)
    if abstract is None:
        return ""
    if title is None:
        return f"Text: {clip_words(abstract, max_words)}\n"
    return f"Title: {title}\nAbstract: {clip_words(abstract, max_words)}\n"


def classification_question(choices: Sequence[str], node: str = "paper") -> str:
    return (f"Which of the following categories does this {node} belong to: {', '.join(choices)}? "
            f"Directly give the full name of the most likely category of this {node}.")


def node_classification(source: GraphSource, nodes: Sequence[int] | Tensor, classes: Optional[Sequence[int]] = None,
                        include_text: bool = True, max_text_words: Optional[int] = 160,
                        unlabelled: bool = False) -> list[Sample]:
    """"Which category?" samples. ``classes``: class indices offered as choices (default all), e.g. the
    N held-out classes of a few-shot split; each node's label must be among them, unless ``unlabelled``
    (inference on any node: a label outside the choices gives an empty answer). Answer: class name."""
    tag = source.tag
    classes = list(range(tag.num_classes)) if classes is None else [int(c) for c in classes]
    choices = [tag.class_names[c] for c in classes]
    t = source.template
    question = classification_question(choices, t.node)
    nodes = [int(n) for n in torch.as_tensor(nodes).flatten().tolist()]
    samples = []
    for node, sg in zip(nodes, source.subgraphs(nodes)):
        label = int(tag.labels[node])
        if label not in classes and not unlabelled:
            raise GraphValidationError(f"{tag.name}: node {node} has label {label}, which is not among the choices {classes}")
        name = tag.class_names[label] if label in classes else ""
        info = _info_block(source, node, max_text_words) if include_text else ""
        head = f"Given a {t.graph}: \n{GRAPH_PLACEHOLDER}\nwhere the 0th node is the target {t.node}"
        prompt = f"{head}, with the following information: \n{info}Question: {question}" if info else f"{head}. Question: {question}"
        samples.append(Sample(prompt=prompt, answer=name, graphs=[sg], task="node_classification",
                              task_text=question, meta={"dataset": tag.name, "node": node, "node_id": tag.node_ids[node],
                                                        "label": name, "choices": choices}))
    return samples


def graph_matching(source: GraphSource, nodes: Sequence[int] | Tensor, max_nodes: int = 8, title_words: int = 12,
                   seed: int = 0, answer_format: str = "indices") -> list[Sample]:
    """GraphGPT's stage-1 "graph matching": the graph tokens of a subgraph (cut to ``max_nodes``) and
    a shuffled list of its papers' titles; the answer maps each graph token to its paper.
    ``answer_format``: ``indices`` ("Graph token 1 corresponds to paper 3. ...") or ``titles``."""
    tag = source.tag
    if tag.texts is None:
        raise GraphValidationError(f"{tag.name}: graph matching needs node texts")
    if answer_format not in ("indices", "titles"):
        raise ValueError(f"answer_format must be 'indices' or 'titles', got {answer_format!r}")
    g = torch.Generator().manual_seed(seed)
    nodes = [int(n) for n in torch.as_tensor(nodes).flatten().tolist()]
    t = source.template
    task_text = t.graph_matching_text()
    samples = []
    for node, sg in zip(nodes, source.subgraphs(nodes)):
        sg = truncate_subgraph(sg, max_nodes)
        ids = sg.node_ids.tolist()
        titles = [clip_words(source.text_parts(i)[0] or tag.texts[i], title_words) for i in ids]
        perm = torch.randperm(len(ids), generator=g).tolist()  # perm[j] = graph token shown as paper j+1
        listing = " ".join(f"{j + 1}. {titles[p]}" for j, p in enumerate(perm))
        paper_of = {p: j + 1 for j, p in enumerate(perm)}
        if answer_format == "indices":
            answer = " ".join(f"Graph token {k + 1} corresponds to {t.node} {paper_of[k]}." for k in range(len(ids)))
        else:
            answer = " ".join(f"Graph token {k + 1} corresponds to {titles[k]}." for k in range(len(ids)))
        info = "the title and abstract information" if t.split_title else "the text"
        prompt = (f"Given a sequence of graph tokens {GRAPH_PLACEHOLDER} that constitute a subgraph of a {t.graph}, "
                  "where the first token represents the central node of the subgraph, and the remaining nodes "
                  "represent the first or second order neighbors of the central node. Each graph token contains "
                  f"{info} of the {t.node} at this node. Here is a list of {t.node} titles: "
                  f"{listing}, {task_text}")
        samples.append(Sample(prompt=prompt, answer=answer, graphs=[sg], task="graph_matching",
                              task_text=task_text,
                              meta={"dataset": tag.name, "node": node, "order": perm}))
    return samples


def link_pairs(tag: TextAttributedGraph, num_pairs: int, seed: int = 0,
               nodes: Optional[Sequence[int] | Tensor] = None) -> tuple[Tensor, Tensor]:
    """Balanced pairs: ``num_pairs // 2`` existing edges and as many non-edges (both ends in ``nodes``
    when given). Returns ``pairs [P, 2]`` and ``labels [P]`` (1 = edge), shuffled, deterministic."""
    g = torch.Generator().manual_seed(seed)
    n = tag.num_nodes
    allowed = torch.ones(n, dtype=torch.bool) if nodes is None else torch.zeros(n, dtype=torch.bool)
    if nodes is not None:
        allowed[torch.as_tensor(nodes, dtype=torch.long)] = True
    ei = tag.edge_index
    und = ei[:, (ei[0] < ei[1]) & allowed[ei[0]] & allowed[ei[1]]]
    if num_pairs >= 2 and und.shape[1] == 0:
        raise InsufficientNodesError(
            f"{tag.name}: link prediction needs edges between the {int(allowed.sum())} allowed nodes, found none "
            "(drop link_prediction from data.tasks for an edgeless graph)")
    n_pos = min(num_pairs // 2, und.shape[1])
    pos = und[:, torch.randperm(und.shape[1], generator=g)[:n_pos]].t()
    edges = set((ei[0] * n + ei[1]).tolist())
    pool = allowed.nonzero().flatten()
    neg: list[tuple[int, int]] = []
    seen: set[int] = set()
    tries = 0
    while len(neg) < n_pos and tries < 100 * max(n_pos, 1):
        tries += 1
        a, b = pool[torch.randint(pool.numel(), (2,), generator=g)].tolist()
        key = min(a, b) * n + max(a, b)
        if a != b and a * n + b not in edges and key not in seen:
            seen.add(key)
            neg.append((a, b))
    pairs = torch.cat([pos, torch.tensor(neg, dtype=torch.long).reshape(-1, 2)])
    labels = torch.cat([torch.ones(pos.shape[0], dtype=torch.long), torch.zeros(len(neg), dtype=torch.long)])
    order = torch.randperm(pairs.shape[0], generator=g)
    return pairs[order], labels[order]


def link_prediction(source: GraphSource, num_pairs: int, seed: int = 0, nodes: Optional[Sequence[int] | Tensor] = None,
                    include_text: bool = True, title_words: int = 24) -> list[Sample]:
    """Two-subgraph "is there a connection?" samples, balanced yes/no.

    No leakage: the edge between the two targets is removed while sampling *both* subgraphs (for
    negatives too, so positives and negatives are built the same way); the pair may still be linked
    through common neighbours, which is legitimate evidence.
    """
    tag = source.tag
    pairs, labels = link_pairs(tag, num_pairs, seed, nodes)
    flat = pairs.reshape(-1)
    exclude = pairs.repeat_interleave(2, dim=0)
    graphs = source.subgraphs(flat, exclude=exclude)
    samples = []
    for k in range(pairs.shape[0]):
        a, b = pairs[k].tolist()
        parts = []
        for which, node in (("first", a), ("second", b)):
            title, abstract = source.text_parts(node)
            text = title or (clip_words(abstract, title_words) if abstract else None)
            label = "Title" if source.template.split_title else "Text"
            info = f", with the following information: \n{label}: {clip_words(text, title_words)}\n" if include_text and text else ".\n"
            parts.append(f"the {which} target {source.template.node} is the 0th node of {GRAPH_PLACEHOLDER}{info}")
        prompt = (f"Given two subgraphs of a {source.template.graph}, " + parts[0] + "and " + parts[1]
                  + f"Question: {LINK_PREDICTION_TASK_TEXT} Answer yes or no.")
        samples.append(Sample(prompt=prompt, answer="yes" if int(labels[k]) else "no",
                              graphs=[graphs[2 * k], graphs[2 * k + 1]], task="link_prediction",
                              task_text=LINK_PREDICTION_TASK_TEXT,
                              meta={"dataset": tag.name, "pair": (a, b), "label": "yes" if int(labels[k]) else "no",
                                    "choices": ["yes", "no"]}))
    return samples


def title_generation(source: GraphSource, nodes: Sequence[int] | Tensor, max_abstract_words: Optional[int] = 160) -> list[Sample]:
    """Abstract + graph -> title (the spec's "summary generation"). Nodes whose text has no
    recognisable title (see :func:`split_title_abstract`) are skipped."""
    tag = source.tag
    if tag.texts is None:
        raise GraphValidationError(f"{tag.name}: title generation needs node texts")
    keep = [int(n) for n in torch.as_tensor(nodes).flatten().tolist() if source.text_parts(int(n))[0]]
    samples = []
    for node, sg in zip(keep, source.subgraphs(keep)):
        title, abstract = source.text_parts(node)
        t = source.template
        prompt = (f"Given a {t.graph}: \n{GRAPH_PLACEHOLDER}\nwhere the 0th node is the target {t.node}, with the "
                  f"following information: \nAbstract: {clip_words(abstract, max_abstract_words)}\n"
                  f"Question: {t.title_generation_text()}")
        samples.append(Sample(prompt=prompt, answer=title, graphs=[sg], task="title_generation",
                              task_text=t.title_generation_text(), meta={"dataset": tag.name, "node": node}))
    return samples


TaskBuilder = Callable[..., list[Sample]]


@dataclass(frozen=True)
class TaskSpec:
    """One task of :data:`TASKS`: its builder and which of the common options it takes.

    Calling it with ``(source, nodes, **common)`` passes each common option (``classes``,
    ``max_text_words``, ``graph_matching_nodes``, ``seed``, ``pool``) under the builder's own parameter
    name (``node_text``: node texts in the prompt or only the graph); link prediction takes ``len(nodes)``
    pairs drawn among ``pool``.
    """

    build: TaskBuilder
    options: dict[str, str]
    counts_pairs: bool = False

    def __call__(self, source: "GraphSource", nodes: Sequence[int] | Tensor, **common: Any) -> list[Sample]:
        kwargs = {self.options[k]: v for k, v in common.items() if k in self.options and v is not None}
        return self.build(source, len(nodes) if self.counts_pairs else nodes, **kwargs)


TASKS: dict[str, TaskSpec] = {  # the one task table: the pipeline, glm data and the bench build samples here
    "node_classification": TaskSpec(node_classification, {"classes": "classes", "max_text_words": "max_text_words",
                                                          "node_text": "include_text"}),
    "graph_matching": TaskSpec(graph_matching, {"graph_matching_nodes": "max_nodes", "seed": "seed"}),
    "link_prediction": TaskSpec(link_prediction, {"seed": "seed", "pool": "nodes", "node_text": "include_text"},
                                counts_pairs=True),
    "title_generation": TaskSpec(title_generation, {"max_text_words": "max_abstract_words"}),
}


def task_text(task: str, choices: Optional[Sequence[str]] = None, template: PromptTemplate = CITATION) -> str:
    """The gate's task text of a task (node classification needs its choice list)."""
    if task == "node_classification":
        if not choices:
            raise ValueError("node_classification's task text depends on the choices; pass choices=")
        return classification_question(choices, template.node)
    texts = {"graph_matching": template.graph_matching_text(), "link_prediction": LINK_PREDICTION_TASK_TEXT,
             "title_generation": template.title_generation_text()}
    if task not in texts:
        raise KeyError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    return texts[task]
