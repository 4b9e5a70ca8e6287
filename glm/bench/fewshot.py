"""``glm bench fewshot``: every baseline and method on the same test nodes, k-shot draws and features.

Rows (:func:`all_rows`): the baselines (:data:`BASELINE_ROWS`: chance and majority; a linear probe and
SGC on the node features; GNN-only (one per built-in layer, glm.core.layouts) trained on the shots' subgraphs; the LLM
zero-shot and with the shots in context (ICL)), then every registered method's rows, a plugin's too:
pre-trained and adapted, plus its ``MethodSpec.bench_variants`` (GraphLAMA: adapted from a random graph
side, the official ablation, and pre-trained without adaptation).

Seeds: seed 0 uses the split of the config (``data.seed``); seed ``s > 0`` redraws the k shots per
held-out class from the nodes outside the test and validation sets. The test nodes never change.
Pre-training runs once per method (it does not see the held-out classes); adaptation runs per seed.

Every (row, seed) result is stored as JSON under ``<out>/rows/`` with the hash of the resolved
configuration; a rerun (or a killed bench) reuses finished rows unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import textwrap
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from glm.bench.answers import parsers_markdown, parsers_mean
from glm.bench.baselines import RowResult, chance_and_majority, gnn_supervised, linear_probe, sgc_probe
from glm.bench.method_rows import BenchRun, note_pretraining
from glm.bench.settings import (AdaptSettings, BenchError, adapt_of, adapt_report, config_hash, store_result,
                                stored_result)
from glm.core.eval.metrics import accuracy, macro_f1
from glm.core.io import atomic_write_text
from glm.core.layouts import LAYOUTS

GNN_LAYERS = tuple(LAYOUTS)  # every built-in layer name (glm.core.layouts)


@dataclass
class BenchContext:
    """Everything the rows share: config, data, the held-out task and where to write."""

    config: Any
    data: Any  # glm.core.train.pipeline.DataBundle
    out: Path
    progress: bool = True
    adapt: dict[str, AdaptSettings] = field(default_factory=dict)  # by method, "" for the rest (default: CONFIG's)
    pretrain_config: Any = None  # pre-train the methods on this config's graph (transfer; default: the config)
    split: str = "test"  # the nodes every row is scored on: test, or val to choose settings
    generate: bool = False  # method rows also decode answers, read by every answer parser (glm.bench.answers)
    force: bool = False  # recompute rows and pre-train the methods again (once per run)
    run: BenchRun = field(default_factory=BenchRun)  # overrides, pre-training done or reused by this run
    _llm: Any = None

    @property
    def tag(self):
        return self.data.tag

    @property
    def choices(self) -> list[str]:
        return list(self.data.split.heldout_classes)

    @property
    def test(self) -> list[int]:
        """The nodes every row is scored on (``split``: the test nodes, or the validation nodes)."""
        return list(self.data.split.val if self.split == "val" else self.data.split.test)

    @property
    def suffix(self) -> str:
        """``""`` for test scores, ``"-val"`` for validation scores (``rows-val/``, ``bench-val.md``)."""
        return "" if self.split == "test" else f"-{self.split}"

    def adapt_for(self, method: str) -> Optional[AdaptSettings]:
        """The adaptation settings of ``method``: its own, else the default, else ``None`` (the config's)."""
        return adapt_of(self.adapt, method)

    def config_hash(self) -> str:
        """Hash of the whole bench's settings (``bench.json``)."""
        first = config_hash(self.config, self.adapt.get(""), self.pretrain_config)
        own = [f"{m}:{config_hash(self.config, a, self.pretrain_config)}" for m, a in sorted(self.adapt.items()) if m]
        return hashlib.sha256(" ".join([first, *own]).encode()).hexdigest()[:16] if own else first

    def row_hash(self, spec: RowSpec) -> str:
        """Hash of what changes ``spec``'s numbers: a method row's adaptation and pre-training settings
        count, other rows see the config alone."""
        if spec.method is None:
            return config_hash(self.config)
        digest = config_hash(self.config, self.adapt_for(spec.method), self.pretrain_config)
        return f"{digest}+generate" if self.generate else digest

    def label_index(self, nodes: Sequence[int]) -> list[int]:
        names = [self.tag.class_names[int(self.tag.labels[n])] for n in nodes]
        return [self.choices.index(n) for n in names]

    def shots(self, seed: int) -> list[int]:
        """The k-shot training nodes of ``seed`` (seed 0: the config's split; :func:`redraw_shots`)."""
        from glm.core.data.errors import InsufficientNodesError
        from glm.core.data.splits import redraw_shots

        try:
            return redraw_shots(self.data.split, self.tag, seed)
        except InsufficientNodesError as exc:
            raise BenchError(str(exc)) from None

    def llm(self):
        if self._llm is None:
            from glm.core.llm import load_llm_from_config

            self._llm = load_llm_from_config(self.config.model.llm)
        return self._llm


# -- rows -------------------------------------------------------------------------------------------


def _feature_row(kind: str) -> Callable[[BenchContext, int], RowResult]:
    def run(ctx: BenchContext, seed: int) -> RowResult:
        shots = ctx.shots(seed)
        x = ctx.data.source.x if ctx.data.raw_x is None else ctx.data.raw_x  # before data.propagate
        if kind == "linear_probe":
            return linear_probe(x, shots, ctx.label_index(shots), ctx.test, seed)
        return sgc_probe(x, ctx.tag.edge_index, shots, ctx.label_index(shots), ctx.test, seed=seed)
    return run


def _gnn_row(layer: str) -> Callable[[BenchContext, int], RowResult]:
    def run(ctx: BenchContext, seed: int) -> RowResult:
        from glm.core.encoder import build_encoder
        from glm.core.factory import default_backend

        enc = replace(ctx.config.model.encoder, layer=layer, dropout=0.0)
        if layer == "gat":
            enc = replace(enc, heads=1)
        torch.manual_seed(seed)
        encoder = build_encoder(enc, default_backend(ctx.config.backend))
        shots = ctx.shots(seed)
        return gnn_supervised(encoder, enc.out_dim, ctx.data.source.subgraphs(shots), ctx.label_index(shots),
                              ctx.data.source.subgraphs(ctx.test), len(ctx.choices), seed)
    return run


def _text_row(icl: bool) -> Callable[[BenchContext, int], RowResult]:
    def run(ctx: BenchContext, seed: int) -> RowResult:
        from glm.bench import text_baselines as tb

        llm, tok = ctx.llm()
        words = ctx.config.data.max_text_words
        texts = [tb.node_text(ctx.data.source, n, words) for n in ctx.test]
        if icl:
            shots = ctx.shots(seed)
            demos = tb.demonstrations(ctx.data.source, shots, [ctx.choices[i] for i in ctx.label_index(shots)],
                                      seed, words)
            template = ctx.data.source.template
            prompts = [tb.icl_prompt(demos, t, ctx.choices, template) for t in texts]
            free = tb.icl_prompt(demos, tb.CONTENT_FREE, ctx.choices, template)
        else:
            template = ctx.data.source.template
            prompts = [tb.zero_shot_prompt(t, ctx.choices, template) for t in texts]
            free = tb.zero_shot_prompt(tb.CONTENT_FREE, ctx.choices, template)
        return tb.text_row(llm, tok, prompts, free, ctx.choices, ctx.config.eval.batch_size)
    return run


def _method_row(name: str, method: str, description: str, pretrain: bool = True, adapt: bool = True) -> RowSpec:
    def run(ctx: BenchContext, seed: int) -> RowResult:
        from glm.bench.method_rows import run_method

        return run_method(ctx, method, seed, pretrain=pretrain, adapt=adapt)
    return RowSpec(name, run, "method", description, per_seed=adapt, pretrains=pretrain, method=method, adapts=adapt)


@dataclass(frozen=True)
class RowSpec:
    name: str
    run: Optional[Callable[[BenchContext, int], RowResult]]
    group: str
    description: str
    per_seed: bool = True
    pretrains: bool = False  # runs a method's pre-training
    method: Optional[str] = None  # the method a method row trains
    adapts: bool = False  # adapts the method on the seed's shots


BASELINE_ROWS: dict[str, RowSpec] = {r.name: r for r in [
    RowSpec("chance", None, "trivial", "1 / n_way", per_seed=False),
    RowSpec("majority", None, "trivial", "always the largest test class", per_seed=False),
    RowSpec("linear_probe", _feature_row("linear_probe"), "features", "logistic regression on the node features"),
    RowSpec("sgc", _feature_row("sgc"), "features", "2-hop SGC propagation + logistic regression"),
    *[RowSpec(f"gnn_{layer}", _gnn_row(layer), "gnn", f"{layer} encoder + linear head on the shots' subgraphs")
      for layer in GNN_LAYERS],
    RowSpec("llm_zero_shot", _text_row(icl=False), "llm", "the LLM with the node text, no graph, no shots",
            per_seed=False),
    RowSpec("llm_icl", _text_row(icl=True), "llm", "the LLM with the k shots as demonstrations"),
]}


def method_rows() -> dict[str, RowSpec]:
    """The rows of every registered method, a plugin's too (by name): its ``bench_variants``, then the
    method pre-trained and adapted."""
    from glm.plugins import get_registry

    found: dict[str, RowSpec] = {}
    for name, spec in sorted(get_registry().methods.items()):
        for v in spec.bench_variants:
            found[f"{name}_{v.suffix}"] = _method_row(f"{name}_{v.suffix}", name, f"{name}: {v.description}",
                                                      pretrain=v.pretrain, adapt=v.adapt)
        found[name] = _method_row(name, name, f"{name} pre-trained and adapted: {spec.description}")
    return found


def all_rows() -> dict[str, RowSpec]:
    """Every row, in table order: the baselines, then the methods' rows."""
    return {**BASELINE_ROWS, **method_rows()}


# -- running ----------------------------------------------------------------------------------------


@dataclass
class RowSeed:
    row: str
    seed: int
    accuracy: float
    macro_f1: float
    calibrated_accuracy: Optional[float]
    test_nodes: int
    trainable_params: int
    adapter_bytes: Optional[int]
    train_seconds: float
    infer_seconds_per_node: float
    predicted_share: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


def score(ctx: BenchContext, row: str, seed: int, result: RowResult) -> RowSeed:
    truth = ctx.label_index(ctx.test)
    names = ctx.choices
    counts = {c: 0 for c in names}
    for p in result.predictions:
        counts[names[p]] += 1
    return RowSeed(row, seed, accuracy(list(result.predictions), truth),
                   macro_f1([names[p] for p in result.predictions], [names[t] for t in truth], names),
                   None if result.calibrated is None else accuracy(list(result.calibrated), truth), len(truth),
                   result.trainable_params, result.adapter_bytes, result.train_seconds,
                   result.infer_seconds / max(len(truth), 1),
                   {c: n / len(truth) for c, n in counts.items()}, result.extra)


def _trivial(ctx: BenchContext, row: str) -> RowSeed:
    truth = ctx.label_index(ctx.test)
    chance, majority = chance_and_majority(truth, len(ctx.choices))
    value = chance if row == "chance" else majority
    return RowSeed(row, 0, value, float("nan"), None, len(truth), 0, None, 0.0, 0.0, {}, {})


def run_rows(ctx: BenchContext, rows: Sequence[str], seeds: int, force: bool = False,
             log: Callable[[str], None] = print) -> list[RowSeed]:
    """Compute (or reuse) every ``(row, seed)``; return them all."""
    table = all_rows()
    unknown = [r for r in rows if r not in table]
    if unknown:
        raise BenchError(f"unknown rows {unknown}; known: {', '.join(table)}")
    _check_request(ctx, rows, seeds, log)
    ctx = replace(ctx, force=force or ctx.force)
    ctx.run.checked.clear()  # a new run: --force pre-trains each method once in it
    results: list[RowSeed] = []
    for name in rows:
        spec = table[name]
        digest = ctx.row_hash(spec)
        todo = range(seeds) if spec.per_seed else range(1)
        bar = _progress(todo, name, ctx.progress)
        for seed in bar:
            path = ctx.out / f"rows{ctx.suffix}" / name / f"seed-{seed}.json"
            saved = stored_result(path, digest, ctx.force)
            if saved is not None:
                results.append(RowSeed(**saved))
                if spec.pretrains:
                    note_pretraining(ctx, spec.method)  # the row's cost includes its pre-training
                continue
            found = _trivial(ctx, name) if spec.run is None else score(ctx, name, seed, spec.run(ctx, seed))
            store_result(path, digest, asdict(found))
            results.append(found)
        log(f"{name}: done")
    return results


def _check_request(ctx: BenchContext, rows: Sequence[str], seeds: int = 1,
                   log: Callable[[str], None] = print) -> None:
    """Refuse what the split cannot score: nothing held out, no validation nodes for ``split="val"``,
    a new graph whose methods would pre-train on it, or several "draws" that would all use the same shots."""
    from glm.core.data.splits import shot_pools

    split = ctx.config.data.split
    if not ctx.data.split.heldout_classes:
        raise BenchError(f"data.split={split}: {ctx.tag.name} holds no class out to score; bench a heldout or "
                         "new_graph config (a pre-training graph goes to --pretrain-config)")
    k = ctx.data.split.k_shot
    if seeds > 1 and all(n <= k for n in shot_pools(ctx.data.split, ctx.tag).values()):
        raise BenchError(f"--seeds {seeds}: every draw would use the same shots: each held-out class has only its "
                         f"{k} shots outside the test and validation nodes (data.test_per_class: "
                         f"{ctx.config.data.test_per_class}); cap data.test_per_class so the shots can vary, or use "
                         "--seeds 1")
    if ctx.split == "val" and not ctx.data.split.val:
        raise BenchError("--split val: the split has no validation nodes; set data.val_per_class")
    table = all_rows()
    pretraining = [r for r in rows if table[r].pretrains]
    if split == "new_graph" and ctx.pretrain_config is None and pretraining:
        raise BenchError(f"data.split=new_graph: rows {pretraining} cannot pre-train on the new graph; "
                         "pass --pretrain-config with a config of the pre-training graph")
    from glm.bench.method_rows import check_adaptation

    for method in dict.fromkeys(table[r].method for r in rows if table[r].adapts):
        check_adaptation(ctx, method, log)


def _progress(items: range, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


# -- reporting --------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v == v]  # drop NaN
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.pstdev(vals) if len(vals) > 1 else 0.0


def _extra_mean(rs: Sequence[RowSeed], key: str) -> Optional[float]:
    """Mean of ``key`` over the seeds whose row reported it (``None``: none did)."""
    found = [r.extra[key] for r in rs if key in r.extra]
    return _mean_std(found)[0] if found else None


def summarise(results: Sequence[RowSeed]) -> list[dict[str, Any]]:
    """One summary dict per row, in :func:`all_rows` order."""
    table = all_rows()
    by_row: dict[str, list[RowSeed]] = {}
    for r in results:
        by_row.setdefault(r.row, []).append(r)
    icl = by_row.get("llm_icl")
    icl_time = statistics.fmean(r.infer_seconds_per_node for r in icl) if icl else None
    out = []
    for name in [n for n in table if n in by_row]:
        rs = by_row[name]
        acc, acc_sd = _mean_std([r.accuracy for r in rs])
        f1, f1_sd = _mean_std([r.macro_f1 for r in rs])
        cal = [r.calibrated_accuracy for r in rs if r.calibrated_accuracy is not None]
        cal_m, cal_sd = _mean_std(cal) if cal else (None, None)
        per_node = statistics.fmean(r.infer_seconds_per_node for r in rs)
        share = max((max(r.predicted_share.values()) for r in rs if r.predicted_share), default=None)
        out.append({
            "row": name, "description": table[name].description, "seeds": len(rs),
            "accuracy": acc, "accuracy_std": acc_sd, "macro_f1": f1, "macro_f1_std": f1_sd,
            "calibrated_accuracy": cal_m, "calibrated_accuracy_std": cal_sd, "test_nodes": rs[0].test_nodes,
            "trainable_params": rs[0].trainable_params, "adapter_bytes": rs[0].adapter_bytes,
            "train_seconds": statistics.fmean(r.train_seconds for r in rs), "infer_seconds_per_node": per_node,
            # an LLM row's inference time against ICL's (feature and GNN rows take microseconds: no ratio)
            "icl_time_ratio": (icl_time / per_node) if icl_time and per_node > 0 and table[name].group in
            ("llm", "method") else None,
            "max_predicted_share": share,
            "token_probe": _extra_mean(rs, "token_probe"),
            "encoder_probe": _extra_mean(rs, "encoder_probe"),
            "shot_accuracy": _extra_mean(rs, "shot_accuracy"),
            **({"parsers": parsers_mean(rs)} if any("parsers" in r.extra for r in rs) else {}),
        })
    return out


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    head = ("| row | accuracy | macro-F1 | calibrated acc. | test nodes | trainable | adapter bytes | train s "
            "| infer s/node | ICL time / row | top class share | on the shots | probe: encoder / token |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summary:
        pm = lambda m, sd: f"{_fmt(m)} ± {_fmt(sd)}" if m is not None and m == m else "–"  # noqa: E731
        lines.append(
            f"| {s['row']} | {pm(s['accuracy'], s['accuracy_std'])} | {pm(s['macro_f1'], s['macro_f1_std'])} | "
            f"{pm(s['calibrated_accuracy'], s['calibrated_accuracy_std'])} | {s['test_nodes']} | "
            f"{_fmt(s['trainable_params'], ',')} | {_fmt(s['adapter_bytes'], ',')} | {_fmt(s['train_seconds'], '.1f')} | "
            f"{_fmt(s['infer_seconds_per_node'], '.4f')} | {_fmt(s['icl_time_ratio'], '.1f')} | "
            f"{_fmt(s['max_predicted_share'], '.2f')} | {_fmt(s.get('shot_accuracy'))} | {_probes(s)} |")
    return "\n".join(lines)


def _probes(s: dict[str, Any]) -> str:
    """``encoder / token`` probe of a method row (``–`` where the row has none)."""
    if s.get("token_probe") is None:
        return "–"
    return f"{_fmt(s.get('encoder_probe'))} / {_fmt(s['token_probe'])}"


def plot(summary: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Bars of mean accuracy with std error bars, one per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in summary if s["accuracy"] == s["accuracy"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows)), 4))
    ax.bar(range(len(rows)), [s["accuracy"] for s in rows], yerr=[s["accuracy_std"] or 0 for s in rows], capsize=3)
    ax.set_xticks(range(len(rows)), [s["row"] for s in rows], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report_title(ctx: BenchContext, seeds: int, shots: Optional[str] = None) -> str:
    """The report's one-line description; ``shots`` replaces the ``<k>-shot`` part (``"k-shot"`` for a curve)."""
    from glm.core.llm import llm_label

    split = ctx.data.split
    pre = "" if ctx.pretrain_config is None else (
        f" (methods pre-trained on {ctx.pretrain_config.data.options.get('name') or ctx.pretrain_config.data.dataset})")
    return (f"{split.dataset}: {split.n_way}-way {shots or f'{split.k_shot}-shot'} on "
            f"{', '.join(split.heldout_classes)}{pre}; {len(ctx.test)} "
            f"{'validation' if ctx.split == 'val' else 'test'} nodes, {seeds} seeds; "
            f"LLM {llm_label(ctx.config.model.llm)}")


def write_report(ctx: BenchContext, results: Sequence[RowSeed], seeds: int) -> dict[str, Path]:
    summary = summarise(results)
    title = report_title(ctx, seeds)
    adapted = "; ".join(f"{m or 'methods'}: {a.label}" + (f" (stage_extra {list(a.stage_extra)})" if a.stage_extra
                                                            else "") for m, a in sorted(ctx.adapt.items()))
    from glm.bench.method_rows import without_align

    table = all_rows()
    methods = list(dict.fromkeys(table[s["row"]].method for s in summary if table[s["row"]].pretrains))
    unaligned = without_align(ctx, methods)
    notes = ([f"Adapted with {adapted}."] if adapted else []) + (
        [f"Pre-trained without the training.align warm-up (k soft tokens per graph): {', '.join(unaligned)}."]
        if unaligned else [])
    md = f"# Few-shot bench\n\n{title}\n\n" + "".join(f"{n}\n\n" for n in notes) + f"{markdown_table(summary)}\n"
    if any("parsers" in s for s in summary):
        md += f"\n{parsers_markdown(summary)}\n"
    paths = {kind: ctx.out / f"bench{ctx.suffix}.{ext}" for kind, ext in (("markdown", "md"), ("json", "json"),
                                                                         ("png", "png"))}
    atomic_write_text(md, paths["markdown"])
    atomic_write_text(json.dumps({"title": title, "config_hash": ctx.config_hash(), **ctx.run.as_dict(),
                                  **adapt_report(ctx.adapt),
                                  "pretrained_without_align": unaligned, "summary": summary,
                                  "results": [asdict(r) for r in results]}, indent=1, default=str), paths["json"])
    plot(summary, paths["png"], title)
    return paths


def elapsed(t0: float) -> str:
    return f"{time.perf_counter() - t0:.0f} s"
