"""The method seam: what a graph-language-model method (GraphLAMA, GraphGPT, LLaGA, a plugin's) declares.

A method is registered through the ``register_methods(register)`` hook as one :class:`MethodSpec`
(PEFT's ``register_peft_method`` idea: one package per method, self-registered). Core never
names a method; it reads the spec:

* ``config_cls``: a dataclass checked like every config section (``model.<method>: {...}``);
* ``build(config, context) -> NodeTokenModule``: the method's graph side, which turns the
  graphs of a batch into soft tokens for the LLM;
* ``stages``: which parameters train in which stage and on which data (one table drives config
  validation, the planner and the pipeline);
* ``adapter_buffers``: buffers an adapter carries besides the trained parameters.

Two placements of soft tokens (the ``tokens_per_graph`` attribute of the module):

* ``None``: one token per node, at the graph's ``<g_patch>`` positions (GraphLAMA, GraphGPT);
* ``k``: ``k`` tokens per graph whatever its size (LLaGA's templates, G-Retriever-style
  prefix tokens).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional

from torch import Tensor, nn

from glm.core.graph import SubgraphBatch
from glm.errors import GlmError

StageData = Literal["pretrain", "fewshot"]


class MethodError(GlmError, ValueError):
    """A method spec or node-token module breaks the method contract."""


@dataclass(frozen=True)
class StageSpec:
    """One training stage of a method.

    Args:
        trains: :func:`fnmatch` patterns over the node-token module's parameter names (the
            same names the whole model uses, e.g. ``gate.task_related.*``); the LLM never trains.
        data: ``"pretrain"`` (the pre-training classes, ``data.tasks``) or ``"fewshot"`` (the
            ``k_shot`` nodes of the held-out classes, node classification).
        tasks: pre-training tasks of this stage (``None``: ``data.tasks`` of the config).
        description: one line for ``glm methods``.
    """

    trains: tuple[str, ...]
    data: StageData = "pretrain"
    tasks: Optional[tuple[str, ...]] = None
    description: str = ""


@dataclass(frozen=True)
class MethodContext:
    """What ``MethodSpec.build`` gets besides the method's config.

    Attributes:
        hidden_size: the LLM's hidden size (width of a soft token).
        feature_dim: node feature width (``model.encoder.in_dim``).
        encoder: the GNN (:class:`glm.core.encoder.GraphEncoder`) when ``uses_encoder``, else ``None``.
        encoder_out_dim: its output width (``model.encoder.out_dim``).
        fanout: the sampler's neighbours per hop (``data.fanout``).
    """

    hidden_size: int
    feature_dim: int
    encoder: Optional[nn.Module] = None
    encoder_out_dim: Optional[int] = None
    fanout: tuple[int, ...] = (10, 10)


class NodeTokenModule(nn.Module):
    r"""Base class of a method's graph side.

    Subclasses set ``config`` (their config dataclass) and implement :meth:`forward`. Keep every
    parameter and buffer in a submodule: :class:`~glm.core.model.GraphLanguageModel` registers the
    submodules under their own names (``encoder``, ``gate``, ...), so stage patterns, adapters and
    checkpoints use the names the method chose.

    Shapes:
        - **graphs:** :class:`~glm.core.graph.SubgraphBatch` of ``G`` graphs, ``N`` nodes
        - **graphs_per_sample:** ``[B]``, sums to ``G``
        - **task_embedding:** ``[B, D_t]`` or ``None``
        - **output:** ``[N, hidden]`` (``tokens_per_graph is None``) or ``[G * k, hidden]``,
          sample-major, graph-major within a sample
    """

    tokens_per_graph: Optional[int] = None
    config: Any = None

    def forward(self, graphs: SubgraphBatch, graphs_per_sample: Tensor,
                task_embedding: Optional[Tensor] = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def num_tokens(self, num_nodes: int) -> int:
        """Soft tokens for one graph of ``num_nodes`` nodes."""
        return num_nodes if self.tokens_per_graph is None else int(self.tokens_per_graph)

    def set_task_embedding(self, embedding: Optional[Tensor]) -> None:
        """Default task embedding for batches without one; methods without a task gate ignore it."""


@dataclass(frozen=True)
class BenchVariant:
    """An extra ``glm bench fewshot`` row of a method, ``<method>_<suffix>``: an ablation of its
    pre-train -> adapt protocol (every method also gets its plain row, pre-trained and adapted)."""

    suffix: str
    description: str
    pretrain: bool = True
    adapt: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Args:
        name: value of ``model.method`` / ``--method`` (lower case).
        config_cls: dataclass of the method's options (``model.<name>: {...}``).
        build: ``build(config, context: MethodContext) -> NodeTokenModule``.
        stages: stage name -> :class:`StageSpec`.
        pretrain_stage / adapt_stage: the stages ``glm pretrain`` and ``glm adapt`` run.
        adapter_buffers: buffer names saved in adapters (e.g. a frozen task embedding).
        uses_encoder: build a GNN (``model.encoder``) on the backend for the method.
        parameter_groups: name prefixes that get their own row in parameter tables
            (default: the first component of a parameter name).
        check: ``check(method_config, run_config) -> list[str]`` problems with the whole config.
        reference: paper and official code, for listings.
        description: one line for listings.
        bench_variants: extra bench rows (:class:`BenchVariant`), e.g. adapted without pre-training.
    """

    name: str
    config_cls: type
    build: Callable[[Any, MethodContext], NodeTokenModule]
    stages: Mapping[str, StageSpec]
    pretrain_stage: str = "pretrain"
    adapt_stage: str = "adapt"
    adapter_buffers: tuple[str, ...] = ()
    uses_encoder: bool = True
    parameter_groups: tuple[str, ...] = ()
    check: Optional[Callable[[Any, Any], list[str]]] = None
    reference: str = ""
    description: str = ""
    bench_variants: tuple[BenchVariant, ...] = ()
    plugin: Optional[str] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_cls):
            raise MethodError(f"method {self.name!r}: config_cls must be a dataclass, found {self.config_cls!r}")
        if not callable(self.build):
            raise MethodError(f"method {self.name!r}: build is not callable")
        if not self.stages:
            raise MethodError(f"method {self.name!r}: the stage table is empty")
        for stage, spec in self.stages.items():
            if not isinstance(spec, StageSpec):
                raise MethodError(f"method {self.name!r}: stage {stage!r} must be a StageSpec, found {type(spec).__name__}")
            if spec.data not in ("pretrain", "fewshot"):
                raise MethodError(f"method {self.name!r}: stage {stage!r} data must be 'pretrain' or 'fewshot'")
        for role, stage in (("pretrain_stage", self.pretrain_stage), ("adapt_stage", self.adapt_stage)):
            if stage not in self.stages:
                raise MethodError(f"method {self.name!r}: {role} {stage!r} is not in its stages {sorted(self.stages)}")

    def stage_table(self) -> dict[str, tuple[str, ...]]:
        """``{stage: patterns}`` (the form :mod:`glm.core.stages` reads)."""
        return {name: tuple(spec.trains) for name, spec in self.stages.items()}

    def default_config(self) -> Any:
        return self.config_cls()

    def problems(self, method_config: Any, run_config: Any) -> list[str]:
        return list(self.check(method_config, run_config)) if self.check else []
