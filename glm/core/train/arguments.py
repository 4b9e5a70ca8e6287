"""What the :class:`~glm.core.train.loop.Trainer` takes besides the ``training`` section.

HF's ``Trainer`` takes ``TrainingArguments``; glm's takes the ``training`` section
(:class:`~glm.core.config.TrainingConfig`), a :class:`Recipe` (how the optimisation runs) and,
optionally, a :class:`RunRecord` (what the run writes beside its checkpoints). Only the pipeline
knows the whole :class:`~glm.core.config.RunConfig`; it builds both with their ``from_config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import yaml


@dataclass(frozen=True)
class Recipe:
    """How the optimisation runs.

    Args:
        name: a DeepSpeed recipe, by name (``glm/recipes/<name>.json``: ``cpu``, ``3090``, ...) or a JSON path;
            its ``"auto"`` fields are filled from the ``training`` section.
        llm_learning_rate: the LLM's trainable parameters' rate (LoRA, last layers; ``model.llm.learning_rate``),
            ``None``: ``training.learning_rate``.
        gradient_checkpointing: recompute activations in the backward pass (``model.llm.gradient_checkpointing``;
            a recipe's ``_glm.gradient_checkpointing`` hint turns it on too).
    """

    name: str = "cpu"
    llm_learning_rate: Optional[float] = None
    gradient_checkpointing: bool = False

    @classmethod
    def from_config(cls, config: Any) -> "Recipe":
        llm = config.model.llm
        return cls(config.recipe, llm.learning_rate, bool(llm.gradient_checkpointing))


@dataclass(frozen=True)
class RunRecord:
    """What a run writes beside its checkpoints.

    Args:
        config: the resolved configuration as a dict: written as ``glm_config.yaml``, compared with a
            checkpoint's on resume, and the reporters' hyper-parameters.
        adapter_metadata: recorded in every adapter (recipe, parent adapter, node features, token norm).
        stage_extra: the parameter patterns the stage trains besides its own (``model.stage_extra``),
            recorded so that a checkpoint names what it holds.
    """

    config: dict[str, Any]
    adapter_metadata: dict[str, Any] = field(default_factory=dict)
    stage_extra: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> "RunRecord":
        from glm.core.train.pretrained import adapter_metadata

        return cls(config.to_dict(), adapter_metadata(config), tuple(config.model.stage_extra))

    @classmethod
    def bare(cls, training: Any, recipe: Recipe) -> "RunRecord":
        """The record of a Trainer used on its own (a notebook's model): the training section and recipe."""
        return cls({"training": asdict(training), "recipe": recipe.name}, {"recipe": recipe.name})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.config, sort_keys=False, default_flow_style=None)
