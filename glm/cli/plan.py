"""``glm plan``: will this recipe fit my GPU? Itemised estimate, verdict, cheapest fixes, and a probe."""

from __future__ import annotations

import argparse
from typing import Any

from glm.cli.common import print_json
from glm.cli.main import CliError

GIB = 1024 ** 3


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="estimate peak GPU memory of a run config (itemised, verdict, fixes); --probe measures it",
        description="Build the model on the meta device (no weights, no network) and estimate the peak "
                    "memory of one training step of CONFIG's recipe, itemised.")
    p.add_argument("config", nargs="?", help="run config YAML (omit for defaults)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.stage=adapt")
    p.add_argument("--gpu", default="3090", help="3090 | 4090 | a800 | a100 | h100 | h200 | a size in GiB (default 3090)")
    p.add_argument("--llm", help="plan for this LLM instead: built-in name or path to config.json / its folder")
    p.add_argument("--text-tokens", type=int, help="text tokens per sample (default: llm.max_length minus node tokens)")
    p.add_argument("--attention", choices=["sdpa", "eager", "flash_attention_2"], default=None,
                   help="attention implementation (default sdpa)")
    p.add_argument("--quantization", choices=["8bit", "4bit"], default=None, help="plan a quantised base LLM")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--probe", action="store_true", help="also run a few real steps and print estimate vs measured")
    p.add_argument("--steps", type=int, default=2, help="measured steps for --probe (default 2)")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None,
                   help="--probe device (default: cuda when available, else cpu)")
    p.set_defaults(func=cmd_plan)


def _gib(x: float) -> str:
    return f"{x / GIB:.2f}"


def cmd_plan(args: argparse.Namespace) -> int:
    from glm.core.config import ConfigError, load_config
    from glm.core.plan.from_config import from_run_config
    from glm.core.plan.memory import PlanError, estimate, suggestions
    from glm.core.plan.models import PlanModelError, gpu_gib
    from glm.core.train.dsconfig import RecipeError

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
          f"vocab {p.llm.vocab}; {p.dtype}" + (f", {p.quantization}" if p.quantization else ""))
    print(f"stage {p.stage}: {p.trainable_params:,} trainable graph-side params; {zero}; "
          f"checkpointing {'on' if p.gradient_checkpointing else 'off'}; attention {p.attention}")
    print(f"sequence {p.seq_len} = {p.text_tokens} text + {p.graphs_per_sample} x {p.nodes_per_graph} node tokens; "
          f"micro-batch {p.micro_batch}")
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
    """Run the probe for ``cfg`` and compare with the estimate of the same setting."""
    from dataclasses import asdict

    from glm.core.plan.probe import ProbeError, ProbeSpec, compare, run_probe

    try:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    except ImportError:  # pragma: no cover
        device = "cpu"
    name = cfg.model.llm.name
    if name in ("smollm2-135m", "smollm2") and not cfg.model.llm.path:
        llm: Any = "smollm2"
    elif name.startswith("tiny-random"):
        family = name.split("tiny-random-", 1)[1] if name.startswith("tiny-random-") else "llama"
        llm = {"family": family, **cfg.model.llm.options}
    else:
        llm = name  # built-in config, random init (same memory as the real weights)
    spec = ProbeSpec(llm=llm, dtype=inp.dtype if device == "cuda" else cfg.model.llm.dtype, stage=inp.stage,
                     gradient_checkpointing=inp.gradient_checkpointing, attention=inp.attention,
                     micro_batch=inp.micro_batch, text_tokens=inp.text_tokens,
                     graphs_per_sample=inp.graphs_per_sample, nodes_per_graph=inp.nodes_per_graph,
                     steps=args.steps, device=device, backend=cfg.backend or "pyg",
                     encoder=asdict(cfg.model.encoder))
    try:
        result = run_probe(spec)
    except ProbeError as exc:
        raise CliError(str(exc)) from None
    return {"result": result.to_dict() | {"llm_config": None}, "comparison": compare(result)}


def _print_probe(probe: dict[str, Any]) -> None:
    r, c = probe["result"], probe["comparison"]
    what = "CUDA max allocated over the loaded model" if r["device"].startswith("cuda") else \
        "peak-RSS growth over the loaded model"
    print()
    print(f"probe: {r['spec']['steps']} steps on {r['device']}, runner {r['runner']} "
          f"(real GraphLanguageModel, plain AdamW; DeepSpeed engine not used), sequence {r['seq_len']}")
    print(f"  measured ({what}): {c['measured'] / 2**20:.1f} MiB")
    print(f"  estimated (same quantity):            {c['estimate'] / 2**20:.1f} MiB  (error {c['error']:+.1%})")
    if r.get("reserved_peak_bytes"):
        print(f"  CUDA max reserved: {r['reserved_peak_bytes'] / 2**20:.1f} MiB; max allocated "
              f"{r['peak_bytes'] / 2**20:.1f} MiB")
