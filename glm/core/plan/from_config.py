"""Turn a run configuration (YAML + overrides) and its DeepSpeed recipe into a :class:`PlanInput`.

Graph-side parameter counts come from the real modules: the model factory builds the method's
GraphLanguageModel around a weight-less (meta device) copy of the LLM and
:func:`glm.core.stages.set_stage` picks the trainable set, so the planner and the trainer agree
on what trains.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from glm.core.plan.memory import PlanInput
from glm.core.plan.models import LLMShape, resolve_llm, shape_from_config


def llm_shape_for(cfg: Any) -> tuple[LLMShape, Optional[dict[str, Any]]]:
    """The LLM shape of ``cfg.model.llm`` and, for ``tiny-random``, the tiny config dict."""
    from glm.core.llm import tiny_family, tiny_llm

    llm = cfg.model.llm
    family = tiny_family(llm.name)
    if family is not None and not llm.path:
        model, _ = tiny_llm(family, **llm.options)
        data = model.config.to_dict()
        return shape_from_config(data, name="tiny-random"), data
    return resolve_llm(llm.path or llm.name), None


def nodes_per_graph(fanout: list[int]) -> int:
    """Largest subgraph a fan-out can sample: ``[10, 10]`` -> 1 + 10 + 100 = 111."""
    total, layer = 1, 1
    for f in fanout:
        layer *= f
        total += layer
    return total


def graph_side(cfg: Any, shape: LLMShape) -> tuple[int, int, str, bool, Optional[int]]:
    """``(trainable, frozen, how, encoder_trains, tokens_per_graph)`` of ``cfg.training.stage``.

    Counts come from the real modules built by :func:`glm.core.factory.build_model` around a
    weight-less LLM; without an installed backend a graph transformer is counted by formula.
    """
    import torch
    from torch import nn

    from glm.core.factory import build_model
    from glm.core.llm import tiny_tokenizer
    from glm.core.stages import check_lr_groups, set_stage

    class _MetaLLM(nn.Module):  # only what GraphLanguageModel reads from its LLM at construction
        def __init__(self, hidden: int, vocab: int) -> None:
            super().__init__()
            self.config = type("Cfg", (), {"hidden_size": hidden, "initializer_range": 0.02})()
            with torch.device("meta"):
                self.embed = nn.Embedding(vocab, hidden)

        def get_input_embeddings(self) -> nn.Module:
            return self.embed

    enc = cfg.model.encoder
    encoder, how = None, f"method {cfg.model.method!r}"
    if cfg.model.method_spec.uses_encoder:
        from glm.core.encoder import build_encoder
        from glm.core.factory import default_backend
        from glm.errors import GlmError

        try:  # the config's backend, else the first installed one (GammaGL on a GammaGL-only install)
            backend = default_backend(cfg.backend)
            encoder = build_encoder(enc, backend)
            how += f", encoder built on backend {backend}"
        except GlmError as exc:  # no backend installed: count a graph transformer by formula, and say so
            encoder = _FormulaEncoder(enc.in_dim, enc.hidden_dim, enc.out_dim, enc.num_layers)
            how += f", encoder counted by formula ({type(exc).__name__}: {exc})"
    cfg = copy.deepcopy(cfg)
    cfg.model.llm.tuning = "frozen"  # the LLM's trainable part is counted by formula (tuning_fields)
    model = build_model(cfg, llm=_MetaLLM(shape.hidden, shape.vocab), tokenizer=tiny_tokenizer(), encoder=encoder)
    trained = set(set_stage(model, cfg.training.stage, extra=cfg.model.stage_extra))
    check_lr_groups(sorted(trained), cfg.training.lr_groups)
    from glm.core.train.align import align_runs, check_align

    if align_runs(cfg):
        check_align(model, cfg.training.align)
    graph = {n: p for n, p in model.named_parameters() if not n.startswith("llm.")}
    n_train = sum(p.numel() for n, p in graph.items() if n in trained)
    encoder_trains = any(n.startswith("encoder.") for n in trained)
    return (n_train, sum(p.numel() for p in graph.values()) - n_train, how, encoder_trains,
            model.node_token_module.tokens_per_graph)


def _FormulaEncoder(in_dim: int, hidden: int, out_dim: int, layers: int):
    """Parameters of GraphLAMA's graph transformer (W_P, layers of wq/wk/wv + LayerNorm, inverW_P)."""
    from torch import nn

    mods = [nn.Linear(in_dim, hidden)] + [nn.Linear(hidden, 3 * hidden, bias=False) for _ in range(layers)]
    mods += [nn.LayerNorm(hidden) for _ in range(layers)] + [nn.Linear(hidden, out_dim)]
    return nn.ModuleList(mods)


def tuning_fields(llm: Any, stage: Optional[str] = None) -> dict[str, Any]:
    """The :class:`PlanInput` fields of ``model.llm.tuning`` (frozen when the stage is not one of
    ``model.llm.train_stages``)."""
    mode = llm.tuning
    if stage is not None and llm.train_stages is not None and stage not in llm.train_stages:
        mode = "qlora-frozen" if mode == "qlora" else "frozen"
    if mode == "qlora-frozen":  # a 4-bit base that does not train in this stage
        return {"tuning": "frozen", "quantization": "4bit"}
    return {"tuning": mode, "lora_r": int(llm.lora.r), "lora_targets": tuple(llm.lora.target_modules),
            "lora_dropout": float(llm.lora.dropout), "freeze_layers": int(llm.freeze.last_n),
            "double_quant": bool(llm.quant.double_quant)}


def recipe_settings(recipe: str, device: str) -> dict[str, Any]:
    """ZeRO stage, offload flags, precision and checkpointing hint of a recipe name or JSON path."""
    from glm.core.recipe import load_recipe, recipe_hints, zero_stage

    raw, source = load_recipe(recipe)
    zero = raw.get("zero_optimization", {}) or {}

    def on(section: str) -> bool:
        return str((zero.get(section) or {}).get("device", "none")).lower() == "cpu"

    def enabled(key: str) -> bool:
        value = (raw.get(key) or {}).get("enabled", False)
        return device == "cuda" if value == "auto" else bool(value)  # "auto": bf16 on a CUDA card

    dtype = "bfloat16" if enabled("bf16") else "float16" if enabled("fp16") else None
    return {"zero_stage": zero_stage(raw), "offload_optimizer": on("offload_optimizer"),
            "offload_param": on("offload_param"), "dtype": dtype,
            "gradient_checkpointing": bool(recipe_hints(raw).get("gradient_checkpointing", False)),
            "source": source}


# reply tokens planned per sample: the LM head runs at the reply positions only, and in a batch at the
# union of its rows' (a class name is a few tokens; a graph-matching reply of 8 titles stays under this)
REPLY_TOKENS = 128


def from_run_config(cfg: Any, device: str = "cuda", text_tokens: Optional[int] = None) -> PlanInput:
    """A :class:`PlanInput` for a :class:`glm.core.config.RunConfig`.

    The planned sequence is ``model.llm.max_length`` (the collator truncates there), of which
    ``graphs x nodes`` are node tokens (``data.fanout`` gives the largest subgraph, or the method's
    fixed tokens per graph; link prediction has two graphs per sample); ``text_tokens`` overrides
    the text part. The LM head is planned at ``REPLY_TOKENS`` reply positions per sample. The
    planner's ``stage`` is ``pretrain`` when the stage trains the encoder.
    """
    shape, _ = llm_shape_for(cfg)
    rs = recipe_settings(cfg.recipe, device)
    n_train, n_frozen, how, encoder_trains, per_graph = graph_side(cfg, shape)
    nodes = per_graph if per_graph is not None else nodes_per_graph(list(cfg.data.fanout))
    graphs = 2 if "link_prediction" in cfg.data.tasks else 1
    text = text_tokens if text_tokens is not None else max(1, cfg.model.llm.max_length - graphs * nodes)
    from glm.core.llm import resolve_dtype

    dtype = rs["dtype"] or (resolve_dtype(cfg.model.llm.dtype, device) if device == "cpu" else
                            "bfloat16" if cfg.model.llm.dtype == "auto" else cfg.model.llm.dtype)
    return PlanInput(
        llm=shape, dtype=dtype, trainable_params=n_train, frozen_graph_params=n_frozen,
        stage="pretrain" if encoder_trains else "adapt", zero_stage=rs["zero_stage"], offload_optimizer=rs["offload_optimizer"],
        offload_param=rs["offload_param"], micro_batch=cfg.training.micro_batch_size, text_tokens=text,
        loss_positions=REPLY_TOKENS * cfg.training.micro_batch_size,  # capped at the sequence by the planner
        graphs_per_sample=graphs, nodes_per_graph=nodes,
        gradient_checkpointing=bool(cfg.model.llm.gradient_checkpointing or rs["gradient_checkpointing"]),
        graph_dim=cfg.model.encoder.out_dim, gnn_layers=cfg.model.encoder.num_layers,
        generate_tokens=getattr(cfg.eval, "max_new_tokens", 0) if getattr(cfg.eval, "mode", "") == "generate" else 0,
        eval_batch=getattr(cfg.eval, "batch_size", 1), device=device,
        notes=[f"recipe: {rs['source']}", f"graph-side parameters: {how}"],
        accumulation=cfg.training.gradient_accumulation_steps, **tuning_fields(cfg.model.llm, cfg.training.stage),
    )
