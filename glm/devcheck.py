"""``glm devcheck``: one bounded check of glm on a CUDA box (no network needed), or a dry run on CPU.

Steps, each timed and given at most its share of the budget (``--budget``, default 540 s):

1. ``environment``: Python, torch, CUDA device, versions of glm's dependencies, installed backends.
2. ``parity``: every GNN layer that PyG and GammaGL both register, the same neutral weights on
   both, on the device: fp32 within 1e-5, bf16 within 1e-2 (relative to the output scale);
   GammaGL's device scoping is exercised by each backend's ``prepare_device``.
3. ``recipes``: the ``3090-zero2-offload`` and ``3090-zero3-offload`` recipes for a few steps on a
   random-init LLM with Vicuna-7B's exact config, built on the GPU in bf16 (no weights needed),
   111 node tokens + ~1,900 text tokens, adapt and pretrain stages, through the real Trainer
   (:mod:`glm.core.plan.probe`, recipe runner): peak ``max_memory_allocated`` / ``reserved`` and
   seconds per step beside ``glm plan``'s estimate for the same configuration. The planner's
   figure for a published GraphLAMA setting (2x3090, ZeRO-3 + optimizer offload: 18,642 MB per
   card measured) is printed too.
4. ``tuning``: ``4090-lora`` (LoRA r=64 on q/v) and ``3090-qlora`` (4-bit NF4 base + LoRA on every
   linear) on the same Vicuna-7B config, adapt stage, peak memory beside the planner; QLoRA needs
   bitsandbytes (not in the wheelhouse: the row says so when it is missing).
5. ``encoder_speed``: forward + backward time of the ``gt`` encoder on each backend (GammaGL / PyG).

``dry_run`` (or no CUDA device) runs the same steps on the CPU: parity and encoder speed for real,
the recipe step on a tiny random LLM (proving the harness), the Vicuna rows as planner lines only,
each CUDA-only part marked ``skipped`` with its reason. Results: ``devcheck.json`` and
``devcheck.md`` in the output folder.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch

STEPS = ("environment", "parity", "recipes", "tuning", "encoder_speed")
SHARES = {"environment": 0.02, "parity": 0.25, "recipes": 0.43, "tuning": 0.2, "encoder_speed": 0.1}
PACKAGES = ("torch", "transformers", "torch_geometric", "peft", "accelerate", "pluggy", "numpy",
            "deepspeed", "gammagl_pt23", "tensorlayerx", "gguf", "sentence_transformers")
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-2}
RECIPES = ("3090-zero2-offload", "3090-zero3-offload")
VICUNA = "vicuna-7b-v1.5-16k"
TEXT_TOKENS = 1900
PUBLISHED = {"what": "GraphLAMA, 2x RTX 3090, ZeRO-3 + optimizer offload", "measured_mb_per_card": 18642}


@dataclass
class StepResult:
    name: str
    status: str = "ok"  # ok | failed | skipped
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    device: str
    dry_run: bool
    deadline: float
    checkout_tests: bool = True

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def run_devcheck(out: Path, dry_run: bool = False, budget_s: float = 540.0,
                 steps: tuple[str, ...] = STEPS, checkout_tests: bool = True,
                 log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run ``steps``; write ``devcheck.json`` / ``devcheck.md`` into ``out``; return the report."""
    cuda = torch.cuda.is_available() and not dry_run
    start = time.monotonic()
    results = []
    for i, name in enumerate(steps):
        share = sum(SHARES[s] for s in steps[: i + 1]) / sum(SHARES[s] for s in steps) if any(SHARES.values()) else 1.0
        ctx = Context("cuda" if cuda else "cpu", not cuda, start + share * budget_s,  # unused time carries over
                      checkout_tests)
        log(f"[devcheck] {name} ...")
        t0 = time.monotonic()
        result = StepResult(name)
        try:
            STEP_FUNCTIONS[name](ctx, result)
        except Exception as exc:  # a step that breaks is a finding, not the end of the check
            result.status = "failed"
            result.notes.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
        result.seconds = round(time.monotonic() - t0, 1)
        log(f"[devcheck] {name}: {result.status} ({result.seconds} s)")
        results.append(result)
    report = {"device": "cuda" if cuda else "cpu", "dry_run": not cuda, "budget_s": budget_s,
              "seconds": round(time.monotonic() - start, 1), "steps": [asdict(r) for r in results]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "devcheck.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "devcheck.md").write_text(format_report(report), encoding="utf-8")
    return report


# -- steps -----------------------------------------------------------------------------------
def step_environment(ctx: Context, r: StepResult) -> None:
    from glm.plugins.manager import get_registry

    row: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        row.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                   capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    for pkg in PACKAGES:
        try:
            row[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            row[pkg] = None
    row["backends"] = get_registry().available_backends()
    r.rows.append(row)
    if ctx.dry_run:
        r.notes.append("dry run: the GPU parts of later steps are skipped" if not torch.cuda.is_available()
                       else "dry run requested: CUDA is present but not used")


def step_parity(ctx: Context, r: StepResult) -> None:
    from glm.plugins.manager import get_registry
    from glm.testing.asserts import neutral_parity

    reg = get_registry()
    if not {"pyg", "gammagl"} <= set(reg.available_backends()):
        r.status = "skipped"
        r.notes.append(f"needs both pyg and gammagl installed; available: {reg.available_backends()}")
        return
    layers = [n for n in reg.layers_for("pyg") if n in reg.layers_for("gammagl")]
    for layer in layers:
        for dtype in ("float32", "bfloat16"):
            diff = neutral_parity(layer, ["pyg", "gammagl"], device=ctx.device, dtype=getattr(torch, dtype))["gammagl"]
            ok = diff <= TOLERANCE[dtype]
            r.rows.append({"layer": layer, "device": ctx.device, "dtype": dtype, "max_rel_diff": diff,
                           "tolerance": TOLERANCE[dtype], "ok": ok})
            if not ok:
                r.status = "failed"
    _deepspeed_parity(ctx, r)


def _deepspeed_parity(ctx: Context, r: StepResult) -> None:
    """The checkout's DeepSpeed ZeRO-2 offload parity tests (both backends trained by real engines)."""
    import os
    import subprocess

    test = Path(__file__).resolve().parents[2] / "tests" / "backends" / "test_deepspeed_parity.py"
    if not ctx.checkout_tests:
        r.notes.append("DeepSpeed parity tests skipped: --skip-checkout-tests")
        return
    if not test.is_file():
        r.notes.append("DeepSpeed parity tests skipped: not a source checkout (tests/ missing)")
        return
    env = dict(os.environ, TL_BACKEND=os.environ.get("TL_BACKEND", "torch"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], cwd=test.parents[2],
                          capture_output=True, text=True, timeout=max(30.0, ctx.left()), env=env)
    summary = (proc.stdout.strip().splitlines() or (proc.stderr.strip().splitlines() or ["no output"]))[-1][:300]
    r.rows.append({"layer": "all (DeepSpeed ZeRO-2 offload, bf16, 3 steps)", "device": ctx.device, "dtype": "bfloat16",
                   "tolerance": 1e-2, "ok": proc.returncode == 0, "pytest": summary})
    if proc.returncode not in (0, 5):  # 5: every test skipped (e.g. DeepSpeed missing) -- said in the summary
        r.status = "failed"


def _run_config(recipe: str, stage: str, llm: Any, tuning: Optional[str] = None):
    """A run config for ``llm``: a built-in config name (bf16), or tiny_llm keyword arguments (``family`` + options);
    ``tuning`` overrides the recipe's ``model.llm.tuning``."""
    from glm.core.config import config_from_dict

    if isinstance(llm, str):
        llm_section = {"name": llm, "dtype": "bfloat16", "max_length": 4096}
    else:
        options = {k: v for k, v in llm.items() if k != "family"}
        llm_section = {"name": f"tiny-random-{llm.get('family', 'llama')}", "dtype": "float32", "max_length": 512,
                       "options": options}
    if tuning:
        llm_section["tuning"] = tuning
    return config_from_dict({
        "model": {"llm": llm_section, "encoder": {"layer": "gt", "in_dim": 128, "hidden_dim": 128, "out_dim": 128,
                                                  "num_layers": 2, "heads": 4}},
        "data": {"fanout": [10, 10], "tasks": ["node_classification"]},
        "training": {"stage": stage, "micro_batch_size": 1},
        "recipe": recipe, "backend": "pyg",
    }, f"<devcheck {recipe} {stage}>")


def step_recipes(ctx: Context, r: StepResult) -> None:
    from glm.core.plan.from_config import from_run_config
    from glm.core.plan.memory import estimate

    mib = 2 ** 20
    for recipe in RECIPES:
        for stage in ("adapt", "pretrain"):
            cfg = _run_config(recipe, stage, VICUNA)
            r.rows.append(_measured_vs_plan(ctx, cfg, {"recipe": recipe, "stage": stage, "llm": VICUNA})[0])
    # the published run offloaded the optimizer only (parameters stay on the GPUs, partitioned over 2 cards)
    published = replace(from_run_config(_run_config("3090-zero3-offload", "pretrain", VICUNA), device="cuda",
                                        text_tokens=TEXT_TOKENS), offload_param=False)
    zero3 = estimate(published)
    r.notes.append(f"{PUBLISHED['what']}: {PUBLISHED['measured_mb_per_card']:,} MB per card measured; glm plan for that "
                   f"setting on one card ({zero3.input.seq_len} tokens, all ZeRO-3 partitions on it): "
                   f"{zero3.peak / mib:,.0f} MB (the planner has no multi-card term)")
    # the same harness on a tiny random LLM on the CPU: proves the recipe path runs here
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        r.notes.append("tiny CPU recipe run skipped: deepspeed is not installed")
        return
    if ctx.device != "cuda":
        r.rows.append(_tiny_cpu_run(ctx, {"recipe": "cpu", "stage": "adapt"}))


def _measured_vs_plan(ctx: Context, cfg: Any, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``(row, plan)``: ``row`` with the planner's CUDA peak for ``cfg`` and, on a CUDA box with budget
    left, the peaks measured through the real Trainer (``plan_error`` = plan / measured - 1); a row whose
    ``status`` is already set (e.g. a package missing) is not measured."""
    from glm.core.plan.from_config import from_run_config
    from glm.core.plan.memory import estimate
    from glm.core.plan.probe import run_probe, spec_from_config

    mib = 2 ** 20
    plan = estimate(from_run_config(cfg, device="cuda", text_tokens=TEXT_TOKENS))
    row.update(tokens=plan.input.seq_len, plan_peak_mb=round(plan.peak / mib))
    if "status" in row:
        return row, plan
    if ctx.device != "cuda":
        row["status"] = "skipped: no CUDA device (planner estimate only)"
    elif ctx.left() < 60:
        row["status"] = "skipped: devcheck budget spent"
    else:
        res = run_probe(spec_from_config(cfg, device="cuda", steps=2, text_tokens=TEXT_TOKENS, runner="recipe"),
                        timeout=ctx.left())
        row.update(status="ok", allocated_peak_mb=round(res.peak_bytes / mib),
                   reserved_peak_mb=round((res.reserved_peak_bytes or 0) / mib),
                   seconds=round(res.seconds, 1), steps=res.steps_run,
                   plan_error=round(plan.peak / max(1.0, res.reserved_peak_bytes or res.peak_bytes) - 1, 3))
    return row, plan


def _tiny_cpu_run(ctx: Context, row: dict[str, Any], tuning: Optional[str] = None) -> dict[str, Any]:
    """``row`` + a few steps of the recipe harness on a tiny random LLM on the CPU (proves the path runs here)."""
    from glm.core.plan.probe import run_probe, spec_from_config

    cfg = _run_config(row["recipe"], row["stage"], {"family": "llama", "hidden_size": 64, "num_layers": 2}, tuning)
    res = run_probe(spec_from_config(cfg, device="cpu", steps=2, text_tokens=64, runner="recipe"),
                    timeout=max(60.0, ctx.left()))
    return {**row, "llm": "tiny-random-llama", "tokens": res.seq_len, "status": "ok",
            "seconds": round(res.seconds, 1), "loss": round(res.loss, 4)}


TUNING_RECIPES = ("4090-lora", "3090-qlora")


def step_tuning(ctx: Context, r: StepResult) -> None:
    """LoRA (``4090-lora``) and QLoRA (``3090-qlora``) on Vicuna-7B's config, adapt stage, through the
    real Trainer, beside the planner; on the CPU the same harness on a tiny random LLM."""
    import importlib.util

    missing = [m for m in ("peft", "bitsandbytes") if importlib.util.find_spec(m) is None]
    for recipe in TUNING_RECIPES:
        cfg = _run_config(recipe, "adapt", VICUNA)
        row: dict[str, Any] = {"recipe": recipe, "tuning": cfg.model.llm.tuning, "stage": "adapt", "llm": VICUNA}
        absent = [m for m in ["peft"] + (["bitsandbytes"] if cfg.model.llm.tuning == "qlora" else []) if m in missing]
        if absent:
            row["status"] = f"skipped: {', '.join(absent)} not installed"
        row, plan = _measured_vs_plan(ctx, cfg, row)
        r.rows.append({**row, "llm_trainable": plan.input.llm_trainable_params})
    if ctx.device != "cuda" and "peft" not in missing and importlib.util.find_spec("deepspeed") is not None:
        # qlora's CPU run: tests/train/test_tuning.py
        r.rows.append(_tiny_cpu_run(ctx, {"recipe": "cpu", "tuning": "lora", "stage": "adapt"}, tuning="lora"))


def step_encoder_speed(ctx: Context, r: StepResult, repeats: int = 10) -> None:
    from glm.core.encoder import EncoderConfig, GraphEncoder
    from glm.core.graph import Subgraph, SubgraphBatch
    from glm.plugins.manager import get_registry

    backends = [b for b in ("pyg", "gammagl") if b in get_registry().available_backends()]
    gen = torch.Generator().manual_seed(0)
    graphs = [Subgraph(x=torch.randn(111, 128, generator=gen), edge_index=torch.randint(0, 111, (2, 440), generator=gen))
              for _ in range(32)]
    batch = SubgraphBatch.from_subgraphs(graphs).to(ctx.device)
    config = EncoderConfig(layer="gt", in_dim=128, hidden_dim=128, out_dim=128, num_layers=2, heads=4, dropout=0.0)
    encoders = {}
    for backend in backends:
        get_registry().backend(backend).load().prepare_device(torch.device(ctx.device))
        encoders[backend] = GraphEncoder(config, backend).to(ctx.device)
    samples: dict[str, list[float]] = {b: [] for b in backends}
    for i in range(repeats + 2):  # interleaved, so that a busy machine slows both alike
        for backend, enc in encoders.items():
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            enc(batch).sum().backward()
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                samples[backend].append(time.perf_counter() - t0)
    times = {b: statistics.median(v) for b, v in samples.items()}
    for backend in backends:
        r.rows.append({"backend": backend, "device": ctx.device, "graphs": 32, "nodes": 111 * 32,
                       "ms_forward_backward": round(times[backend] * 1e3, 2)})
        get_registry().backend(backend).load().prepare_device(torch.device("cpu"))
    if len(times) == 2:
        r.notes.append(f"GammaGL / PyG time ratio on {ctx.device}: {times['gammagl'] / times['pyg']:.2f}")


STEP_FUNCTIONS: dict[str, Callable[[Context, StepResult], None]] = {
    "environment": step_environment, "parity": step_parity, "recipes": step_recipes,
    "tuning": step_tuning, "encoder_speed": step_encoder_speed,
}


def format_report(report: dict[str, Any]) -> str:
    """A markdown summary: one section per step, its rows as a table."""
    lines = [f"# glm devcheck ({report['device']}{', dry run' if report['dry_run'] else ''}, "
             f"{report['seconds']} s of {report['budget_s']:.0f} s)", ""]
    for step in report["steps"]:
        lines += [f"## {step['name']}: {step['status']} ({step['seconds']} s)", ""]
        rows = step["rows"]
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            lines.append("| " + " | ".join(keys) + " |")
            lines.append("|" + "---|" * len(keys))
            for row in rows:
                lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
            lines.append("")
        lines += [f"- {n}" for n in step["notes"]] + ([""] if step["notes"] else [])
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
