"""``glm bench fewshot`` (every baseline and method side by side) and ``glm bench generation`` (title generation)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from glm.cli.common import CliError, IntermixedParser, add_backend_argument

QUICK = ("training.max_steps=8", "data.test_per_class=10")
QUICK_SEEDS = 3


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="benchmarks: `glm bench fewshot CONFIG` (every baseline side by side), "
                                            "`glm bench generation CONFIG` (title generation), "
                                            "`glm bench choose FOLDER ...` (settings from validation reports)")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    f = sub.add_parser("fewshot", help="all rows on the config's few-shot split, over seeds: markdown, JSON, PNG")
    f.__class__ = IntermixedParser  # key=value overrides may follow options, as in glm pretrain
    f.add_argument("config", help="YAML run configuration (e.g. examples/demo_pretrain.yaml)")
    f.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    _adapt_config_argument(f, "examples/demo_adapt.yaml", "graphgpt=examples/demo_adapt_gate.yaml",
                           "graphlama:training.learning_rate=1e-3")
    f.add_argument("--pretrain-config", help="pre-train the methods with this config, on its own graph (the transfer "
                                             "setting: CONFIG has data.split=new_graph; e.g. "
                                             "examples/transfer_pretrain.yaml)")
    f.add_argument("--seeds", type=int, default=None,
                   help=f"k-shot draws (seed 0 = the config's split; default 5, {QUICK_SEEDS} with --quick)")
    f.add_argument("--rows", help="comma-separated rows (default: all; `--rows list` prints them)")
    add_backend_argument(f)
    f.add_argument("--output-dir", help="where runs, row results and the report go (default runs/bench/<config>)")
    f.add_argument("--force", action="store_true", help="recompute rows already computed for this config")
    f.add_argument("--quick", action="store_true",
                   help=f"a short version ({' '.join(QUICK)}, {QUICK_SEEDS} seeds) to check the set-up, "
                        "not to compare")
    f.add_argument("--split", choices=("test", "val"), default="test",
                   help="score every row on the test nodes (default) or on the validation nodes, to choose "
                        "settings without looking at the test nodes (bench-val.md, rows-val/)")
    f.add_argument("--shots", metavar="K,K,...",
                   help="one bench per k (data.k_shot; under k<K>/ in the output dir) and every row's accuracy "
                        "against k: curve.md, curve.json, curve.png")
    f.add_argument("--generate", action="store_true",
                   help="method rows also decode their answers and report accuracy under every answer parser "
                        "(exact, substring, graphlama, graphgpt, llaga) with the unmatched count, side by side")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.set_defaults(func=cmd_fewshot)

    g = sub.add_parser("generation", help="title generation: every baseline and method on the same test nodes, "
                                          "BLEU / ROUGE / GraphLAMA's BLEU, example outputs")
    g.__class__ = IntermixedParser
    g.add_argument("config", help="a title-generation config (data.task: title_generation; "
                                  "e.g. examples/title_generation.yaml)")
    g.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    g.add_argument("--pretrain-config", help="pre-train the methods with this config (default: CONFIG)")
    _adapt_config_argument(g, "a copy of CONFIG with other training settings", "graphgpt=PATH",
                           "graphgpt:training.max_steps=10")
    g.add_argument("--draws", type=int, default=1, help="draws of the training examples (default 1)")
    g.add_argument("--rows", help="comma-separated rows (default: all; `--rows list` prints them)")
    g.add_argument("--output-dir", help="default runs/bench/<config>")
    g.add_argument("--force", action="store_true", help="recompute rows already computed")
    g.add_argument("--split", choices=("test", "val"), default="test",
                   help="score every row on the test nodes (default) or on data.generation.val's nodes, to choose "
                        "settings without looking at the test nodes (bench-val.md, rows-val/)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.set_defaults(func=cmd_generation)

    c = sub.add_parser("choose", help="pick one of several candidate settings from their validation reports "
                                      "(bench-val.json of `glm bench ... --split val`)")
    c.add_argument("folders", nargs="+", metavar="FOLDER", help="bench output folders, one per candidate setting")
    c.add_argument("--row", required=True, help="the row to choose for (e.g. graphlama)")
    c.add_argument("--metric", help="default: accuracy (few-shot), rouge1 (generation)")
    c.add_argument("--rule", default="best", choices=("best", "within-se"),
                   help="best (default): the highest mean; within-se: the cheapest within one standard error of "
                        "the best, paired by draw (for candidates that differ in cost; run them on idle cores)")
    c.set_defaults(func=cmd_choose)


def cmd_choose(args: argparse.Namespace) -> int:
    from glm.bench.choose import choose, markdown, read_candidate

    read = [read_candidate(f, args.row, args.metric) for f in args.folders]
    metrics = {m for _, m in read}
    if len(metrics) > 1:
        raise CliError(f"the reports are of different kinds (metrics {sorted(metrics)}); give --metric")
    candidates = [c for c, _ in read]
    chosen = choose(candidates, args.rule)
    print(markdown(candidates, chosen, args.row, metrics.pop(), args.rule))
    return 0


def _adapt_config_argument(p: argparse.ArgumentParser, example: str, one_method: str, one_change: str) -> None:
    p.add_argument("--adapt-config", action="append", default=[], metavar="[METHOD=]PATH",
                   help=f"adapt the method rows with this config's training section and model.stage_extra "
                        f"(e.g. {example}; default: CONFIG's); METHOD=PATH for one method ({one_method}), "
                        f"repeatable")
    p.add_argument("--adapt-set", action="append", default=[], metavar="[METHOD:]KEY=VALUE",
                   help=f"change one adaptation setting (training.* or model.stage_extra) of every method row, or of "
                        f"one method ({one_change}), on top of its --adapt-config (or CONFIG); repeatable. Unlike "
                        f"key=value overrides, it does not reach pre-training")


def cmd_generation(args: argparse.Namespace) -> int:
    from glm.core.config import load_config
    from glm.bench.generation import all_rows, prepare, run_rows, write_report
    from glm.core.train.outdir import RunLock

    if args.rows == "list":
        for name, spec in all_rows().items():
            print(f"{name:<18} {spec.description}")
        return 0
    if args.draws < 1:
        raise CliError(f"--draws must be >= 1, found {args.draws}")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else list(all_rows())
    out = Path(args.output_dir or Path("runs") / "bench" / Path(args.config).stem)
    t0 = time.perf_counter()
    with RunLock(out):
        config = load_config(args.config, list(args.overrides))
        pretrain = load_config(args.pretrain_config, list(args.overrides)) if args.pretrain_config else None
        adapt = adapt_settings(args.adapt_config, list(args.overrides), args.adapt_set, args.config)
        bench = prepare(config, out, pretrain, progress=not args.no_progress, force=args.force, split=args.split,
                        overrides=args.overrides, adapt=adapt, config_path=args.config)
        results = run_rows(bench, rows, args.draws, log=lambda line: print(line, file=sys.stderr))
        paths = write_report(bench, results, args.draws)
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"bench generation: {len(rows)} rows x {args.draws} draw(s) in {time.perf_counter() - t0:.0f} s -> "
          + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_fewshot(args: argparse.Namespace) -> int:
    from glm.bench.fewshot import all_rows

    if args.rows == "list":
        for name, spec in all_rows().items():
            print(f"{name:<22} {spec.description}")
        return 0
    if args.seeds is None:
        args.seeds = QUICK_SEEDS if args.quick else 5
    if args.seeds < 1:
        raise CliError(f"--seeds must be >= 1, found {args.seeds}")
    overrides = list(args.overrides) + (list(QUICK) if args.quick else [])
    if args.backend:
        overrides.append(f"backend={args.backend}")
    out = Path(args.output_dir or Path("runs") / "bench" / (Path(args.config).stem + ("-quick" if args.quick else "")))
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else list(all_rows())
    from glm.core.train.outdir import RunLock

    with RunLock(out):  # a second bench on this folder stops here, naming the first
        return _run(args, overrides, rows, out)


def _run(args: argparse.Namespace, overrides: list[str], rows: list[str], out: Path) -> int:
    from glm.bench.curve import write_curve
    from glm.bench.fewshot import report_title

    t0 = time.perf_counter()
    if not args.shots:
        paths = _bench(args, overrides, rows, out)[1]
        print(paths["markdown"].read_text(encoding="utf-8"))
        print(f"bench: {len(rows)} rows x {args.seeds} seeds in {time.perf_counter() - t0:.0f} s -> "
              + ", ".join(str(p) for p in paths.values()))
        return 0
    shots = _shots(args.shots)
    summaries = {}
    for k in shots:
        summaries[k], paths, ctx = _bench(args, overrides, rows, out / f"k{k}", shots=k)
    paths = write_curve(out, summaries, report_title(ctx, args.seeds, shots="k-shot"), args.split)
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"bench: {len(rows)} rows x {args.seeds} seeds x k in {args.shots} in {time.perf_counter() - t0:.0f} s -> "
          + ", ".join(str(p) for p in paths.values()))
    return 0


def _shots(text: str) -> list[int]:
    try:
        shots = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        shots = []
    if not shots or min(shots) < 1 or len(set(shots)) != len(shots):
        raise CliError(f"--shots: expected distinct k >= 1 separated by commas (1,2,5), found {text!r}")
    return sorted(shots)


def _bench(args: argparse.Namespace, overrides: list[str], rows: list[str], out: Path, shots: Optional[int] = None):
    """Run ``rows`` on CONFIG with ``overrides`` into ``out``: ``(summary, report paths, bench context)``.
    ``shots``: ``data.k_shot`` of CONFIG (and of the adaptation), not of ``--pretrain-config``: pre-training
    never reads the held-out classes' k, so one pre-trained run serves every k (``method_rows``)."""
    from glm.core.config import load_config
    from glm.bench.fewshot import BenchContext, run_rows, summarise, write_report
    from glm.bench.method_rows import BenchRun
    from glm.core.train.pipeline import prepare_data

    pretrain = load_config(args.pretrain_config, overrides) if args.pretrain_config else None
    overrides = [*overrides, f"data.k_shot={shots}"] if shots is not None else overrides
    config = load_config(args.config, overrides)
    adapt = adapt_settings(args.adapt_config, overrides, args.adapt_set, args.config)
    ctx = BenchContext(config, prepare_data(config, progress=not args.no_progress), out,
                       progress=not args.no_progress, adapt=adapt, pretrain_config=pretrain,
                       split=args.split, generate=args.generate, run=BenchRun(tuple(overrides), config=args.config))
    results = run_rows(ctx, rows, args.seeds, args.force, log=lambda line: print(line, file=sys.stderr))
    return summarise(results), write_report(ctx, results, args.seeds), ctx


ADAPT_KEYS = ("training.", "model.stage_extra")  # what --adapt-set reaches: the adaptation's own settings


def adapt_settings(entries: list[str], overrides: list[str], changes: Sequence[str] = (),
                   config: Optional[str] = None) -> dict[str, Any]:
    """``--adapt-config [METHOD=]PATH`` and ``--adapt-set [METHOD:]KEY=VALUE`` entries -> ``{method or "":
    AdaptSettings}``. A method's settings are its file (else the default file, else ``config``: CONFIG)
    loaded with the bench's ``overrides``, then the changes for every method, then its own."""
    from glm.core.config import load_config
    from glm.bench.settings import AdaptSettings
    from glm.plugins import get_registry

    methods = get_registry().methods
    files: dict[str, str] = {}
    for entry in entries:
        method, sep, path = entry.partition("=")
        if not sep or "/" in method or method.endswith((".yaml", ".yml")):
            method, path = "", entry
        else:
            _known_method("--adapt-config", entry, method, methods)
        if method in files:
            raise CliError(f"--adapt-config: {'METHOD=' + method if method else 'a default'} given twice")
        files[method] = path
    sets = _adapt_changes(changes, methods)
    found: dict[str, Any] = {}
    for method in sorted({*files, *sets}):
        path = files.get(method) or files.get("") or config
        if path is None:
            raise CliError("--adapt-set needs the bench's CONFIG to change")
        mine = sets.get("", []) + (sets.get(method, []) if method else [])
        found[method] = AdaptSettings.from_config(load_config(path, [*overrides, *mine]), path, mine)
    return found


def _adapt_changes(changes: Sequence[str], methods: Any) -> dict[str, list[str]]:
    """``[METHOD:]KEY=VALUE`` entries by method (``""``: every method); only the adaptation's keys."""
    found: dict[str, list[str]] = {}
    for entry in changes:
        method, sep, change = entry.partition(":")
        if not sep or "=" in method:  # no METHOD: (a value may hold a colon: lr_groups={"encoder.*": 1e-3})
            method, change = "", entry
        else:
            _known_method("--adapt-set", entry, method, methods)
        key, eq, _ = change.partition("=")
        if not eq or not key.strip().startswith(ADAPT_KEYS):
            raise CliError(f"--adapt-set {entry}: expected [METHOD:]training.KEY=VALUE or [METHOD:]model.stage_extra"
                           f"=[...] (only the adaptation's settings; other keys are CONFIG's overrides), "
                           f"found {change!r}")
        found.setdefault(method, []).append(change)
    return found


def _known_method(option: str, entry: str, method: str, methods: Any) -> None:
    if method not in methods:
        raise CliError(f"{option} {entry}: unknown method {method!r}; known: {', '.join(sorted(methods))}")
