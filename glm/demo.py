"""The end-to-end demo: pre-train -> few-shot adapt -> evaluate, on one backend.

Configs: ``examples/demo_pretrain.yaml`` and ``examples/demo_adapt.yaml`` (``*_quick.yaml``
for ``--quick``). Measured per backend:

* accuracy / macro-F1 on the held-out classes' test nodes after adaptation, and with ``draws > 1``
  the mean ± std over that many k-shot draws (draw 0 is the config's split; the others redraw the
  shots outside the test and validation nodes, as ``glm bench fewshot`` does), each adapted from
  the same pre-trained graph side -- whether adaptation's gain stands above the draw-to-draw noise;
* honest baselines on the same nodes: the pre-trained model before adaptation
  ("no adaptation", the held-out classes were never trained on) and chance (``1 / n_way``;
  the k-shot set is balanced, so the majority-class baseline equals chance);
* adapter sizes (adaptation adapter, pre-trained graph side), train and inference times,
  peak RSS of the process, and the process's CPU time (wall time alone misleads on a shared machine).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from glm.core.config import ConfigError, RunConfig, load_config
from glm.core.train.log import peak_rss_mb

logger = logging.getLogger("glm.train")


def examples_dir() -> Path:
    """The example configs, shipped inside the package (``glm/examples``; ``examples/`` in a checkout links to it)."""
    return Path(__file__).resolve().parent / "examples"


@dataclass
class DemoResult:
    backend: str
    heldout_classes: list[str]
    k_shot: int
    test_nodes: int
    accuracy: float
    macro_f1: float
    accuracy_before_adapt: Optional[float]
    chance: float
    adapter_bytes: int
    adapter_params: int
    pretrain_adapter_bytes: int
    pretrain_params: int
    pretrain_seconds: float
    adapt_seconds: float
    infer_seconds: float
    total_seconds: float
    peak_rss_mb: float
    final_pretrain_loss: Optional[float]
    final_adapt_loss: Optional[float]
    cpu_seconds: Optional[float] = None  # process CPU time (all threads) of the whole row
    confusion_png: Optional[str] = None  # per-class report of the adapted run (confusion.json beside it)
    embeddings_png: Optional[str] = None  # 2-D maps of the test nodes before / after adaptation
    silhouette_before: Optional[float] = None
    silhouette_after: Optional[float] = None
    draw_accuracies: Optional[list[float]] = None  # one per k-shot draw (the first is ``accuracy``)

    def as_dict(self) -> dict:
        return asdict(self)


def demo_configs(quick: bool, backend: str, output_root: Optional[str] = None,
                 overrides: Sequence[str] = ()) -> tuple[RunConfig, RunConfig]:
    folder = examples_dir()
    suffix = "_quick" if quick else ""
    files = [folder / f"demo_pretrain{suffix}.yaml", folder / f"demo_adapt{suffix}.yaml"]
    for f in files:
        if not f.is_file():
            raise ConfigError(f"demo config {f.name} not found in {folder} (run the demo from a source checkout)")
    root = Path(output_root) if output_root else Path("runs") / ("demo-quick" if quick else "demo")
    pre_dir, adapt_dir = root / backend / "pretrain", root / backend / "adapt"
    common = [f"backend={backend}", *overrides]
    pre = load_config(files[0], [*common, f"training.output_dir={pre_dir}"])
    adapt = load_config(files[1], [*common, f"training.output_dir={adapt_dir}", f"training.init_from={pre_dir}"])
    if pre.data != adapt.data:
        raise ConfigError(f"{files[0].name} and {files[1].name}: the data sections differ; they must describe one split")
    return pre, adapt


def run_demo(backend: str, quick: bool = False, output_root: Optional[str] = None,
             overrides: Sequence[str] = (), progress: bool = True, baseline: bool = True,
             draws: int = 1) -> DemoResult:
    """Run the demo on ``backend`` in this process; return the measured row."""
    from glm.core.eval.predict import evaluate
    from glm.core.train.pipeline import eval_samples, fewshot_samples, make_collator, run_stage

    t_start, cpu_start = time.perf_counter(), time.process_time()
    pre_cfg, adapt_cfg = demo_configs(quick, backend, output_root, overrides)
    pre_res, model, data = run_stage(pre_cfg, progress=progress)
    test = eval_samples(adapt_cfg, data, "test")
    train_collate = make_collator(adapt_cfg, model, data)
    infer_collate = make_collator(adapt_cfg, model, data, inference=True)
    ev = adapt_cfg.eval
    from glm.core.eval.embeddings import embedding_panel, plot_maps

    shots = fewshot_samples(adapt_cfg, data)
    panel_before = embedding_panel(model, test, shots, train_collate, title="pre-trained")
    before = None
    if baseline:
        before = evaluate(model, test, train_collate, infer_collate, mode="choice",
                          batch_size=ev.batch_size).accuracy
    adapt_res, model, _ = run_stage(adapt_cfg, progress=progress, model=model, data=data)
    result = _test_result(adapt_cfg, model, data, test)
    from glm.core.eval.report import report_of, write_confusion

    report = report_of(result, list(data.split.heldout_classes))
    _, confusion_png = write_confusion(report, adapt_res.output_dir, f"{backend}: {len(test)} test nodes, adapted")
    panel_after = embedding_panel(model, test, shots, make_collator(adapt_cfg, model, data), title="adapted")
    embeddings_png = adapt_res.output_dir / f"embeddings_{panel_after['stage']}_test.png"
    plot_maps([panel_before, panel_after], embeddings_png, f"{backend}: GraphLAMA before / after {data.split.k_shot}-shot adaptation")
    draw_accuracies = [result.accuracy] + [_adapt_draw(adapt_cfg, data, test, k, progress) for k in range(1, draws)]
    adapter = adapt_res.output_dir / "adapter_model.safetensors"
    pre_adapter = pre_res.output_dir / "adapter_model.safetensors"
    return DemoResult(
        backend=backend,
        heldout_classes=list(data.split.heldout_classes),
        k_shot=data.split.k_shot,
        test_nodes=len(test),
        accuracy=result.accuracy,
        macro_f1=result.macro_f1,
        accuracy_before_adapt=before,
        chance=1.0 / data.split.n_way,
        adapter_bytes=adapter.stat().st_size,
        adapter_params=adapt_res.trainable_params,
        pretrain_adapter_bytes=pre_adapter.stat().st_size,
        pretrain_params=pre_res.trainable_params,
        pretrain_seconds=pre_res.train_seconds,
        adapt_seconds=adapt_res.train_seconds,
        infer_seconds=result.seconds,
        total_seconds=time.perf_counter() - t_start,
        peak_rss_mb=peak_rss_mb(),
        final_pretrain_loss=pre_res.final_loss,
        final_adapt_loss=adapt_res.final_loss,
        cpu_seconds=time.process_time() - cpu_start,
        confusion_png=str(confusion_png),
        embeddings_png=str(embeddings_png),
        silhouette_before=panel_before["silhouette"],
        silhouette_after=panel_after["silhouette"],
        draw_accuracies=draw_accuracies,
    )


def _adapt_draw(adapt_cfg: RunConfig, data, test, draw: int, progress: bool) -> float:
    """Test accuracy after adapting the pre-trained graph side (``training.init_from``) on k-shot draw ``draw``."""
    import copy
    from dataclasses import replace

    from glm.core.data.splits import redraw_shots
    from glm.core.train.pipeline import run_stage

    cfg = copy.deepcopy(adapt_cfg)
    cfg.training.output_dir = str(Path(adapt_cfg.training.output_dir).with_name(f"adapt-draw{draw}"))
    shots = redraw_shots(data.split, data.tag, draw)
    drawn = replace(data, split=replace(data.split, train=shots))
    _, model, _ = run_stage(cfg, progress=progress, data=drawn)
    return _test_result(cfg, model, drawn, test).accuracy


def _test_result(cfg: RunConfig, model, data, test):
    """``glm eval``'s scores of the ``test`` samples with ``cfg.eval``'s settings."""
    from glm.core.eval.predict import evaluate
    from glm.core.train.pipeline import make_collator

    ev = cfg.eval
    return evaluate(model, test, make_collator(cfg, model, data), make_collator(cfg, model, data, inference=True),
                    mode=ev.mode, match=ev.match, batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens)


def format_table(rows: Sequence[DemoResult]) -> str:
    """A fixed-width table, one row per backend."""
    head = ("backend", "acc", "acc over draws", "macro-F1", "acc w/o adapt", "chance", "adapter", "graph side",
            "pretrain s", "adapt s", "infer s", "total s", "CPU s", "peak RSS")
    lines = []
    for r in rows:
        lines.append((
            r.backend, f"{r.accuracy:.3f}", _draws(r.draw_accuracies), f"{r.macro_f1:.3f}",
            "-" if r.accuracy_before_adapt is None else f"{r.accuracy_before_adapt:.3f}", f"{r.chance:.3f}",
            f"{r.adapter_bytes / 1024:.1f} KiB ({r.adapter_params:,} p)",
            f"{r.pretrain_adapter_bytes / 1024:.0f} KiB ({r.pretrain_params:,} p)",
            f"{r.pretrain_seconds:.1f}", f"{r.adapt_seconds:.1f}", f"{r.infer_seconds:.1f}",
            f"{r.total_seconds:.1f}", "-" if r.cpu_seconds is None else f"{r.cpu_seconds:.0f}",
            f"{r.peak_rss_mb:.0f} MiB",
        ))
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    if rows:
        r = rows[0]
        out.append(f"CiteSeer TAG, {len(r.heldout_classes)}-way {r.k_shot}-shot on held-out classes "
                   f"{', '.join(r.heldout_classes)}; {r.test_nodes} test nodes; accuracy by choice scoring.")
        drawn = [x for x in rows if x.draw_accuracies and len(x.draw_accuracies) > 1]
        out += [f"acc over draws ({x.backend}): mean ± std over {len(x.draw_accuracies)} k-shot draws adapted from the "
                f"same pre-trained graph side ({', '.join(f'{a:.3f}' for a in x.draw_accuracies)})" for x in drawn]
        out += [f"confusion matrix ({x.backend}): {x.confusion_png}" for x in rows if x.confusion_png]
        out += [f"embedding map ({x.backend}): {x.embeddings_png} (class silhouette of the test nodes "
                f"{_num(x.silhouette_before)} before, {_num(x.silhouette_after)} after adaptation)"
                for x in rows if x.embeddings_png]
    return "\n".join(out)


def _draws(values: Optional[Sequence[float]]) -> str:
    """``mean ± std (n)`` over k-shot draws; ``-`` for a single draw."""
    if not values or len(values) < 2:
        return "-"
    import statistics

    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f} ({len(values)})"


def _num(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"
