"""GraphLAMA (KDD'25): pre-train -> few-shot adapt -> infer, with hop code, dual gate and projector.

Official code: BUPT-GAMMA/GraphLAMA (a fork of HKUDS/GraphGPT). Stage table (the paper's §2 and
the released scripts)::

    pretrain:        encoder, hop table, both gate linears, m_inv, a_l, a_w, projector (, input skip)
    adapt:           task-related gate linear (incl. its hop columns), a_l, a_w, hop table (, input skip)
    adapt_official:  adapt + m_inv (gate.invariant_mask), as the official adaptation script trains it

Adapters also carry the gate's frozen task-text embedding (it belongs to the task, so swapping
adapters swaps it too).
"""

from __future__ import annotations

from glm.core.method import BenchVariant, MethodContext, MethodSpec, StageSpec
from glm.methods.graphlama.config import GraphLAMAConfig
from glm.methods.graphlama.node_tokens import GraphLAMANodeTokens
from glm.plugins.hookspecs import hookimpl

__all__ = ["GraphLAMAConfig", "GraphLAMANodeTokens", "SPEC", "STAGES", "graphlama_model"]

_ADAPT = ("gate.task_related.*", "gate.alpha_l", "gate.alpha_w", "hop.*", "input_skip.*")
STAGES = {
    "pretrain": StageSpec(("encoder.*", "hop.*", "gate.task_related.*", "gate.task_invariant.*",
                           "gate.invariant_mask", "gate.alpha_l", "gate.alpha_w", "projector.*", "input_skip.*"),
                          "pretrain", description="whole graph side on the pre-training tasks"),
    "adapt": StageSpec(_ADAPT, "fewshot", description="task-related gate, mixing weights, hop table on k shots"),
    "adapt_official": StageSpec(_ADAPT + ("gate.invariant_mask",), "fewshot",
                                description="adapt + m_inv, as the official adaptation script"),
}


def build(config: GraphLAMAConfig, context: MethodContext) -> GraphLAMANodeTokens:
    return GraphLAMANodeTokens(context.encoder, config, context.hidden_size, context.feature_dim)


def check(config: GraphLAMAConfig, run_config) -> list[str]:
    out_dim = run_config.model.encoder.out_dim
    if config.graph_dim != out_dim:
        return [f"model.graphlama.graph_dim ({config.graph_dim}) must equal model.encoder.out_dim ({out_dim})"]
    return []


SPEC = MethodSpec(
    name="graphlama", config_cls=GraphLAMAConfig, build=build, stages=STAGES,
    adapter_buffers=("gate.default_task_embedding", "gate.has_default_task_embedding"),
    parameter_groups=("gate.task_related", "gate.task_invariant"), check=check,
    reference="GraphLAMA, KDD'25; github.com/BUPT-GAMMA/GraphLAMA",
    description="GNN + hop code + task-related/task-invariant dual gate + linear projector, one token per node",
    bench_variants=(BenchVariant("no_pretrain", "adapted from a random graph side (no pre-training)", pretrain=False),
                    BenchVariant("no_adapt", "pre-trained, not adapted", adapt=False)),
)


def graphlama_model(llm, tokenizer, encoder, config: GraphLAMAConfig | None = None, feature_dim: int | None = None):
    """A GraphLAMA :class:`~glm.core.model.GraphLanguageModel` from already built parts (Python API;
    configs go through :func:`glm.core.factory.build_model`); ``feature_dim`` (for ``input_skip``)
    defaults to the encoder's ``config.in_dim``."""
    from glm.core.model import GraphLanguageModel

    config = config or GraphLAMAConfig()
    feature_dim = feature_dim or getattr(getattr(encoder, "config", None), "in_dim", None)
    return GraphLanguageModel(llm, tokenizer, GraphLAMANodeTokens(encoder, config, int(llm.config.hidden_size),
                                                                  feature_dim), SPEC)


@hookimpl
def register_methods(register) -> None:
    register(SPEC)
