"""The nodes of title generation: train examples, validation and test nodes among the titled nodes.

A node takes part when :meth:`~glm.core.data.tasks.GraphSource.text_parts` finds a title (CiteSeer's
split heuristic, or a user TAG's ``title`` column). The titled nodes are permuted once with the seed;
``val`` takes the first of them, then ``test`` (``null``: every node left after the train examples), and
``train`` its examples (a count, or a fraction of the titled nodes) from the rest. So the validation and
test nodes do not depend on ``train``: the 5-example and the 80 % rows of a bench score the same nodes.
Draw ``d`` of the bench redraws the train examples from outside val and test, like the k-shot draws of
classification: the test nodes stay fixed across draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from glm.core.data.errors import DataValidationError


@dataclass(frozen=True)
class GenerationNodes:
    train: list[int]
    val: list[int]
    test: list[int]


def titled_nodes(source: Any) -> list[int]:
    """Nodes whose text yields a title, in node order."""
    return [n for n in range(source.tag.num_nodes) if source.text_parts(n)[0]]


def generation_nodes(source: Any, settings: Any, seed: int, titled: Optional[Sequence[int]] = None) -> GenerationNodes:
    """The split of ``settings`` (:class:`~glm.core.config.GenerationSplit`); ``settings.draw > 0`` redraws train.
    ``titled``: :func:`titled_nodes` of ``source`` when the caller has them already."""
    draw = int(getattr(settings, "draw", 0))
    nodes = torch.tensor(titled_nodes(source) if titled is None else list(titled), dtype=torch.long)
    if nodes.numel() == 0:
        raise DataValidationError(source.tag.source or source.tag.name, None, "title",
                                  "nodes with a title (a title column, or CiteSeer-style 'Title Abstract' texts)",
                                  "none found")
    order = nodes[torch.randperm(nodes.numel(), generator=torch.Generator().manual_seed(seed))].tolist()
    k = int(round(settings.train * len(order))) if settings.train < 1 else int(settings.train)
    k = max(1, k)
    held = settings.val + (settings.test if settings.test is not None else len(order) - k - settings.val)
    if k + held > len(order) or held <= settings.val:
        raise DataValidationError(source.tag.name, None, "data.generation",
                                  f"train + val + test <= {len(order)} titled nodes, with test >= 1",
                                  f"train {k}, val {settings.val}, test {settings.test}")
    val, test = order[:settings.val], order[settings.val:held]
    pool = order[held:]
    if draw > 0:
        pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed * 1000 + draw))[:k]
        train = [pool[i] for i in pick.tolist()]
    else:
        train = pool[:k]
    return GenerationNodes(train, val, test)
