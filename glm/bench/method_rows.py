"""Bench rows of graph-language-model methods: pre-train once per method, adapt per seed, evaluate.

With a pre-training config (``glm bench fewshot --pretrain-config``, the transfer setting) the
pre-training runs on that config's graph and the adaptation on the bench's.

Pre-trained runs go under :func:`pretrain_cache` (``runs/bench/pretrained/<method>-<hash>``), shared by every
bench; a seed's adaptation of one under its ``adapted/<hash>-seed<k>/`` (:func:`adapted_run`), so a bench
that adapts the same way from the same shots (the test run after ``--split val`` chose its settings, another
bench folder) reads the adapted graph side back instead of training it again; adaptations from a random
graph side under ``<bench out>/methods/<method>/scratch-seed<k>/``. All through the same pipeline as ``glm
pretrain`` / ``glm adapt`` (:func:`glm.core.train.pipeline.run_stage`), with the seed's k shots in place of
the split's. Scores are ``glm eval``'s choice scoring; the calibrated prediction subtracts the scores of a
content-free sample (no text, one zero-feature node).

Each method row also reports ``token_probe``: a logistic regression on the target node's soft token
(:func:`glm.core.eval.embeddings.stage_vectors`, before the LLM), fitted on the seed's k shots and
scored on the same nodes; a method with a GNN encoder also reports ``encoder_probe``, the same on the
encoder's output at the target node. Beside the feature rows (the encoder's input: ``linear_probe``, or
``sgc`` under ``data.propagate``) and the row's accuracy they say where class information is lost: in
the encoder, in the parts between encoder and token (gate, projector), or in the LLM's reading of the
tokens (a probe well above the row). ``shot_accuracy`` (every method row) is the row's own choice accuracy
on the seed's k shots, scored as the test nodes are: an adaptation that did not even fit its training
nodes (near chance) is underfitting, one that fit them (near 1) and scores low elsewhere does not carry
what it learned to new nodes.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from glm.bench.baselines import RowResult

PRETRAIN_STAMP = "bench_pretrain.json"  # the hash of the settings a method's pre-trained run was made with
ADAPT_STAMP = "bench_adapt.json"  # the same for an adapted run, with its shots, train seconds and trainable count


@dataclass
class BenchRun:
    """What one bench run (few-shot or generation) knows of itself, beside its rows: the ``key=value``
    overrides it was given (and the CONFIG file), the methods whose pre-training it checked or made, the wall
    seconds of those it pre-trained and of those it reused from the cache (as they took when made), and when
    it started."""

    overrides: tuple[str, ...] = ()
    checked: set[str] = field(default_factory=set)
    pretrain_seconds: dict[str, float] = field(default_factory=dict)
    pretrain_reused: dict[str, Optional[float]] = field(default_factory=dict)
    started: tuple[float, float] = field(default_factory=lambda: (time.perf_counter(), time.process_time()))
    config: str = ""  # the CONFIG path the bench was given

    def pretraining(self) -> dict[str, Any]:
        """The pre-training this run did (wall s) and reused (s when made), for a report."""
        return {"pretrain_seconds": {m: round(s, 1) for m, s in self.pretrain_seconds.items()},
                "pretrain_reused": dict(self.pretrain_reused)}

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "overrides": list(self.overrides), **self.pretraining()}


def _config(ctx: Any, method: str, stage: str, out: Path, init_from: Any = None):
    source = ctx.pretrain_config if stage == "pretrain" and ctx.pretrain_config is not None else ctx.config
    cfg = copy.deepcopy(source)
    adapt = ctx.adapt_for(method) if stage != "pretrain" else None
    if adapt is not None:
        cfg.training = copy.deepcopy(adapt.training)
        cfg.model.stage_extra = list(adapt.stage_extra)
    cfg.model.method = method
    spec = cfg.model.method_spec
    cfg.training.stage = spec.pretrain_stage if stage == "pretrain" else spec.adapt_stage
    if stage != "pretrain" and not spec.uses_encoder:
        _leave_out_encoder(cfg)
    if stage == "pretrain" and cfg.training.align.steps and not one_token_per_node(cfg):
        cfg.training.align = replace(cfg.training.align, steps=0)  # the warm-up needs one token per node
    cfg.training.output_dir = str(out)
    cfg.training.overwrite_output_dir = True
    cfg.training.resume = None
    cfg.training.init_from = str(init_from) if init_from else None
    cfg.validate("<bench>")
    return cfg


def _encoder_pattern(pattern: str) -> bool:
    return pattern == "encoder" or pattern.startswith("encoder.")


def _leave_out_encoder(cfg: Any) -> None:
    """Drop the GNN encoder's ``model.stage_extra`` / ``training.lr_groups`` patterns from ``cfg`` of a method
    without an encoder (LLaGA), so that one adaptation file for the whole graph side fits every method; any
    other pattern that fits nothing is still refused (:func:`check_adaptation`)."""
    cfg.model.stage_extra = [p for p in cfg.model.stage_extra if not _encoder_pattern(p)]
    cfg.training.lr_groups = {p: lr for p, lr in cfg.training.lr_groups.items() if not _encoder_pattern(p)}


def one_token_per_node(cfg: Any) -> bool:
    """Whether ``cfg``'s method gives every node one soft token (``training.align`` can warm it up; LLaGA's
    fixed k tokens per graph cannot be: the bench pre-trains it without the warm-up and says so)."""
    from glm.core.factory import build_node_tokens

    with torch.random.fork_rng():
        return build_node_tokens(cfg, hidden_size=8)[0].tokens_per_graph is None


def without_align(ctx: Any, methods: list[str]) -> list[str]:
    """The ``methods`` the bench pre-trains without the configured ``training.align`` warm-up."""
    source = ctx.pretrain_config if ctx.pretrain_config is not None else ctx.config
    if not source.training.align.steps:
        return []
    return [m for m in methods if _config(ctx, m, "pretrain", ctx.out).training.align.steps == 0]


def check_adaptation(ctx: Any, method: str, log: Callable[[str], None] = print) -> None:
    """Refuse, before anything trains, adaptation settings that do not fit ``method``: a
    ``model.stage_extra`` or ``training.lr_groups`` pattern that matches none of its adapted parameters
    (the graph side is built without the LLM); say which encoder patterns a method without one leaves out."""
    from glm.bench.settings import BenchError
    from glm.core.factory import build_node_tokens
    from glm.core.stages import check_lr_groups, stage_parameter_names
    from glm.errors import GlmError

    cfg = _config(ctx, method, "adapt", ctx.out / "methods" / method / "adapt")
    adapt = ctx.adapt_for(method)
    where = f"--adapt-config {adapt.label}" if adapt is not None and adapt.source else "the config"
    given = [*(adapt.stage_extra if adapt is not None else ctx.config.model.stage_extra),
             *(adapt.training if adapt is not None else ctx.config.training).lr_groups]
    kept = {*cfg.model.stage_extra, *cfg.training.lr_groups}  # what _config left of them
    left_out = [p for p in dict.fromkeys(given) if p not in kept]
    if left_out:
        log(f"{method} has no GNN encoder: its adaptation leaves out {left_out} of {where}")
    with torch.random.fork_rng():
        module, spec = build_node_tokens(cfg, hidden_size=8)
    try:
        check_lr_groups(stage_parameter_names(module, cfg.training.stage, spec.stage_table(), cfg.model.stage_extra),
                        cfg.training.lr_groups)
    except GlmError as exc:
        raise BenchError(f"{where}, method {method}: {exc.one_line()}; give {method} its own adaptation: "
                         f"--adapt-config {method}=PATH") from None


def pretrain_cache() -> Path:
    """Where pre-trained runs are kept, shared by every bench (``$GLM_BENCH_CACHE``, default ``runs/bench/pretrained``)."""
    return Path(os.environ.get("GLM_BENCH_CACHE") or Path("runs") / "bench" / "pretrained")


def _pretraining_settings(cfg: Any) -> Any:
    """``cfg`` without what pre-training never reads: the held-out classes' k (pre-training reads the
    pre-training classes' nodes, whatever k; hashed at its default, so runs made at k = 5 keep their hash),
    so that ``glm bench fewshot --shots`` pre-trains once for every k; and the title-generation split
    (``data.generation``) unless pre-training generates titles, so that a generation bench's overrides of it
    keep the shared run."""
    from glm.core.config import DataConfig, GenerationSplit
    from glm.core.factory import default_backend

    if cfg.backend is not None and cfg.backend == default_backend(None):
        cfg = replace(cfg, backend=None)  # naming the backend that runs anyway changes nothing
    if cfg.model.method_spec.stages[cfg.training.stage].data != "fewshot":
        cfg = replace(cfg, data=replace(cfg.data, k_shot=DataConfig.k_shot))
    if cfg.data.task == "title_generation":
        return cfg
    return replace(cfg, data=replace(cfg.data, generation=GenerationSplit()))


@dataclass
class CachedRun:
    """A method's pre-training in :func:`pretrain_cache`: its config, folder and settings hash; ``usable``:
    a finished run made with these settings is there; ``seconds``: what it took when made (``None``: not
    recorded, a cache older than the stamp's seconds)."""

    config: Any
    out: Path
    digest: str
    usable: bool
    seconds: Optional[float]


def _cached_run(ctx: Any, method: str) -> CachedRun:
    from glm.bench.settings import config_hash
    from glm.core.train.checkpoint import ADAPTER_FILE

    cfg = _config(ctx, method, "pretrain", ctx.out / "methods" / method / "pretrain")
    digest = config_hash(_pretraining_settings(cfg))  # (not where the run is written)
    out = pretrain_cache() / f"{method}-{digest}"
    cfg.training.output_dir, stamp = str(out), out / PRETRAIN_STAMP
    saved = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else {}
    usable = (out / ADAPTER_FILE).is_file() and saved.get("config_hash") == digest
    seconds = saved.get("seconds") if usable else None
    return CachedRun(cfg, out, digest, usable, None if seconds is None else float(seconds))


def pretrained(ctx: Any, method: str) -> Path:
    """The pre-trained run of ``method``: ``<pretrain_cache()>/<method>-<hash of its settings>``, trained once
    and reused by every bench that pre-trains ``method`` the same way (the few-shot bench of a pre-training
    config and the generation bench with it as ``--pretrain-config`` share it); ``ctx.force`` trains it again
    once per bench run."""
    from glm.core.io import atomic_write_text
    from glm.core.train.pipeline import run_stage

    cached = _cached_run(ctx, method)
    run = ctx.run
    if not cached.usable or (ctx.force and method not in run.checked):
        shutil.rmtree(cached.out / "adapted", ignore_errors=True)  # adapted from the run about to be replaced
        data = ctx.data if ctx.pretrain_config is None else None  # another graph: the config's own data
        t0 = time.perf_counter()
        run_stage(cached.config, progress=ctx.progress, data=data)
        run.pretrain_seconds[method] = seconds = time.perf_counter() - t0
        atomic_write_text(json.dumps({"config_hash": cached.digest, "seconds": round(seconds, 1)}),
                          cached.out / PRETRAIN_STAMP)
    elif method not in run.pretrain_seconds:
        run.pretrain_reused[method] = cached.seconds
    run.checked.add(method)
    return cached.out


KEPT_FILES = ("adapter_model.safetensors", "glm_config.yaml", "trainer_state.json", "trainer_log.jsonl",
              "align_log.jsonl")  # a finished pre-trained run, without its resumable checkpoints


def adopt_pretrained(config: Any, run_dir: Path, seconds: float) -> Optional[Path]:
    """Keep a pre-trained run made outside a bench (``glm demo``'s) in :func:`pretrain_cache`, where every
    bench that pre-trains ``config``'s method with the same settings finds it: the bench's own cache key,
    computed the bench's way, so a bench reuses it exactly when it would have made the same run. Returns
    the cache folder, or ``None`` when the cache already holds a usable run (kept as it is) or ``run_dir``
    has no adapter. The stamp is written last: an interrupted copy is never taken for a finished run."""
    from types import SimpleNamespace

    from glm.core.io import atomic_write_text
    from glm.core.train.checkpoint import ADAPTER_FILE

    method = config.model.method
    ctx = SimpleNamespace(config=config, pretrain_config=config, out=run_dir, adapt_for=lambda m: None)
    cached = _cached_run(ctx, method)
    out, digest = cached.out, cached.digest
    if cached.usable or not (run_dir / ADAPTER_FILE).is_file():
        return None
    out.mkdir(parents=True, exist_ok=True)
    (out / PRETRAIN_STAMP).unlink(missing_ok=True)
    for name in KEPT_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    atomic_write_text(json.dumps({"config_hash": digest, "seconds": round(seconds, 1), "adopted_from": str(run_dir)}),
                      out / PRETRAIN_STAMP)
    return out


def note_pretraining(ctx: Any, method: str) -> None:
    """For a method row read back from an earlier run: record what its pre-training took when made (the
    report's cost of the row), without training anything; once per method and run."""
    if method in ctx.run.checked:
        return
    ctx.run.checked.add(method)  # (read back only when not forced: ``checked`` never skips a forced training)
    cached = _cached_run(ctx, method)
    if cached.usable:
        ctx.run.pretrain_reused[method] = cached.seconds


def adapted_run(ctx: Any, method: str, seed: int, shots: list[int],
                base: Path) -> tuple[Path, str, Optional[dict[str, Any]]]:
    """Where ``method``'s adaptation for ``seed`` (its ``shots``) from the pre-trained run ``base`` is kept
    (``<base>/adapted/<hash>-seed<k>``: the hash of the adaptation's settings, the split's only through
    the shots, so the validation and the test bench share it), the stamp it must carry, and the stamp it
    carries when a finished run made that way from the same shots is there (``None``: train it; always
    under ``ctx.force``)."""
    from glm.bench.settings import config_hash
    from glm.core.train.checkpoint import ADAPTER_FILE

    digest = config_hash(ctx.config, ctx.adapt_for(method), ctx.pretrain_config)
    key = f"{digest}:{','.join(map(str, shots))}"
    out = base / "adapted" / f"{digest}-seed{seed}"
    stamp = out / ADAPT_STAMP
    saved = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else {}
    usable = not ctx.force and saved.get("key") == key and (out / ADAPTER_FILE).is_file()
    return out, key, saved if usable else None


def run_method(ctx: Any, method: str, seed: int, pretrain: bool = True, adapt: bool = True) -> RowResult:
    from glm.core.io import atomic_write_text
    from glm.core.train.checkpoint import ADAPTER_FILE
    from glm.core.train.pipeline import apply_adapter_chain, build_model, run_stage

    base = pretrained(ctx, method) if pretrain else None
    shots = ctx.shots(seed)
    if adapt:
        if base is not None:
            out, key, saved = adapted_run(ctx, method, seed, shots, base)
        else:
            out, key, saved = ctx.out / "methods" / method / f"scratch-seed{seed}", "", None
        cfg = _config(ctx, method, "adapt", out, base)
        if saved is not None:  # made by another bench (or an earlier run) the same way from the same shots
            model = build_model(cfg)
            apply_adapter_chain(model, out)
            train_s, trainable = float(saved["train_seconds"]), int(saved["trainable_params"])
        else:
            (out / ADAPT_STAMP).unlink(missing_ok=True)
            data = replace(ctx.data, split=replace(ctx.data.split, train=shots))
            result, model, _ = run_stage(cfg, progress=ctx.progress, data=data)
            train_s, trainable = result.train_seconds, result.trainable_params
            if key:
                atomic_write_text(json.dumps({"key": key, "train_seconds": train_s,
                                              "trainable_params": trainable}), out / ADAPT_STAMP)
        adapter = out / ADAPTER_FILE
    else:
        cfg = _config(ctx, method, "pretrain", ctx.out / "methods" / method / "pretrain")
        model = build_model(cfg)
        apply_adapter_chain(model, base)
        adapter, train_s, trainable = base / ADAPTER_FILE, 0.0, 0
    result = _evaluate(ctx, cfg, model, train_s, trainable, adapter.stat().st_size if adapter.is_file() else None)
    result.extra["run"] = str(adapter.parent)
    result.extra["shot_accuracy"] = shot_accuracy(ctx, cfg, model, shots)
    stages = ("tokens", "encoder") if getattr(model, "encoder", None) is not None else ("tokens",)
    probes = stage_probes(ctx, cfg, model, shots, stages)
    result.extra["token_probe"] = probes["tokens"]
    if "encoder" in probes:
        result.extra["encoder_probe"] = probes["encoder"]
    return result


def stage_probes(ctx: Any, cfg: Any, model: Any, shots: list[int],
                 stages: tuple[str, ...] = ("tokens",)) -> dict[str, float]:
    """``{stage: accuracy}`` of a logistic regression on the target node's vector at each stage (``tokens``:
    its soft token; ``encoder``: the GNN's output), fitted on ``shots`` (see the module docstring); one pass
    of the graph side over the shots and one over the scored nodes serve every stage."""
    from glm.core.data import tasks as T
    from glm.bench.baselines import fit_predict
    from glm.core.eval.embeddings import stage_vectors
    from glm.core.eval.metrics import accuracy
    from glm.core.train.pipeline import make_collator

    classes = ctx.data.split.class_indices(ctx.tag, "heldout")
    collate = make_collator(cfg, model, ctx.data)

    def vectors(nodes: list[int]) -> dict[str, Any]:
        samples = T.node_classification(ctx.data.source, nodes, classes=classes, include_text=False)
        return stage_vectors(model, samples, collate, stages)

    fit, scored = vectors(shots), vectors(ctx.test)
    gold = ctx.label_index(ctx.test)
    return {stage: accuracy(list(fit_predict(fit[stage], ctx.label_index(shots), scored[stage], seed=0)[0]), gold)
            for stage in stages}


def shot_accuracy(ctx: Any, cfg: Any, model: Any, shots: list[int]) -> float:
    """The model's choice accuracy on ``shots`` (its adaptation's training nodes), their samples built as the
    scored nodes' are (:func:`glm.core.train.pipeline.eval_samples`)."""
    from glm.core.eval.metrics import accuracy
    from glm.core.eval.predict import evaluate
    from glm.bench.text_baselines import choose
    from glm.core.train.pipeline import eval_samples, make_collator

    samples = eval_samples(cfg, replace(ctx.data, split=replace(ctx.data.split, test=list(shots))), "test")
    result = evaluate(model, samples, make_collator(cfg, model, ctx.data),
                      make_collator(cfg, model, ctx.data, inference=True), mode="choice", batch_size=cfg.eval.batch_size)
    return accuracy(choose([p.scores or {} for p in result.predictions], ctx.choices), ctx.label_index(shots))


def _evaluate(ctx: Any, cfg: Any, model: Any, train_s: float, trainable: int, adapter_bytes: Any) -> RowResult:
    from glm.core.data import tasks as T
    from glm.core.eval.predict import evaluate
    from glm.bench.text_baselines import choose
    from glm.core.graph import Subgraph
    from glm.core.train.pipeline import eval_samples, make_collator

    samples = eval_samples(cfg, ctx.data, ctx.split)
    train_c, infer_c = make_collator(cfg, model, ctx.data), make_collator(cfg, model, ctx.data, inference=True)
    result = evaluate(model, samples, train_c, infer_c, mode="choice", batch_size=cfg.eval.batch_size)
    free = T.node_classification(ctx.data.source, [samples[0].meta["node"]],
                                 classes=ctx.data.split.class_indices(ctx.tag, "heldout"), include_text=False)[0]
    blank = Subgraph(x=torch.zeros(1, ctx.data.source.x.shape[1]), edge_index=torch.zeros(2, 0, dtype=torch.long))
    bias = evaluate(model, [replace(free, graphs=[blank])], train_c, infer_c, mode="choice").predictions[0].scores
    scores = [p.scores or {} for p in result.predictions]
    choices = ctx.choices
    row = RowResult(choose(scores, choices), train_s, result.seconds, trainable, adapter_bytes,
                    choose(scores, choices, bias))
    if ctx.generate:  # the same nodes decoded, then read by every answer parser
        ev = cfg.eval
        decoded = evaluate(model, samples, train_c, infer_c, mode="generate", match=ev.match,
                           batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens)
        row.extra["parsers"] = decoded.by_parser
        row.extra["generate_seconds_per_node"] = decoded.seconds / max(len(samples), 1)
    return row
