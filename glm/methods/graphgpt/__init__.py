"""GraphGPT (SIGIR'24): graph instruction tuning with a frozen GNN and a trained projector.

Official code: HKUDS/GraphGPT. Stage table (the released scripts train only the projector; the
graph encoder comes pre-trained and frozen)::

    match:  projector, on graph matching (GraphGPT's self-supervised stage 1)
    task:   projector, on the pre-training tasks of ``data.tasks`` (stage 2, task instruction tuning)
    adapt:  projector, on the k shots of the held-out classes (few-shot baseline)

``glm pretrain --method graphgpt`` runs ``task``; run ``--stage match`` first and pass its run
folder as ``training.init_from`` to reproduce both stages.
"""

from __future__ import annotations

from glm.core.method import MethodContext, MethodSpec, StageSpec
from glm.methods.graphgpt.config import GraphGPTConfig
from glm.methods.graphgpt.node_tokens import GraphGPTNodeTokens
from glm.plugins.hookspecs import hookimpl

__all__ = ["GraphGPTConfig", "GraphGPTNodeTokens", "SPEC", "STAGES"]

STAGES = {
    "match": StageSpec(("projector.*",), "pretrain", tasks=("graph_matching",),
                       description="projector on graph matching (stage 1)"),
    "task": StageSpec(("projector.*",), "pretrain", description="projector on the pre-training tasks (stage 2)"),
    "adapt": StageSpec(("projector.*",), "fewshot", description="projector on the k shots"),
}


def build(config: GraphGPTConfig, context: MethodContext) -> GraphGPTNodeTokens:
    return GraphGPTNodeTokens(context.encoder, int(context.encoder_out_dim), config, context.hidden_size)


SPEC = MethodSpec(
    name="graphgpt", config_cls=GraphGPTConfig, build=build, stages=STAGES, pretrain_stage="task",
    reference="GraphGPT, SIGIR'24; github.com/HKUDS/GraphGPT",
    description="frozen GNN + linear projector, one token per node",
)


@hookimpl
def register_methods(register) -> None:
    register(SPEC)
