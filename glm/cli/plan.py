"""``glm plan``: will this recipe fit my GPU? Itemised estimate, verdict, cheapest fixes, and a probe."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from glm.core.choices import Attention, options
from glm.cli.common import IntermixedParser, print_json
from glm.cli.main import CliError

GIB = 1024 ** 3


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="estimate peak GPU memory of a run config (itemised, verdict, fixes); --probe measures it",
        description="Build the model on the meta device (no weights, no network) and estimate the peak "
                    "memory of one training step of CONFIG's recipe, itemised.")
    p.__class__ = IntermixedParser  # key=value overrides may follow options, as in glm pretrain
    p.add_argument("config", nargs="?", help="run config YAML (omit for defaults)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.stage=adapt")
    p.add_argument("--gpu", default="3090", help="3090 | 4090 | a800 | a100 | h100 | h200 | a size in GiB (default 3090)")
    p.add_argument("--llm", help="plan for this LLM instead: built-in name or path to config.json / its folder")
    p.add_argument("--text-tokens", type=int, help="text tokens per sample (default: llm.max_length minus node tokens)")
    p.add_argument("--attention", choices=options(Attention), default=None,
                   help="attention implementation (default sdpa)")
    p.add_argument("--quantization", choices=["8bit", "4bit"], default=None, help="plan a quantised base LLM")
    p.add_argument("--nproc", type=int, default=None,
                   help="ranks of the launch (default: the launcher's WORLD_SIZE, else 1); the plan is per rank "
                        "under ZeRO-1/2/3 partitioning")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--probe", action="store_true",
                   help="also run a few real steps of the recipe (the training loop, fresh process) and print "
                        "estimate vs measured")
    p.add_argument("--steps", type=int, default=2, help="measured steps for --probe, after one warm-up step (default 2)")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None,
                   help="--probe device (default: cuda when available, else cpu)")
    p.set_defaults(func=cmd_plan)


def _world_size(nproc: int | None) -> int:
    """``--nproc``, else the launcher's ``WORLD_SIZE``, else 1."""
    import os

    if nproc is not None:
        if nproc < 1:
            raise CliError(f"--nproc must be >= 1, found {nproc}")
        return nproc
    value = os.environ.get("WORLD_SIZE", "1")
    return int(value) if value.isdigit() and int(value) >= 1 else 1


def _gib(x: float) -> str:
    return f"{x / GIB:.2f}"


def cmd_plan(args: argparse.Namespace) -> int:
    from glm.core.config import ConfigError, load_config
    from glm.core.plan.from_config import from_run_config
    from glm.core.plan.fixes import suggestions
    from glm.core.plan.memory import PlanError, estimate
    from glm.core.plan.models import PlanModelError, gpu_gib
    from glm.core.recipe import RecipeError

    try:
        card_name, card = gpu_gib(args.gpu)
        config, overrides = args.config, list(args.overrides)
        if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
            config, overrides = None, [config] + overrides  # no file given, only overrides
        if args.llm:
            overrides.append(f"model.llm.name={args.llm}")
        cfg = load_config(config, overrides)
        inp = from_run_config(cfg, device="cuda", text_tokens=args.text_tokens)
        changes = {k: v for k, v in (("attention", args.attention), ("quantization", args.quantization)) if v}
        changes["world_size"] = _world_size(args.nproc)
        inp = inp.replace(**changes)
        plan = estimate(inp)
    except (ConfigError, RecipeError, PlanError, PlanModelError, ValueError) as exc:
        raise CliError(str(exc)) from None
    verdict, headroom = plan.verdict(card)
    fixes = suggestions(inp, card) if verdict == "does not fit" else []
    probe = _probe(cfg, inp, args) if args.probe else None
    if args.json:
        print_json({**plan.to_dict(), "gpu": card_name, "gpu_bytes": card * GIB, "verdict": verdict,
                    "headroom_bytes": headroom, "suggestions": fixes, "probe": probe})
        return 0
    _print_human(plan, card_name, card, verdict, headroom, fixes)
    if probe:
        _print_probe(probe)
    return 0


def _print_human(plan, card_name: str, card: float, verdict: str, headroom: float, fixes: list) -> None:
    p = plan.input
    zero = f"ZeRO-{p.zero_stage}" + (" + optimizer offload" if p.offload_optimizer else "") + \
        (" + param offload" if p.offload_param else "")
    print(f"LLM {p.llm.name}: {p.llm.num_params / 1e9:.2f} B params, {p.llm.layers} layers, hidden {p.llm.hidden}, "
          f"vocab {p.llm.vocab}; {p.dtype}" + (f", {p.quant} base" if p.quant else ""))
    tuning = {"frozen": "LLM frozen", "freeze": f"LLM: last {p.freeze_layers} layers train",
              "lora": f"LLM: LoRA r={p.lora_r} on {'/'.join(p.targets)}",
              "qlora": f"LLM: 4-bit base + LoRA r={p.lora_r} on {'/'.join(p.targets)}"}[p.tuning]
    llm_params = f" + {p.llm_trainable_params:,} LLM" if p.llm_trainable_params else ""
    print(f"stage {p.stage}: {p.trainable_params:,} trainable graph-side{llm_params} params ({tuning}); {zero}; "
          f"checkpointing {'on' if p.gradient_checkpointing else 'off'}; attention {p.attention}")
    print(f"sequence {p.seq_len} = {p.text_tokens} text + {p.graphs_per_sample} x {p.nodes_per_graph} node tokens; "
          f"micro-batch {p.micro_batch}")
    if p.world_size > 1:
        parts = {0: "nothing is partitioned (every rank holds everything)", 1: "optimizer states / {n}",
                 2: "optimizer states and gradients / {n}", 3: "optimizer states, gradients and weights / {n}"}
        print(f"per rank, {p.world_size} ranks: {parts[p.zero_stage].format(n=p.world_size)}; every rank peaks alike "
              f"on its GPU (DeepSpeed pads partitions to one size); host RAM per node: one model load per local rank")
    for note in p.notes:
        print(f"  {note}")
    print()
    width = max(len(it.name) for it in plan.items)
    print(f"{'item':<{width}}  {'GPU GiB':>8}  {'CPU GiB':>8}  note")
    for it in plan.items:
        print(f"{it.name:<{width}}  {_gib(it.gpu):>8}  {_gib(it.cpu):>8}  {it.note}")
    phases = f"training {_gib(plan.train_peak)}" + (
        f", generation {_gib(plan.generate_peak)} (a separate phase)" if plan.generate_peak else "")
    print(f"{'peak':<{width}}  {_gib(plan.peak):>8}  {_gib(plan.cpu_peak):>8}  "
          f"({phases} GiB allocated; CPU = host RAM incl. loading the weights)")
    print()
    print(f"card {card_name}: {card:.0f} GiB; headroom {headroom / GIB:+.2f} GiB -> {verdict.upper()} "
          f"(largest item: {plan.dominant})")
    if fixes:
        print("cheapest changes that fit:")
        for f in fixes:
            print(f"  - {f['change']}: peak {f['peak_gib']:.2f} GiB ({f['verdict']})")
    elif verdict == "does not fit":
        print("no single or paired change found that fits; try a bigger card")


def _probe(cfg, inp, args) -> dict[str, Any]:
    """Run the probe for ``cfg`` (its recipe, through the real training loop) and compare with the
    estimate of the same setting on the probe's device."""
    import importlib.util

    from glm.core.plan.probe import ProbeError, compare, run_probe, spec_from_config

    try:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    except ImportError:  # pragma: no cover
        device = "cpu"
    runner, why = "recipe", None
    if importlib.util.find_spec("deepspeed") is None:
        runner, why = "torch", "DeepSpeed is not installed, so the recipe cannot run"
    try:
        spec = spec_from_config(cfg, device=device, steps=args.steps, text_tokens=args.text_tokens,
                                runner=runner, attention=args.attention)
        if args.quantization:  # probe what is planned: a 4-bit base (8-bit is planned only)
            spec.quantization = args.quantization
        print(f"probe: {spec.warmup_steps} warm-up + {spec.steps} measured steps of the {runner} runner on {device} "
              f"in a fresh process (the model loads first) ...", file=sys.stderr, flush=True)
        result = run_probe(spec)
    except ProbeError as exc:
        raise CliError(str(exc)) from None
    return {"result": result.to_dict() | {"llm_config": None}, "comparison": compare(result),
            "fallback_reason": why}


def _print_probe(probe: dict[str, Any]) -> None:
    r, c = probe["result"], probe["comparison"]
    mib = 2 ** 20
    cuda = r["device"].startswith("cuda")
    what = "CUDA max allocated" if cuda else "peak-RSS"
    print()
    if r["runner"] == "recipe":
        print(f"probe: the training loop with recipe {r['recipe']} (DeepSpeed ZeRO-{r['zero_stage']}, "
              f"{r['engine_dtype']}) on {r['device']}: {r['steps_run']} optimizer steps, 1 short warm-up + "
              f"{r['spec']['steps']} measured; synthetic batches of the planned shape, sequence {r['seq_len']}")
    else:
        print(f"probe: plain torch AdamW on {r['device']} (fallback: {probe.get('fallback_reason')}; the recipe "
              f"and DeepSpeed engine were not used), {r['spec']['steps']} measured steps, sequence {r['seq_len']}")
    print(f"  measured ({what} growth during the measured steps): {c['measured'] / mib:.1f} MiB")
    print(f"  estimated (same quantity):                {c['estimate'] / mib:.1f} MiB  (error {c['error']:+.1%})")
    if r.get("resident_bytes") is not None:
        print(f"  resident before the measured steps, over the loaded model: {r['resident_bytes'] / mib:.1f} MiB "
              f"(optimizer states, DeepSpeed buffers and libraries, allocator caches; not in the growth)")
    if r.get("reserved_peak_bytes"):
        print(f"  CUDA max reserved: {r['reserved_peak_bytes'] / mib:.1f} MiB; max allocated "
              f"{r['peak_bytes'] / mib:.1f} MiB")
