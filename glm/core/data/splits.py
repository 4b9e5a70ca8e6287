"""Few-shot splits (N-way, k-shot) with a JSON manifest that reproduces them.

Protocol (GraphLAMA §4.2, generalised): ``n_way`` classes are held out of pre-training; the
others are the pre-training classes. For each held-out class, ``k_shot`` training nodes,
``val_per_class`` validation nodes and up to ``test_per_class`` test nodes are drawn without
overlap by a seeded permutation. The manifest records the dataset name and content hash, the
seed, the classes and every node index; loading it against another dataset version raises
:class:`~glm.core.data.errors.SplitMismatchError`.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from glm.core.io import atomic_write_text
from glm.core.data.errors import DataValidationError, InsufficientNodesError, SplitMismatchError
from glm.core.data.tag import TextAttributedGraph

MANIFEST_VERSION = 1
K_SHOTS = (1, 5, 20, 50)


@dataclass
class FewShotSplit:
    """One reproducible few-shot task.

    Attributes:
        dataset / dataset_hash: name and :meth:`TextAttributedGraph.content_hash` of the graph.
        seed, n_way, k_shot: how it was drawn.
        heldout_classes: class names of the N-way task (never seen in pre-training), in choice order.
        pretrain_classes: the remaining class names.
        train / val / test: node indices (held-out classes only).
        pretrain: node indices of the pre-training classes.
    """

    dataset: str
    dataset_hash: str
    seed: int
    n_way: int
    k_shot: int
    heldout_classes: list[str]
    pretrain_classes: list[str]
    train: list[int]
    val: list[int]
    test: list[int]
    pretrain: list[int] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    def class_indices(self, tag: TextAttributedGraph, which: str = "heldout") -> list[int]:
        names = self.heldout_classes if which == "heldout" else self.pretrain_classes
        return [tag.class_names.index(c) for c in names]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: Path | str) -> Path:
        """Write the manifest atomically (temporary file + ``os.replace``)."""
        return atomic_write_text(self.to_json() + "\n", path)

    def check(self, tag: TextAttributedGraph) -> "FewShotSplit":
        """Raise :class:`SplitMismatchError` unless ``tag`` is the graph this split was made for."""
        if tag.name != self.dataset or tag.content_hash() != self.dataset_hash:
            raise SplitMismatchError(
                f"split was made for dataset {self.dataset!r} with content hash {self.dataset_hash}, "
                f"found {tag.name!r} with content hash {tag.content_hash()} (different data or version)")
        return self


def make_few_shot_split(
    tag: TextAttributedGraph,
    n_way: int,
    k_shot: int,
    seed: int = 0,
    heldout_classes: Optional[Sequence[str | int]] = None,
    val_per_class: int = 10,
    test_per_class: Optional[int] = 100,
) -> FewShotSplit:
    """Draw an N-way k-shot split.

    Args:
        n_way: number of held-out classes (``<= num_classes``; ``== num_classes`` leaves nothing for
            pre-training -- a new graph --, ``0`` holds nothing out -- a pre-training graph).
        k_shot: training nodes per held-out class (the paper uses 1/5/20/50; any positive value works).
        heldout_classes: names or indices of the held-out classes (default: ``n_way`` drawn by seed).
        val_per_class / test_per_class: sizes per class (``test_per_class=None``: all remaining nodes).
    """
    if tag.num_classes == 0:
        raise DataValidationError(None, None, "label", "labelled nodes (a few-shot split needs classes; the nodes "
                                  "file needs a label column)", f"no label on any node of {tag.name}")
    if not 0 <= n_way <= tag.num_classes:
        raise DataValidationError(None, None, "data.n_way", f"1..{tag.num_classes} ({tag.name} has {tag.num_classes} "
                                  "classes; 0 holds nothing out)", n_way)
    if k_shot < 1:
        raise DataValidationError(None, None, "data.k_shot", "a positive number (1/5/20/50)", k_shot)
    g = torch.Generator().manual_seed(seed)
    if heldout_classes is None:
        held = sorted(torch.randperm(tag.num_classes, generator=g)[:n_way].tolist())
    else:
        held = [c if isinstance(c, int) else _class_index(tag, c) for c in heldout_classes]
        if len(held) != n_way or len(set(held)) != n_way:
            raise DataValidationError(None, None, "data.heldout_classes", f"{n_way} distinct classes (data.n_way)",
                                      list(heldout_classes))
    train, val, test = [], [], []
    for c in held:
        members = (tag.labels == c).nonzero().flatten()
        need = k_shot + val_per_class + (1 if test_per_class is None else test_per_class)
        if members.numel() < k_shot + val_per_class + 1:
            raise InsufficientNodesError(
                f"{tag.name}: class {tag.class_names[c]!r} has {members.numel()} nodes, a {k_shot}-shot split with "
                f"{val_per_class} validation nodes needs at least {k_shot + val_per_class + 1} (asked for {need})")
        perm = members[torch.randperm(members.numel(), generator=g)].tolist()
        train += perm[:k_shot]
        val += perm[k_shot:k_shot + val_per_class]
        rest = perm[k_shot + val_per_class:]
        test += rest if test_per_class is None else rest[:test_per_class]
    pre = [c for c in range(tag.num_classes) if c not in held]
    pretrain = torch.isin(tag.labels, torch.tensor(pre, dtype=torch.long)).nonzero().flatten().tolist() if pre else []
    return FewShotSplit(
        dataset=tag.name, dataset_hash=tag.content_hash(), seed=seed, n_way=n_way, k_shot=k_shot,
        heldout_classes=[tag.class_names[c] for c in held], pretrain_classes=[tag.class_names[c] for c in pre],
        train=train, val=val, test=test, pretrain=pretrain,
    )


def redraw_shots(split: "FewShotSplit", tag: TextAttributedGraph, seed: int) -> list[int]:
    """The k-shot training nodes of draw ``seed`` (0: the split's own): ``k_shot`` nodes of every
    held-out class, drawn from the nodes outside the test and validation sets (those never change)."""
    if seed == 0:
        return list(split.train)
    taken = set(split.test) | set(split.val)
    rng = random.Random(1_000_003 * seed + split.seed)
    shots = []
    for c in split.class_indices(tag, "heldout"):
        pool = [int(n) for n in (tag.labels == c).nonzero().flatten().tolist() if int(n) not in taken]
        if len(pool) < split.k_shot:
            raise InsufficientNodesError(f"{tag.name}: class {tag.class_names[c]!r} has {len(pool)} nodes outside "
                                         f"test/val, {split.k_shot} shots needed")
        shots += sorted(rng.sample(pool, split.k_shot))
    return shots


def shot_pools(split: "FewShotSplit", tag: TextAttributedGraph) -> dict[str, int]:
    """Per held-out class, how many nodes lie outside the test and validation sets: the pool that
    :func:`redraw_shots` draws ``k_shot`` from (a pool of exactly ``k_shot`` gives the same shots every draw)."""
    taken = torch.zeros(tag.num_nodes, dtype=torch.bool)
    taken[torch.tensor(list(split.test) + list(split.val), dtype=torch.long)] = True
    return {tag.class_names[c]: int(((tag.labels == c) & ~taken).sum()) for c in split.class_indices(tag, "heldout")}


def _class_index(tag: TextAttributedGraph, name: str) -> int:
    for names in (tag.class_names, tag.class_codes or []):
        if name in names:
            return list(names).index(name)
    raise DataValidationError(None, None, "heldout_classes", f"one of {tag.class_names}", repr(name))


def load_split(path: Path | str, tag: Optional[TextAttributedGraph] = None) -> FewShotSplit:
    """Read a manifest; with ``tag`` given, check it was made for that graph (:class:`SplitMismatchError`)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataValidationError(path, exc.lineno, "json", "a split manifest (JSON)", exc.msg) from None
    missing = [k for k in FewShotSplit.__dataclass_fields__ if k not in raw and k not in ("pretrain", "version")]
    if missing:
        raise DataValidationError(path, None, missing[0], "a split manifest field", "nothing")
    if raw.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
        raise DataValidationError(path, None, "version", MANIFEST_VERSION, raw.get("version"))
    split = FewShotSplit(**{k: raw[k] for k in FewShotSplit.__dataclass_fields__ if k in raw})
    return split.check(tag) if tag is not None else split
