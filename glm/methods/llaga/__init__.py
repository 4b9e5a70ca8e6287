"""LLaGA (ICML'24): graph-to-sequence templates + a projector, no GNN.

Official code: VITA-Group/LLaGA. Only the projector trains (``tune_mm_mlp_adapter``); glm also
trains the empty-slot placeholder. Stage table::

    pretrain:  projector + placeholder, on the pre-training tasks of ``data.tasks``
    adapt:     projector + placeholder, on the k shots of the held-out classes

Tokens per graph are fixed by the template (``k`` soft tokens per ``<graph>``), so LLaGA needs no
graph backend installed.
"""

from __future__ import annotations

from dataclasses import replace

from glm.core.method import MethodContext, MethodSpec, StageSpec
from glm.methods.llaga.config import LLaGAConfig
from glm.methods.llaga.node_tokens import LLaGANodeTokens
from glm.plugins.hookspecs import hookimpl

__all__ = ["LLaGAConfig", "LLaGANodeTokens", "SPEC", "STAGES"]

_TRAINS = ("projector.*", "template.placeholder")
STAGES = {
    "pretrain": StageSpec(_TRAINS, "pretrain", description="projector + placeholder on the pre-training tasks"),
    "adapt": StageSpec(_TRAINS, "fewshot", description="projector + placeholder on the k shots"),
}


def build(config: LLaGAConfig, context: MethodContext) -> LLaGANodeTokens:
    if config.tree is None:
        config = replace(config, tree=list(context.fanout))
    return LLaGANodeTokens(config, context.feature_dim, context.hidden_size)


def check(config: LLaGAConfig, run_config) -> list[str]:
    fanout = list(run_config.data.fanout)
    if config.template == "neighbourhood" and config.tree is not None and len(fanout) < len(config.tree):
        return [f"model.llaga.tree {config.tree} is deeper than data.fanout {fanout}; sample at least "
                f"{len(config.tree)} hops"]
    return []


SPEC = MethodSpec(
    name="llaga", config_cls=LLaGAConfig, build=build, stages=STAGES, adapter_buffers=("template.laplacian_pe",),
    uses_encoder=False, check=check, reference="LLaGA, ICML'24; github.com/VITA-Group/LLaGA",
    description="neighbourhood-detail / hop-field templates + 2-layer MLP projector, k tokens per graph, no GNN",
)


@hookimpl
def register_methods(register) -> None:
    register(SPEC)
