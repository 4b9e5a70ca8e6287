"""Text-attributed graphs (TAGs) and their built-in loaders.

A :class:`TextAttributedGraph` holds what every later step needs: a stable node order,
node texts (or ``None`` for bag-of-words graphs), integer labels with class names, and an
undirected edge list stored in both directions. Loaders:

* :func:`load_citeseer_tag` - the real CiteSeer TAG (3,186 papers with title + abstract).
* :func:`glm.core.data.loaders.load_planetoid` - Cora / CiteSeer Planetoid (no text).
* :func:`glm.core.data.loaders.load_tag_files` - a user's own nodes + edges files.
* :func:`synthetic_tag` - a tiny deterministic TAG for tests and offline demos.

Data-folder resolution (:func:`resolve_data_dir`): explicit argument (``--data-dir``) >
``$GLM_DATA_DIR`` > ``../shared/data`` relative to the project root.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from glm.core.data.errors import (
    DataNotFoundError,
    DataValidationError,
    DuplicateNodeIdError,
    EmptyTextError,
    MalformedRecordError,
    UnknownLabelError,
)

CITESEER_CLASSES: tuple[tuple[str, str], ...] = (
    ("Agents", "Agents"),
    ("AI", "Artificial Intelligence"),
    ("DB", "Database"),
    ("IR", "Information Retrieval"),
    ("ML", "Machine Learning"),
    ("HCI", "Human-Computer Interaction"),
)


@dataclass
class TextAttributedGraph:
    """A graph whose nodes carry text and (optionally) a class label.

    Attributes:
        name: dataset name (``citeseer_tag``, ``cora``, ...).
        node_ids: original id of each node, length ``N``; position = node index.
        texts: node texts, length ``N``, or ``None`` for graphs without text (Planetoid).
        labels: ``[N]`` int64, ``-1`` = unlabelled.
        class_names: readable name of each class (used in prompts), length ``C``.
        edge_index: ``[2, E]`` int64, undirected: both directions present, no self loops, no duplicates,
            sorted by (source, target).
        x: optional native features ``[N, F]`` (bag of words for Planetoid).
        class_codes: optional short label of each class as found in the files (``ML``, ``IR``, ...).
        source: where the data came from (for messages).
        titles: optional node titles, length ``N`` (a user TAG's ``title`` column): the references of
            title generation, with ``texts`` the rest (``""`` = no title).
    """

    name: str
    node_ids: list[str]
    texts: Optional[list[str]]
    labels: Tensor
    class_names: list[str]
    edge_index: Tensor
    x: Optional[Tensor] = None
    class_codes: Optional[list[str]] = None
    source: str = ""
    titles: Optional[list[str]] = None
    _hash: Optional[str] = field(default=None, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def num_edges(self) -> int:
        """Number of undirected edges (``edge_index`` stores each twice)."""
        return int(self.edge_index.shape[1]) // 2

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_text(self) -> bool:
        return self.texts is not None

    def degrees(self) -> Tensor:
        """``[N]`` int64 undirected degree of every node."""
        return torch.bincount(self.edge_index[0], minlength=self.num_nodes)

    def content_hash(self) -> str:
        """SHA-256 (hex, 16 chars) of everything that defines the dataset's content: ids, texts,
        labels, class names, edges and native features. Used as cache key and in split manifests."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            for part in (self.node_ids, self.texts or [], self.class_names):
                h.update(b"\x1e".join(s.encode("utf-8") for s in part))
                h.update(b"\x1d")
            # the arrays' own buffers (no byte copies: the edge list of a 60M-edge graph is 1 GB)
            h.update(memoryview(self.labels.to(torch.int64).contiguous().numpy()))
            h.update(memoryview(self.edge_index.to(torch.int64).contiguous().numpy()))
            if self.x is not None:
                h.update(memoryview(self.x.to(torch.float32).contiguous().numpy()))
            self._hash = h.hexdigest()[:16]
        return self._hash

    def summary(self) -> dict:
        counts = torch.bincount(self.labels[self.labels >= 0], minlength=self.num_classes).tolist()
        return {
            "name": self.name,
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "isolated": int((self.degrees() == 0).sum()),
            "classes": self.num_classes,
            "class_counts": dict(zip(self.class_names, counts)),
            "unlabelled": int((self.labels < 0).sum()),
            "has_text": self.has_text,
            "content_hash": self.content_hash(),
        }


def undirected_edge_index(src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Symmetrise, drop self loops and duplicates; return ``[2, E]`` sorted by (source, target).

    In place where it can be (numpy): one ``int64`` key per directed edge, sorted, de-duplicated and split
    into rows again, so a 62M-edge graph peaks at about three key arrays (3 GB), not seven."""
    import numpy as np

    a, b = src.to(torch.long).numpy(), dst.to(torch.long).numpy()
    keep = a != b
    m = int(keep.sum())
    keys = np.empty(2 * m, dtype=np.int64)
    np.multiply(a[keep], num_nodes, out=keys[:m])
    keys[:m] += b[keep]
    np.multiply(b[keep], num_nodes, out=keys[m:])
    keys[m:] += a[keep]
    del keep
    keys.sort()
    if keys.size:
        first = np.empty(keys.size, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
        del first
    out = np.empty((2, keys.size), dtype=np.int64)
    np.floor_divide(keys, num_nodes, out=out[0])
    np.multiply(out[0], num_nodes, out=out[1])
    np.subtract(keys, out[1], out=out[1])
    return torch.from_numpy(out)


def build_tag(
    name: str,
    node_ids: Sequence[str],
    texts: Optional[Sequence[str]],
    labels: Sequence[Optional[str]] | Tensor,
    edges: Sequence[tuple[int, int]] | Tensor,
    class_names: Optional[Sequence[str]] = None,
    class_codes: Optional[Sequence[str]] = None,
    x: Optional[Tensor] = None,
    source: str = "",
    titles: Optional[Sequence[str]] = None,
) -> TextAttributedGraph:
    """Assemble a :class:`TextAttributedGraph` from plain lists (labels as class codes or ``None``)."""
    n = len(node_ids)
    if isinstance(labels, Tensor):
        y = labels.to(torch.long)
    else:
        codes = list(class_codes or class_names or sorted({l for l in labels if l is not None}))
        index = {c: i for i, c in enumerate(codes)}
        y = torch.tensor([index[l] if l is not None else -1 for l in labels], dtype=torch.long)
        class_codes = codes
    names = list(class_names or class_codes or [])
    e = edges if isinstance(edges, Tensor) else torch.tensor(list(edges), dtype=torch.long).reshape(-1, 2).t()
    return TextAttributedGraph(
        name=name,
        node_ids=list(node_ids),
        texts=None if texts is None else list(texts),
        labels=y,
        class_names=names,
        edge_index=undirected_edge_index(e[0], e[1], n),
        x=x,
        class_codes=None if class_codes is None else list(class_codes),
        source=source,
        titles=None if titles is None else list(titles),
    )


# -- data folder -------------------------------------------------------------------------------
def project_root() -> Path:
    """The folder holding the ``glm`` package (the checkout root in development)."""
    return Path(__file__).resolve().parents[3]


def default_data_dirs() -> list[Path]:
    """Candidate data folders in priority order, without the explicit argument."""
    dirs = []
    env = os.environ.get("GLM_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(project_root().parent / "shared" / "data")
    return dirs


def resolve_data_dir(data_dir: Optional[Path | str], subdir: str, marker: str) -> Path:
    """Return ``<base>/<subdir>`` for the first base (explicit > $GLM_DATA_DIR > ../shared/data)
    where ``<base>/<subdir>/<marker>`` exists; an explicit ``data_dir`` may also point at the
    dataset folder itself. Raise :class:`DataNotFoundError` naming every place looked in."""
    candidates: list[Path] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        candidates += [base, base / subdir]
    else:
        candidates += [d / subdir for d in default_data_dirs()]
    for c in candidates:
        if (c / marker).exists():
            return c
    raise DataNotFoundError(
        f"{subdir}/{marker}",
        candidates,
        hint="pass --data-dir or set GLM_DATA_DIR to the folder that holds it",
    )


# -- CiteSeer TAG --------------------------------------------------------------------------------
def load_citeseer_tag(data_dir: Optional[Path | str] = None) -> TextAttributedGraph:
    """The CiteSeer text-attributed graph.

    Reads ``citeseer_texts.txt`` (groups of three lines: id, "Title Abstract", label) and
    ``citeseer.cites`` (``cited<TAB>citing``). Node order = order of first appearance in the texts
    file. Citation pairs whose ends are not both texted papers are dropped, the rest is
    symmetrised and de-duplicated (about 4,225 undirected edges; 86 isolated papers).

    Returns a graph with ``N = 3186`` nodes and 6 named classes.
    """
    folder = resolve_data_dir(data_dir, "citeseer_tag", "citeseer_texts.txt")
    texts_path = folder / "citeseer_texts.txt"
    cites_path = folder / "citeseer.cites"
    if not cites_path.exists():
        raise DataNotFoundError("citeseer.cites", [folder])
    lines = texts_path.read_text(encoding="utf-8").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 3:
        raise MalformedRecordError(texts_path, len(lines), "record", "groups of 3 lines (id, text, label)",
                                   f"{len(lines)} lines")
    codes = [c for c, _ in CITESEER_CLASSES]
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    seen: dict[str, int] = {}
    for i in range(0, len(lines), 3):
        pid, text, label = lines[i].strip(), lines[i + 1].strip(), lines[i + 2].strip()
        if not pid:
            raise MalformedRecordError(texts_path, i + 1, "id", "a paper id", "an empty line")
        if pid in seen:
            raise DuplicateNodeIdError(texts_path, i + 1, "id", "unique ids", f"{pid!r} again (first at line {seen[pid]})")
        if not text:
            raise EmptyTextError(texts_path, i + 2, "text", "non-empty text", "an empty line")
        if label not in codes:
            raise UnknownLabelError(texts_path, i + 3, "label", f"one of {codes}", repr(label))
        seen[pid] = i + 1
        ids.append(pid)
        texts.append(text)
        labels.append(label)
    index = {pid: k for k, pid in enumerate(ids)}
    src, dst = [], []
    for ln, line in enumerate(cites_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise MalformedRecordError(cites_path, ln, "pair", "cited<TAB>citing", repr(line[:80]))
        a, b = index.get(parts[0].strip()), index.get(parts[1].strip())
        if a is not None and b is not None:
            src.append(a)
            dst.append(b)
    return build_tag(
        "citeseer_tag",
        ids,
        texts,
        labels,
        torch.tensor([src, dst], dtype=torch.long),
        class_names=[n for _, n in CITESEER_CLASSES],
        class_codes=codes,
        source=str(folder),
    )


# -- synthetic TAG ---------------------------------------------------------------------------------
_SYNTH_TOPICS = {
    "Robotics": ["robot", "motion", "planning", "sensor", "control", "manipulator", "navigation", "grasp"],
    "Databases": ["query", "index", "transaction", "schema", "relational", "storage", "join", "optimizer"],
    "Vision": ["image", "pixel", "segmentation", "camera", "detection", "convolution", "scene", "texture"],
    "Linguistics": ["parsing", "syntax", "corpus", "translation", "grammar", "lexicon", "semantic", "token"],
}
_SYNTH_FILLER = ["we", "propose", "a", "novel", "method", "for", "the", "study", "of", "results", "show", "that",
                 "our", "approach", "improves", "on", "prior", "work", "and", "is", "efficient"]


def synthetic_tag(num_nodes: int = 48, num_classes: int = 4, seed: int = 0, p_in: float = 0.15,
                  p_out: float = 0.01) -> TextAttributedGraph:
    """A tiny deterministic TAG (stochastic block model with topic words in the text).

    Texts look like CiteSeer's ("Title Abstract": a Title-Cased title then a sentence), classes are
    homophilous, so tests can check that prompts, splits and sampling behave on something TAG-like.
    """
    if not 1 <= num_classes <= len(_SYNTH_TOPICS):
        raise DataValidationError(None, None, "num_classes", f"1..{len(_SYNTH_TOPICS)}", num_classes)
    g = torch.Generator().manual_seed(seed)
    names = list(_SYNTH_TOPICS)[:num_classes]
    labels = torch.arange(num_nodes) % num_classes
    texts = []
    for i in range(num_nodes):
        words = _SYNTH_TOPICS[names[int(labels[i])]]
        pick = torch.randint(len(words), (8,), generator=g).tolist()
        fill = torch.randint(len(_SYNTH_FILLER), (10,), generator=g).tolist()
        title = " ".join(w.capitalize() for w in [words[pick[0]], "and", words[pick[1]], "number", str(i)])
        title = title.replace(" And ", " and ")
        body = " ".join([words[k] for k in pick[2:]] + [_SYNTH_FILLER[k] for k in fill])
        texts.append(f"{title} This paper studies {body}.")
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    draw = torch.rand(num_nodes, num_nodes, generator=g) < prob
    draw = torch.triu(draw, diagonal=1)
    src, dst = draw.nonzero(as_tuple=True)
    return build_tag(
        "synthetic",
        [f"n{i}" for i in range(num_nodes)],
        texts,
        labels,
        torch.stack([src, dst]),
        class_names=names,
        source=f"synthetic(num_nodes={num_nodes}, num_classes={num_classes}, seed={seed})",
    )
