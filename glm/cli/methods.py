"""``glm methods``: the registered methods, their stages and trainable parameters for a config;
``glm convert official-gt``: official GraphGPT/GraphLAMA graph-transformer weights -> glm;
``glm export``: an adapter's LLM part merged into a Hugging Face folder, or as a PEFT folder."""

from __future__ import annotations

import argparse
from typing import Any

from glm.cli.common import CliError, print_json


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("methods", help="methods (GraphLAMA, GraphGPT, LLaGA, plugins), stages, trainable counts")
    p.add_argument("config", nargs="?", help="count trainable parameters per stage for this config (default: defaults)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_methods)

    p = subparsers.add_parser("convert", help="convert official checkpoints into glm adapters")
    p.add_argument("kind", choices=["official-gt"], help="official-gt: GraphGPT/GraphLAMA clip_gt graph transformer")
    p.add_argument("checkpoint", help="official state dict (.safetensors, or .pt/.bin read with weights_only)")
    p.add_argument("output", help="glm encoder state (.safetensors) to write")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("export", help="an adapter's LLM part as a merged Hugging Face folder (or a PEFT folder)")
    p.add_argument("adapter", help="adapter file, run folder or checkpoint folder")
    p.add_argument("output", help="new folder to write")
    p.add_argument("--config", help="run config naming the base LLM (default: glm_config.yaml beside the adapter)")
    p.add_argument("--peft", action="store_true", help="write a PEFT LoRA folder instead of merging")
    p.add_argument("--merge", action="store_true", help="merge into the base weights (the default)")
    p.set_defaults(func=cmd_export)


def method_rows(config: Any) -> list[dict[str, Any]]:
    """One dict per method: name, description, reference, plugin, stages (data, patterns, trainable / total)."""
    import copy

    from glm.core.plan.from_config import graph_side, llm_shape_for
    from glm.plugins.manager import get_registry

    registry = get_registry()
    shape, _ = llm_shape_for(config)
    rows = []
    for name, spec in sorted(registry.methods.items()):
        cfg = copy.deepcopy(config)
        cfg.model.method = name
        stages = []
        for stage, st in spec.stages.items():
            cfg.training.stage = stage
            try:
                trained, frozen, _, _, per_graph = graph_side(cfg, shape)
                counts = {"trainable": trained, "graph_side": trained + frozen}
            except Exception as exc:  # a plugin's method that cannot be built for this config
                counts = {"error": f"{type(exc).__name__}: {exc}"}
                per_graph = None
            stages.append({"stage": stage, "data": st.data, "tasks": list(st.tasks) if st.tasks else None,
                           "trains": list(st.trains), "description": st.description, **counts})
        rows.append({"name": name, "description": spec.description, "reference": spec.reference,
                     "plugin": registry.owner("methods", name), "uses_encoder": spec.uses_encoder,
                     "tokens": "one per node" if per_graph is None else f"{per_graph} per graph",
                     "pretrain_stage": spec.pretrain_stage, "adapt_stage": spec.adapt_stage, "stages": stages})
    return rows


def cmd_methods(args: argparse.Namespace) -> int:
    from glm.core.config import ConfigError, load_config

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    rows = method_rows(config)
    if args.json:
        print_json(rows)
        return 0
    print(f"LLM {config.model.llm.name}, encoder {config.model.encoder.layer} "
          f"{config.model.encoder.in_dim}->{config.model.encoder.out_dim}")
    for row in rows:
        print(f"\n{row['name']} ({row['plugin']}): {row['description']}")
        print(f"  {row['reference'] or 'no reference given'}; soft tokens: {row['tokens']}")
        for st in row["stages"]:
            count = st.get("error") or f"{st['trainable']:,} of {st['graph_side']:,} graph-side parameters train"
            default = " [glm pretrain]" if st["stage"] == row["pretrain_stage"] else (
                " [glm adapt]" if st["stage"] == row["adapt_stage"] else "")
            print(f"  {st['stage']:<15} {st['data']:<8} {count}{default}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from glm.core.convert import ConvertError, convert_official_gt

    try:
        out, n = convert_official_gt(args.checkpoint, args.output)
    except ConvertError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {n} tensors to {out} (glm encoder layout; load with training.init_from or "
          f"GraphEncoder.load_neutral_state_dict)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from glm.core.adapter import AdapterFormatError
    from glm.core.config import ConfigError, load_config
    from glm.core.export import GRAPH_SIDE_FILE, ExportError, export_adapter
    from glm.core.train.checkpoint import CheckpointError

    if args.peft and args.merge:
        raise CliError("glm export: give --merge or --peft, not both")
    adapter = Path(args.adapter)
    cfg = Path(args.config) if args.config else (adapter if adapter.is_dir() else adapter.parent) / "glm_config.yaml"
    if not cfg.is_file():
        raise CliError(f"glm export: no run config at {cfg}; pass --config CONFIG.yaml (it names the base LLM)")
    try:
        out = export_adapter(adapter, load_config(cfg), args.output, "peft" if args.peft else "merge")
    except (ConfigError, ExportError, AdapterFormatError, CheckpointError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    if args.peft:
        print(f"wrote {out} (PEFT LoRA folder: peft.PeftModel.from_pretrained(base, '{out}'))")
    else:
        print(f"wrote {out} (merged Hugging Face model; its graph side: {out / GRAPH_SIDE_FILE}, "
              f"use it with model.llm.path={out})")
    return 0
