"""``glm pretrain|adapt|eval|infer|recipes|plot|demo``: training and using graph language models.

Every run command takes ``CONFIG.yaml`` plus dotted ``key=value`` overrides
(``training.learning_rate=1e-4 data.fanout=[5,5]``), ``--backend``, ``--recipe`` and
``--print-config`` (show the resolved config and exit). Multi-GPU runs go through DeepSpeed's
launcher: ``deepspeed --no_local_rank --num_gpus 2 $(which glm) pretrain cfg.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from glm.core.choices import EvalMode, options
from glm.cli.common import CliError, IntermixedParser, add_backend_argument, write_jsonl


def _parser(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, **kwargs)
    p.__class__ = IntermixedParser
    return p


def add_commands(subparsers: Any) -> None:
    for name, kind, help_text in (
        ("pretrain", "pretrain", "pre-train the method's graph side (GraphLAMA: encoder, hop code, gates, projector)"),
        ("adapt", "fewshot", "few-shot adaptation of a pre-trained graph side to new classes"),
    ):
        p = _parser(subparsers, name, help=help_text)
        _run_arguments(p)
        p.add_argument("--stage", help=f"a stage of the method (glm methods lists them; default: the method's "
                                       f"{name} stage, or training.stage when it is one)")
        p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                       help="continue from the newest checkpoint of output_dir, or from PATH")
        p.add_argument("--resume-anyway", action="store_true",
                       help="resume although settings differ from the checkpoint's (each difference is logged)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace a previous run in output_dir (kept until the new run's first checkpoint)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
        p.set_defaults(func=cmd_train, stage_kind=kind, command=name)

    p = _parser(subparsers, "eval", help="accuracy of a base model + adapter on the held-out test nodes")
    _run_arguments(p)
    _predict_arguments(p)
    p.add_argument("--report-dir", help="write confusion.json and confusion.png (per-class metrics, confusion matrix) here "
                   "(link_report.json with --task link_prediction)")
    p.add_argument("--task", choices=("node_classification", "link_prediction", "title_generation"),
                   default="node_classification",
                   help="link_prediction: yes/no pairs among the held-out classes' nodes; AUC, accuracy by hop distance; "
                        "title_generation: BLEU / ROUGE of generated titles (the same as data.task=title_generation)")
    p.add_argument("--pairs", type=int, default=200, help="link-prediction pairs, half of them linked (default 200)")
    p.set_defaults(func=cmd_eval)

    p = _parser(subparsers, "infer", help="predictions (JSONL) of a base model + adapter, batched")
    _run_arguments(p)
    _predict_arguments(p)
    p.add_argument("--nodes", help="all, a file (.npy, or one index per line) or comma-separated indices "
                                   "(default: the split's test nodes)")
    p.add_argument("--resume", action="store_true", help="continue --output after its last complete line")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_infer)

    p = subparsers.add_parser("recipes", help="list the DeepSpeed recipes (or print one resolved)")
    p.add_argument("name", nargs="?", help="print this recipe, with 'auto' filled from CONFIG")
    p.add_argument("--config", help="config whose values fill the 'auto' fields")
    p.set_defaults(func=cmd_recipes)

    p = subparsers.add_parser("plot", help="PNG curves from RUN_DIR/trainer_log.jsonl; 'plot embeddings RUN_DIR "
                                           "[RUN_DIR2]': 2-D maps of node vectors by class",
                              usage="glm plot RUN_DIR [--keys ...] | glm plot embeddings RUN_DIR [RUN_DIR2] [options]")
    p.add_argument("run_dir", nargs="+", help="RUN_DIR, or: embeddings RUN_DIR [RUN_DIR2] (two runs: side by side)")
    p.add_argument("--keys", nargs="+", default=["loss", "lr"], help="log keys to plot (default: loss lr; also "
                                                                      "token_norm_ratio and the families grad_norm, "
                                                                      "update_ratio, act: one PNG each)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="embeddings: which held-out nodes")
    p.add_argument("--stage", choices=("encoder", "gate", "tokens"), help="embeddings: which vectors (default: gate "
                                                                           "if the method has one, else encoder)")
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca", help="embeddings: 2-D projection")
    p.add_argument("--output", help="embeddings: PNG path (default: LAST_RUN_DIR/embeddings_<stage>_<split>.png)")
    p.set_defaults(func=cmd_plot)

    p = _parser(subparsers, "demo", help="CiteSeer + SmolLM2-135M: pre-train, 5-shot adapt, evaluate, table")
    p.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    p.add_argument("--backend", default="both", help="pyg, gammagl, another backend, or both (default)")
    p.add_argument("--output-dir", default=None, help="runs folder (default runs/demo or runs/demo-quick)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--no-baseline", action="store_true", help="skip the before-adaptation evaluation")
    p.add_argument("--draws", type=int, default=None,
                   help="k-shot draws adapted and scored on the first backend, reported as mean ± std "
                        "(default 3; 1 with --quick)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for both demo configs")
    p.set_defaults(func=cmd_demo)


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run configuration (see examples/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.max_steps=10")
    add_backend_argument(p)
    p.add_argument("--recipe", help="DeepSpeed recipe name (glm recipes) or JSON path")
    p.add_argument("--output-dir", help="shortcut for training.output_dir=...")
    p.add_argument("--method", help="graphlama, graphgpt, llaga or a plugin's (shortcut for model.method=...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", help="adapter file / run dir (default: eval.adapter, then training.output_dir)")
    p.add_argument("--mode", choices=options(EvalMode), help="scoring (default: eval.mode)")
    from glm.core.eval.parsers import ANSWER_PARSERS

    p.add_argument("--match", choices=tuple(ANSWER_PARSERS),
                   help="answer parser in generate mode (docs/bench.md; every parser's accuracy is printed too)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--output", help="write predictions as JSONL here (default: eval.output)")


def _load(args: argparse.Namespace, extra: tuple[str, ...] = ()):
    from glm.core.config import ConfigError, load_config

    overrides = list(args.overrides)
    if getattr(args, "backend", None):
        overrides.append(f"backend={args.backend}")
    if getattr(args, "recipe", None):
        overrides.append(f"recipe={args.recipe}")
    if getattr(args, "output_dir", None):
        overrides.append(f"training.output_dir={args.output_dir}")
    if getattr(args, "method", None):
        overrides.append(f"model.method={args.method}")
    overrides += list(extra)
    try:
        return load_config(args.config, overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _maybe_print(args: argparse.Namespace, config) -> bool:
    if args.print_config:
        sys.stdout.write(config.to_yaml())
        return True
    return False


def cmd_train(args: argparse.Namespace) -> int:
    from glm.core.train.outdir import RunLock, check_output_dir, launcher_rank
    from glm.core.train.pipeline import run_stage

    extra = []
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        args.overrides.append(args.resume)  # `--resume key=value`: the override is not a checkpoint path
        args.resume = "latest"
    if args.resume:
        extra.append(f"training.resume={args.resume}")
    if args.overwrite:
        extra.append("training.overwrite_output_dir=true")
    if args.resume_anyway:
        extra.append("training.resume_anyway=true")
    config = _load(args, tuple(extra))
    config.training.stage = _stage_for(args, config)
    if _maybe_print(args, config):
        return 0
    # Under a launcher only rank 0 checks and locks the folder; the trainer's run directory makes the other
    # ranks wait for it (a barrier) and share its verdict.
    rank0 = launcher_rank() == 0
    if rank0:
        check_output_dir(config.training)  # before the LLM and data load
    with RunLock(config.training.output_dir) if rank0 else contextlib.nullcontext():
        result, _, _ = run_stage(config, progress=not args.no_progress and rank0)
    if not rank0:
        return 0
    if config.training.plot_loss:
        from glm.core.train.plot import plot_run

        plot_run(result.output_dir)
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    print(f"{config.training.stage}: {result.global_step} steps, final loss {loss}, {result.train_seconds:.1f} s, "
          f"peak RSS {result.peak_rss_mb:.0f} MiB -> {result.output_dir}")
    return 0


def _stage_for(args: argparse.Namespace, config) -> str:
    """``--stage``, else ``training.stage`` if it is a stage of this command's kind, else the method's default."""
    spec = config.model.method_spec
    if args.stage:
        if args.stage not in spec.stages:
            raise CliError(f"--stage {args.stage!r}: method {spec.name!r} has stages {', '.join(spec.stages)}")
        if spec.stages[args.stage].data != args.stage_kind:
            raise CliError(f"--stage {args.stage!r} trains on {spec.stages[args.stage].data} data; "
                           f"use glm {'adapt' if args.stage_kind == 'pretrain' else 'pretrain'} for it")
        return args.stage
    current = config.training.stage
    if current in spec.stages and spec.stages[current].data == args.stage_kind:
        return current
    return spec.pretrain_stage if args.stage_kind == "pretrain" else spec.adapt_stage


def _model_with_adapter(args: argparse.Namespace, config):
    from glm.core.train.checkpoint import CheckpointError
    from glm.core.train.pipeline import apply_adapter_chain, build_model, prepare_data

    model = build_model(config)
    source = args.adapter or config.eval.adapter or config.training.output_dir
    try:
        chain = apply_adapter_chain(model, source)
    except (CheckpointError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    data = prepare_data(config)
    return model, data, chain


def _output_file(args: argparse.Namespace, config) -> str | None:
    """``--output`` (else ``eval.output``), refused before any work when it names a directory."""
    out = args.output or config.eval.output
    if out and Path(out).is_dir():
        raise CliError(f"--output {out!r} is a directory; give a file name (e.g. {Path(out) / 'predictions.jsonl'})")
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    from glm.core.eval.predict import evaluate
    from glm.core.train.pipeline import eval_samples, make_collator

    if getattr(args, "task", None) == "title_generation":
        args.overrides = [*args.overrides, "data.task=title_generation"]
    config = _load(args)
    if _maybe_print(args, config):
        return 0
    out = _output_file(args, config)
    model, data, chain = _model_with_adapter(args, config)
    if getattr(args, "task", "node_classification") == "link_prediction":
        from glm.cli.eval_tasks import eval_links

        return eval_links(args, config, model, data, chain, out)
    if config.data.task == "title_generation":
        from glm.cli.eval_tasks import eval_titles

        return eval_titles(args, config, model, data, chain, out)
    samples = eval_samples(config, data, args.split)
    if not samples:
        raise CliError(f"--split {args.split}: the split has no {args.split} nodes "
                       f"(set data.{'val' if args.split == 'val' else 'test'}_per_class > 0)")
    ev = config.eval
    result = evaluate(model, samples, make_collator(config, model, data),
                      make_collator(config, model, data, inference=True),
                      mode=args.mode or ev.mode, match=args.match or ev.match, batch_size=ev.batch_size,
                      max_new_tokens=ev.max_new_tokens, progress=True)
    if out:
        write_jsonl([p.as_dict() for p in result.predictions], out)
    print(f"{args.split}: {result.num_samples} nodes of {', '.join(data.split.heldout_classes)}: "
          f"accuracy {result.accuracy:.4f}, macro-F1 {result.macro_f1:.4f} ({result.mode}, {result.match}) "
          f"in {result.seconds:.1f} s; adapters: {', '.join(str(c) for c in chain)}")
    if result.by_parser:
        print("answer parsers: " + ", ".join(f"{m} {v['accuracy']:.4f} ({v['unmatched']:.0f} unmatched)"
                                            for m, v in result.by_parser.items()))
    print(_baseline_line(result, list(data.split.heldout_classes)))
    from glm.core.eval.report import format_class_report, report_of, write_confusion

    report = report_of(result, list(data.split.heldout_classes))
    print(format_class_report(report))
    if getattr(args, "report_dir", None):
        paths = write_confusion(report, Path(args.report_dir), f"{args.split}: {result.num_samples} nodes")
        print(f"confusion matrix: {paths[0]}, {paths[1]}")
    return 0


def _baseline_line(result, classes: list[str]) -> str:
    """Chance, majority (they differ on unbalanced test sets) and what the model answered, per class."""
    from collections import Counter

    n = max(result.num_samples, 1)
    truth = Counter(p.label for p in result.predictions)
    said = Counter(p.matched or p.prediction for p in result.predictions)
    answered = ", ".join(f"{c} {said.get(c, 0)}" for c in classes)
    other = n - sum(said.get(c, 0) for c in classes)
    return (f"baselines: chance {1 / len(classes):.4f}, majority {max(truth.values(), default=0) / n:.4f} "
            f"({truth.most_common(1)[0][0] if truth else '-'}); predicted: {answered}"
            + (f", other {other}" if other else "") + f" of {n}")


def cmd_infer(args: argparse.Namespace) -> int:
    """Predictions as JSON lines, streamed chunk by chunk (bounded memory; ``--resume`` continues a stopped run)."""
    import torch

    from glm.core.eval.stream import NodeListError, StreamOutputError, read_node_list, stream_predictions
    from glm.run import predict

    config = _load(args)
    if _maybe_print(args, config):
        return 0
    out = _output_file(args, config)
    if args.nodes is not None and not args.nodes.strip():  # before the model loads
        raise CliError("--nodes is empty; give node indices (e.g. --nodes 0,5,9), a file, or all; leave it out for "
                       "the split's test nodes")
    if args.resume and not out:
        raise CliError("--resume continues an --output file; name one")
    model, data, _ = _model_with_adapter(args, config)
    if not data.split.heldout_classes:
        raise CliError(f"data.split={config.data.split}: {data.tag.name} holds no class out, so there are no classes "
                       "to predict; infer with the adaptation's config")
    try:
        nodes = (torch.tensor(data.split.test if args.split == "test" else data.split.val, dtype=torch.long)
                 if args.nodes is None
                 else read_node_list(args.nodes, data.tag.num_nodes, data.tag.name))
    except NodeListError as exc:
        raise CliError(str(exc)) from None
    mode = args.mode or "generate"
    try:
        stats = stream_predictions(nodes, lambda ids: predict(model, config, data, ids, mode, args.match),
                                   Path(out) if out else None,
                                   progress=not args.no_progress, resume=args.resume)
    except StreamOutputError as exc:
        raise CliError(str(exc)) from None
    print(f"infer: {stats.nodes:,} nodes in {stats.seconds:.1f} s ({stats.nodes_per_second:.1f} nodes/s, {mode})"
          + (f"; {stats.skipped:,} were already in {out}" if stats.skipped else "")
          + (f" -> {out}" if out else ""), file=sys.stderr)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from glm.core.config import ConfigError, RunConfig, load_config
    from glm.core.recipe import RecipeError
    from glm.core.train.dsconfig import resolve_recipe
    from glm.plugins.manager import get_registry

    if args.name:
        try:
            config = load_config(args.config) if args.config else RunConfig()
            print(json.dumps(resolve_recipe(args.name, config.training), indent=2))
        except (RecipeError, ConfigError) as exc:
            raise CliError(str(exc)) from None
        return 0
    recipes = get_registry().recipes
    width = max((len(n) for n in recipes), default=0)
    for name, spec in recipes.items():
        print(f"{name:<{width}}  {spec.description}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from glm.core.train.plot import plot_run

    if args.run_dir[0] == "embeddings":
        return _plot_embeddings(args, args.run_dir[1:])
    if len(args.run_dir) != 1:
        raise CliError(f"glm plot takes one RUN_DIR (or 'embeddings RUN_DIR [RUN_DIR2]'), found {args.run_dir}")
    try:
        paths = plot_run(args.run_dir[0], args.keys)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    for p in paths:
        print(p)
    return 0


def _plot_embeddings(args: argparse.Namespace, run_dirs: list[str]) -> int:
    from glm.core.config import load_config
    from glm.core.eval.embeddings import embedding_panel, plot_maps
    from glm.core.train.checkpoint import CheckpointError
    from glm.core.train.pipeline import (apply_adapter_chain, build_model, eval_samples, fewshot_samples,
                                         make_collator, prepare_data)

    if not 1 <= len(run_dirs) <= 2:
        raise CliError(f"glm plot embeddings takes one or two run folders, found {len(run_dirs)}")
    panels = []
    for run in map(Path, run_dirs):
        cfg_file = run / "glm_config.yaml"
        if not cfg_file.is_file():
            raise CliError(f"{run}: no glm_config.yaml (not a glm run folder)")
        config = load_config(cfg_file)
        model = build_model(config)
        try:
            apply_adapter_chain(model, run)
        except (CheckpointError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from None
        data = prepare_data(config)
        panel = embedding_panel(model, eval_samples(config, data, args.split), fewshot_samples(config, data),
                                make_collator(config, model, data), args.stage, args.method, run.name, args.split)
        print(f"{run}: {panel['stage']} silhouette ({args.split}, cosine) "
              + ("n/a" if panel["silhouette"] is None else f"{panel['silhouette']:.4f}"))
        panels.append(panel)
    out = Path(args.output) if args.output else Path(run_dirs[-1]) / f"embeddings_{panels[-1]['stage']}_{args.split}.png"
    plot_maps(panels, out)
    print(out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Each backend runs in its own process (clean peak-RSS numbers); the table comes at the end."""
    from glm.core.config import ConfigError
    from glm.demo import DemoResult, format_table, run_demo
    from glm.plugins.manager import get_registry

    backends = ["pyg", "gammagl"] if args.backend == "both" else [args.backend]
    draws = args.draws if args.draws is not None else (1 if args.quick else 3)
    if draws < 1:
        raise CliError(f"demo: --draws must be >= 1, found {draws}")
    registry = get_registry()
    for b in backends:
        if b not in registry.backends or not registry.backends[b].available:
            raise CliError(f"demo: backend {b!r} is not available (glm backends lists what is installed)")
    if len(backends) == 1 and os.environ.get("GLM_DEMO_CHILD") == "1":
        try:
            row = run_demo(backends[0], args.quick, args.output_dir, args.overrides, baseline=not args.no_baseline,
                           draws=draws)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        if args.json:
            Path(args.json).write_text(json.dumps([row.as_dict()], indent=1), encoding="utf-8")
        print(format_table([row]))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, b in enumerate(backends):  # the backends agree bit for bit: the extra draws run on the first
            out = Path(tmp) / f"{b}.json"
            cmd = [sys.executable, "-m", "glm.cli.main", "demo", "--backend", b, "--json", str(out),
                   "--draws", str(draws if i == 0 else 1)]
            cmd += (["--quick"] if args.quick else []) + (["--no-baseline"] if args.no_baseline else [])
            cmd += (["--output-dir", args.output_dir] if args.output_dir else []) + list(args.overrides)
            print(f"== demo on backend {b}", flush=True)
            proc = subprocess.run(cmd, env={**os.environ, "GLM_DEMO_CHILD": "1"})
            if proc.returncode != 0:
                raise CliError(f"demo on backend {b!r} failed (exit code {proc.returncode})")
            rows += [DemoResult(**r) for r in json.loads(out.read_text(encoding="utf-8"))]
    print()
    print(format_table(rows))
    _keep_for_bench(args, rows)
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in rows], indent=1), encoding="utf-8")
    return 0


def _keep_for_bench(args: argparse.Namespace, rows: list) -> None:
    """Keep each backend's pre-trained graph side in the bench's cache (``glm bench fewshot`` / ``generation``
    with ``--pretrain-config examples/demo_pretrain.yaml`` reuse it instead of pre-training GraphLAMA again)."""
    from glm.bench.method_rows import adopt_pretrained
    from glm.demo import demo_configs

    for row in rows:
        pre, _ = demo_configs(args.quick, row.backend, args.output_dir, args.overrides)
        kept = adopt_pretrained(pre, Path(pre.training.output_dir), row.pretrain_seconds)
        if kept is not None:
            print(f"demo: the pre-trained graph side ({row.backend}) is kept for glm bench in {kept}")
