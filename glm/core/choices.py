"""Every fixed choice of a run config, once: the ``Literal`` types the config dataclasses are annotated
with. Loading checks a value against them (:func:`glm.core.config_parse.coerce`), validation reads them
back (:func:`glm.core.config_rules.literal_problems`), and so do the CLI's ``choices``, the planner, the
model and the docs: one table per kind of choice (:func:`options` gives the names).

Choices that are tables of implementations (activations, dtypes, answer parsers, a method's stages) live
beside their implementation and are checked against it.
"""

from __future__ import annotations

import typing
from typing import Literal

Tuning = Literal["frozen", "lora", "qlora", "freeze"]  # glm.core.tuning
Attention = Literal["sdpa", "eager", "flash_attention_2"]  # HF attn_implementation
QuantType = Literal["nf4", "fp4"]  # bitsandbytes 4-bit
TokenNorm = Literal["none", "embedding"]
Split = Literal["heldout", "new_graph", "pretrain_graph"]  # glm.core.data.splits
Task = Literal["node_classification", "title_generation"]  # what data.task trains and glm eval scores
Scheduler = Literal["cosine", "linear", "constant"]
TrainLoss = Literal["lm", "choice", "lm+choice"]  # glm.core.model.GraphLanguageModel.train_loss
AlignLoss = Literal["contrastive", "cosine"]  # glm.core.train.align.align_loss
BestMetric = Literal["eval_accuracy", "eval_loss"]
EvalMode = Literal["choice", "generate"]  # glm.core.eval.predict


def options(annotation: typing.Any) -> tuple[str, ...]:
    """The names a ``Literal`` annotation allows, in declaration order (inside ``Optional[...]`` too);
    ``()`` for any other annotation."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    inner = [a for a in typing.get_args(annotation) if typing.get_origin(a) is Literal]
    return typing.get_args(inner[0]) if inner else ()
