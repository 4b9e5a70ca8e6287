"""What would make a plan fit: the cheapest changes of settings, each re-estimated by :func:`estimate`.

Each knob is ``(label, change of PlanInput fields, cost rank)``; cheaper first, the cost being runtime or
fidelity, in that order. Single changes are tried first, then pairs, and only those whose peak fits the
card are kept.
"""

from __future__ import annotations

from typing import Any

from glm.core.plan.memory import GIB, PlanInput, estimate


def _knobs(p: PlanInput) -> list[tuple[str, dict[str, Any], int]]:
    knobs: list[tuple[str, dict[str, Any], int]] = []
    if p.attention == "eager":
        knobs.append(("attention: sdpa instead of eager (same maths)", {"attention": "sdpa"}, 0))
    if not p.gradient_checkpointing:
        knobs.append(("gradient checkpointing on (about +30 % step time)", {"gradient_checkpointing": True}, 1))
    if p.micro_batch > 1:
        knobs.append((f"micro-batch 1 + gradient accumulation x{p.micro_batch} (same effective batch)",
                      {"micro_batch": 1, "padded": False}, 2))
    if not p.offload_optimizer and p.trainable_params:
        knobs.append(("offload optimizer to CPU (ZeRO-2 offload; needs the cpu_adam op)",
                      {"offload_optimizer": True, "zero_stage": max(2, p.zero_stage)}, 3))
    if not (p.zero_stage == 3 and p.offload_param):
        knobs.append(("ZeRO-3 with parameter offload (weights in CPU RAM, slow)",
                      {"zero_stage": 3, "offload_param": True, "offload_optimizer": True}, 5))
    if p.nodes_per_graph > 31:
        knobs.append(("shorter subgraphs: fan-out [5, 5] (31 nodes per graph)", {"nodes_per_graph": 31}, 4))
    if p.text_tokens > 512:
        knobs.append(("truncate text to 512 tokens (llm.max_length)", {"text_tokens": 512}, 4))
    if p.quant is None:
        knobs.append(("8-bit base LLM (bitsandbytes; slower, small quality cost)", {"quantization": "8bit"}, 6))
        knobs.append(("4-bit base LLM (NF4; quality cost)", {"quantization": "4bit"}, 7))
    if p.tuning == "freeze" and p.freeze_layers > 1:
        knobs.append((f"train 1 layer instead of {p.freeze_layers} (model.llm.freeze.last_n=1)", {"freeze_layers": 1}, 4))
    if p.tuning == "freeze":
        knobs.append(("LoRA r=8 on q/v instead of whole layers (model.llm.tuning=lora)",
                      {"tuning": "lora", "lora_r": 8, "lora_targets": ("q_proj", "v_proj")}, 5))
    if p.tuning == "lora":
        knobs.append(("QLoRA: the same LoRA on a 4-bit base (model.llm.tuning=qlora)", {"tuning": "qlora"}, 6))
        if p.lora_r > 8 or len(p.targets) > 2:
            knobs.append(("LoRA r=8 on q/v only (model.llm.lora)", {"lora_r": 8, "lora_targets": ("q_proj", "v_proj")}, 4))
    if p.tuning != "frozen":
        knobs.append(("keep the LLM frozen (model.llm.tuning=frozen; the graph side still trains)",
                      {"tuning": "frozen"}, 8))
    return knobs


def suggestions(p: PlanInput, card_gib: float, limit: int = 4) -> list[dict[str, Any]]:
    """Single changes (then pairs) that make the plan fit ``card_gib``, cheapest first."""
    base_knobs = _knobs(p)
    found: list[dict[str, Any]] = []
    for label, change, cost in base_knobs:
        plan = estimate(p.replace(**change))
        verdict, headroom = plan.verdict(card_gib)
        if verdict != "does not fit":
            found.append({"change": label, "peak_gib": plan.peak / GIB, "verdict": verdict, "cost": cost})
    if not found:  # try pairs
        for a in range(len(base_knobs)):
            for c in range(a + 1, len(base_knobs)):
                (la, ca, ka), (lc, cc, kc) = base_knobs[a], base_knobs[c]
                plan = estimate(p.replace(**{**ca, **cc}))
                verdict, _ = plan.verdict(card_gib)
                if verdict != "does not fit":
                    found.append({"change": f"{la} AND {lc}", "peak_gib": plan.peak / GIB,
                                  "verdict": verdict, "cost": ka + kc + 1})
    found.sort(key=lambda f: (f["cost"], f["peak_gib"]))
    return found[:limit]
