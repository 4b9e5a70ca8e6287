"""The unit of data flowing from tasks to the model, and its collated batch.

Data path: ``tasks`` build :class:`Sample` objects; the collator (``glm.core.data.collate``)
tokenises them through the tokenizer's chat template into a :class:`GraphBatch`;
:class:`glm.core.model.GraphLanguageModel` consumes that batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
from torch import Tensor

from glm.core.graph import Subgraph, SubgraphBatch


@dataclass
class Sample:
    """One instruction sample.

    Attributes:
        prompt: user message with one ``<graph>`` placeholder per entry of ``graphs``.
        answer: the assistant reply that is supervised (empty at inference).
        graphs: the subgraphs, in placeholder order (link prediction has two).
        task: task name (``node_classification``, ``graph_matching``, ``link_prediction``,
            ``title_generation`` or a plugin's).
        task_text: natural-language task description fed to the task-related gate.
        meta: free-form (node ids, label name, dataset) carried to predictions.
    """

    prompt: str
    answer: str
    graphs: list[Subgraph]
    task: str
    task_text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GraphBatch:
    """A collated batch of samples.

    Attributes:
        input_ids: ``[B, L]`` int64, graph placeholders already expanded to graph tokens.
        attention_mask: ``[B, L]`` int64.
        labels: ``[B, L]`` int64 with ``-100`` everywhere except answer tokens; ``None`` at inference.
        graphs: all graphs of the batch, sample-major, as one :class:`SubgraphBatch`.
        graphs_per_sample: ``[B]`` int64, how many of ``graphs`` belong to each sample.
        task_embedding: ``[B, D_t]`` frozen task-text embeddings for the task-related gate.
        meta: one dict per sample.
        choice_ids: ``[B, C]`` int64, the first reply token of each candidate answer (``-1`` pads rows
            with fewer candidates, a whole row of ``-1`` = no candidates); set by the training collator
            for samples with ``meta["choices"]`` (node classification, link prediction).
        choice_target: ``[B]`` int64, the index of the right candidate (``-100`` = none).
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Optional[Tensor]
    graphs: SubgraphBatch
    graphs_per_sample: Tensor
    task_embedding: Optional[Tensor] = None
    meta: list[dict[str, Any]] = field(default_factory=list)
    choice_ids: Optional[Tensor] = None
    choice_target: Optional[Tensor] = None

    def to(self, device: torch.device | str) -> "GraphBatch":
        moved = {k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, Tensor)}
        return replace(self, graphs=self.graphs.to(device), **moved)
