"""Measured peaks: run a few real training steps of the GraphLanguageModel and record memory.

Each probe runs in a fresh process (``python -m glm.core.plan.probe SPEC_JSON``): measurements are independent.

Two runners
-----------
* ``runner="recipe"`` (what ``glm plan --probe`` uses): the real training loop
  (:class:`glm.core.train.loop.Trainer`, the DeepSpeed engine with the run's recipe: ZeRO stage,
  offload, bf16, gradient checkpointing) trains the model the run configuration describes for
  ``warmup_steps + steps`` optimizer steps in a temporary output directory. The batches are synthetic
  GraphBatches of the planned shape (text tokens, graphs x nodes, micro-batch), so the measurement and the
  plan describe the same sequence. The first step is the warm-up; the peak is measured over the next ``steps``.
* ``runner="torch"`` (fallback when DeepSpeed is not importable): the same model and batches,
  trained with plain ``torch.optim.AdamW``; warm-up is one short forward/backward.

What is measured
----------------
* **CUDA**: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the measured
  steps (after ``reset_peak_memory_stats``) minus the allocated bytes before them; the absolute
  peaks are reported too.
* **CPU**: growth of the process's peak resident set size. After the warm-up the kernel's
  high-water mark is reset (``/proc/self/clear_refs``, value 5) and ``VmHWM - VmRSS(before)`` is
  read after the steps. glibc is told to serve every allocation above 64 KiB with ``mmap``
  (``MALLOC_MMAP_THRESHOLD_``) so freed tensors leave the RSS at once and the high-water mark
  tracks live tensors; so is MKL's buffer cache (``MKL_DISABLE_FAST_MM``: it keeps the largest GEMM's
  packing buffers, 5-7 MiB for SmolLM2's LM head, resident; not a tensor, so not estimated).

What stays resident before the measured steps (the weights, and with the recipe runner also
the optimizer states, DeepSpeed's fp32 partitions and gradient buckets and the allocator and
thread caches of the first step) is not in the growth; it is reported as ``resident_bytes``
(baseline minus the loaded model). :func:`compare` therefore compares the growth with the
planner's :attr:`~glm.core.plan.memory.MemoryPlan.peak_over_weights` (activations, logits and
loss, gradients, optimizer states, graph side), minus the optimizer states for the recipe
runner, which allocated them in the warm-up step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from glm.errors import GlmError

MMAP_THRESHOLD = "65536"
RUNNERS = ("recipe", "torch")
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE",
                 "LOCAL_WORLD_SIZE")


class ProbeError(GlmError, RuntimeError):
    """A probe subprocess failed; the message carries its last lines of output."""


@dataclass
class ProbeSpec:
    """One measured configuration.

    ``llm``: ``"smollm2"`` (packaged weights), a built-in config name (random init), or a dict of
    :func:`glm.core.llm.tiny_llm` keyword arguments (``{"family": "llama", "hidden_size": 64, ...}``).
    ``runner="recipe"`` needs ``config`` (a :meth:`RunConfig.to_dict`; its recipe, graph config,
    stage extras and gradient accumulation are used); build such a spec with :func:`spec_from_config`.
    """

    llm: Any = field(default_factory=lambda: {"family": "llama", "hidden_size": 64, "num_layers": 2})
    dtype: str = "float32"
    stage: str = "adapt"
    gradient_checkpointing: bool = False
    attention: str = "sdpa"
    micro_batch: int = 1
    text_tokens: int = 128
    graphs_per_sample: int = 1
    nodes_per_graph: int = 111
    steps: int = 2
    device: str = "cpu"
    backend: str = "pyg"
    encoder: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    runner: str = "torch"
    config: Optional[dict[str, Any]] = None
    warmup_steps: int = 1
    quantization: Optional[str] = None  # "4bit": a frozen 4-bit base (model.llm.tuning=qlora quantises on its own)


@dataclass
class ProbeResult:
    spec: dict[str, Any]
    device: str
    runner: str
    measured_bytes: float          # growth over the loaded model (see module docstring)
    baseline_bytes: float          # RSS or CUDA allocated before the steps
    peak_bytes: float              # absolute peak (RSS high-water mark, or CUDA max allocated)
    reserved_peak_bytes: Optional[float]
    trainable_params: int
    frozen_graph_params: int
    llm_config: dict[str, Any]
    seq_len: int
    loss: float
    seconds: float
    recipe: Optional[str] = None
    zero_stage: int = 0
    engine_dtype: Optional[str] = None
    loaded_bytes: Optional[float] = None   # RSS / CUDA allocated once the model is built
    resident_bytes: Optional[float] = None  # baseline - loaded: what the warm-up left resident
    steps_run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_probe(spec: ProbeSpec, timeout: float = 600.0) -> ProbeResult:
    """Run ``spec`` in a fresh subprocess and return its measurement."""
    if spec.runner not in RUNNERS:
        raise ProbeError(f"probe runner must be one of {', '.join(RUNNERS)}; found {spec.runner!r}")
    if spec.runner == "recipe" and spec.config is None:
        raise ProbeError("probe runner 'recipe' needs the run configuration (ProbeSpec.config)")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD_="0",
               MKL_DISABLE_FAST_MM="1",
               OMP_NUM_THREADS=str(spec.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TL_BACKEND=os.environ.get("TL_BACKEND", "torch"), TOKENIZERS_PARALLELISM="false")
    for var in LAUNCHER_VARS:  # a single fresh process, whatever launched the caller
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "glm.core.plan.probe", json.dumps(asdict(spec))],
                          capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("GLM_PROBE_RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ProbeError(f"probe failed (exit {proc.returncode}):\n{tail}")
    return ProbeResult(**json.loads(lines[-1].removeprefix("GLM_PROBE_RESULT ")))


# --------------------------------------------------------------------------------------
# inside the subprocess
# --------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise ProbeError(f"/proc/self/status has no {field_name}")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def _build(spec: ProbeSpec):
    """The GraphLanguageModel of ``spec`` with its stage's trainable set; LLM in ``spec.dtype``."""
    import torch

    from glm.core.config import config_from_dict
    from glm.core.encoder import EncoderConfig, build_encoder
    from glm.core.factory import build_model
    from glm.core.llm import llm_config, load_smollm2, tiny_llm, tiny_tokenizer
    from glm.core.stages import set_stage

    dtype = getattr(torch, spec.dtype)
    if spec.llm == "smollm2":
        llm, tok = load_smollm2(dtype=dtype)
    elif isinstance(spec.llm, dict):
        llm, tok = tiny_llm(**spec.llm)
    else:  # a built-in config name or a local model folder: random init, same memory as the weights
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(spec.llm) if os.path.exists(spec.llm) else llm_config(spec.llm)
        with torch.device(spec.device):  # initialised where it runs, in its dtype (a 7B model: seconds on a GPU)
            llm = AutoModelForCausalLM.from_config(config, dtype=dtype)
        tok = tiny_tokenizer()
    llm = llm.to(dtype)
    llm.set_attn_implementation(spec.attention)
    enc_cfg = EncoderConfig(**spec.encoder)
    if spec.config is not None:  # the run's method and graph side (gate size, hop mode, ...) and stage extras
        run = config_from_dict(spec.config, "<probe config>")
    else:
        run = config_from_dict({"model": {"encoder": spec.encoder, "graphlama": {"graph_dim": enc_cfg.out_dim}}},
                               "<probe>")
    encoder = build_encoder(enc_cfg, spec.backend) if run.model.method_spec.uses_encoder else None
    extra = list(run.model.stage_extra)
    if spec.quantization == "4bit" and run.model.llm.tuning != "qlora":  # a frozen 4-bit base (glm plan --quantization)
        from glm.core.tuning import quantize_4bit

        llm = quantize_4bit(llm, double_quant=False)
    elif spec.quantization not in (None, "4bit"):
        raise ProbeError(f"the probe runs 4-bit bases only (bitsandbytes); {spec.quantization} is planned, not probed")
    model = build_model(run, llm=llm, tokenizer=tok, encoder=encoder)
    model.to(dtype)
    model.train_loss = run.training.loss  # as the trainer: the LM head runs where the loss reads only
    trained = set(set_stage(model, spec.stage, extra=extra))
    n_train = sum(p.numel() for n, p in model.named_parameters() if n in trained and not n.startswith("llm."))
    n_graph = sum(p.numel() for n, p in model.graph_parameters().items())
    return model, tok, enc_cfg, n_train, n_graph - n_train


def labelled_positions(seq_len: int) -> int:
    """Reply positions of a probe batch: its last quarter (what the loss, and so the LM head, reads)."""
    return max(1, seq_len // 4)


def _batch(model, enc_cfg, spec: ProbeSpec, text_tokens: int, seed: int):
    """A synthetic GraphBatch: random text ids around one expanded graph per placeholder."""
    import torch

    from glm.core.graph import Subgraph, SubgraphBatch
    from glm.core.sample import GraphBatch

    g = torch.Generator().manual_seed(seed)
    start, patch, end = (int(t) for t in model.graph_token_ids)
    vocab = min(int(model.llm.get_input_embeddings().weight.shape[0]), start, patch, end)  # no graph ids
    rows, graphs = [], []
    for _ in range(spec.micro_batch):
        ids: list[int] = []
        for _ in range(spec.graphs_per_sample):
            n = spec.nodes_per_graph
            ids += [start] + [patch] * model.num_graph_tokens(n) + [end]
            # a tree: node 0 is the target, the others hang off it or off earlier nodes
            parent = torch.cat([torch.zeros(min(n - 1, 10), dtype=torch.long),
                                torch.arange(1, n, dtype=torch.long)[: max(0, n - 11)] % 10 + 1])
            child = torch.arange(1, n, dtype=torch.long)
            edge_index = torch.stack([torch.cat([parent, child]), torch.cat([child, parent])])
            graphs.append(Subgraph(x=torch.randn(n, enc_cfg.in_dim, generator=g), edge_index=edge_index))
        text = max(1, text_tokens - 2 * spec.graphs_per_sample)
        ids += torch.randint(0, vocab, (text,), generator=g).tolist()
        rows.append(ids)
    input_ids = torch.tensor(rows)
    task_dim = getattr(model.config, "task_embedding_dim", None)
    labels = torch.full_like(input_ids, -100)
    answer = labelled_positions(input_ids.shape[1])
    labels[:, -answer:] = input_ids[:, -answer:]
    return GraphBatch(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels,
        graphs=SubgraphBatch.from_subgraphs(graphs),
        graphs_per_sample=torch.full((spec.micro_batch,), spec.graphs_per_sample),
        task_embedding=(torch.randn(spec.micro_batch, task_dim, generator=g) if task_dim else None),
    )


class _Meter:
    """Baseline, then peak: CUDA allocator statistics, or RSS and its kernel high-water mark."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.baseline = self.peak = 0.0
        self.reserved: Optional[float] = None

    def current(self) -> float:
        import gc

        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            return float(torch.cuda.memory_allocated())
        return _status_kib("VmRSS") * 1024.0

    def start(self) -> None:
        import torch

        self.baseline = self.current()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_peak_rss()

    def stop(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak, self.reserved = float(torch.cuda.max_memory_allocated()), float(torch.cuda.max_memory_reserved())
        else:
            self.peak = _status_kib("VmHWM") * 1024.0


def _device(spec: ProbeSpec):
    import torch

    torch.set_num_threads(spec.threads)
    torch.manual_seed(0)
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ProbeError("device cuda requested but torch.cuda.is_available() is False")
    return torch.device(spec.device)


def _probe_torch(spec: ProbeSpec) -> ProbeResult:
    import time

    import torch

    from glm.core.train.loop import to_engine

    device = _device(spec)
    meter = _Meter(spec.device == "cuda")
    model, tok, enc_cfg, n_train, n_frozen_graph = _build(spec)
    model.to(device)
    loaded = meter.current()
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    dtype = getattr(torch, spec.dtype)
    cast = dtype if dtype != torch.float32 else None  # node features follow the model's dtype

    def step(batch) -> float:
        loss = model(to_engine(batch, device, cast)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    # warm-up on a short sequence: initialises kernels, thread pools and autograd, not the peak
    warm = _batch(model, enc_cfg, ProbeSpec(**{**asdict(spec), "micro_batch": 1, "nodes_per_graph": 3}), 8, 1)
    loss = model(to_engine(warm, device, cast)).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    del loss
    batches = [_batch(model, enc_cfg, spec, spec.text_tokens, 100 + i) for i in range(spec.steps)]
    t0 = time.perf_counter()
    meter.start()
    losses = [step(b) for b in batches]
    meter.stop()
    return ProbeResult(
        spec=asdict(spec), device=str(device), runner="torch", measured_bytes=meter.peak - meter.baseline,
        baseline_bytes=meter.baseline, peak_bytes=meter.peak, reserved_peak_bytes=meter.reserved,
        trainable_params=n_train, frozen_graph_params=n_frozen_graph,
        llm_config=model.llm.config.to_dict(), seq_len=int(batches[0].input_ids.shape[1]),
        loss=losses[-1], seconds=time.perf_counter() - t0, engine_dtype=spec.dtype,
        loaded_bytes=loaded, resident_bytes=meter.baseline - loaded, steps_run=spec.steps,
    )


def _probe_recipe(spec: ProbeSpec) -> ProbeResult:
    """``warmup_steps + steps`` optimizer steps of the real Trainer (DeepSpeed, the run's recipe)."""
    import tempfile
    import time

    import deepspeed  # noqa: F401  imported before the model, so its import is not counted as resident

    from glm.core.config import config_from_dict
    from glm.core.train.arguments import Recipe, RunRecord
    from glm.core.train.loop import Trainer

    device = _device(spec)
    meter = _Meter(spec.device == "cuda")
    model, tok, enc_cfg, n_train, n_frozen_graph = _build(spec)
    loaded = meter.current()  # the model on the CPU; on a GPU the engine moves it there
    seq_len = 0

    class MeasuredTrainer(Trainer):
        """The real Trainer; the meter starts before the first measured micro-batch and stops
        before the final checkpoint is written."""

        def _micro_batch(self, index, per_epoch, dist):
            if index == warm_micro:
                meter.start()
            return super()._micro_batch(index, per_epoch, dist)

        def _save(self, engine, out, step, total, *args, **kwargs):
            if step == total:
                meter.stop()
                self.engine_info = ("bfloat16" if engine.bfloat16_enabled() else
                                    "float16" if engine.fp16_enabled() else "float32",
                                    int(engine.zero_optimization_stage()))
            return super()._save(engine, out, step, total, *args, **kwargs)

    def collate(items: list[int]):
        nonlocal seq_len
        if meter.baseline == 0.0:  # warm-up: a short sequence initialises the engine, optimizer states,
            # kernels and thread pools without leaving a full-size step's heap behind in the baseline
            return _batch(model, enc_cfg, ProbeSpec(**{**asdict(spec), "micro_batch": len(items),
                                                       "nodes_per_graph": 3}), 8, 1)
        batch = _batch(model, enc_cfg, ProbeSpec(**{**asdict(spec), "micro_batch": len(items)}), spec.text_tokens,
                       100 + items[0])
        seq_len = int(batch.input_ids.shape[1])
        return batch

    data = dict(spec.config)
    accum = int(data.get("training", {}).get("gradient_accumulation_steps", 1))
    warm_micro = spec.warmup_steps * accum
    total = spec.warmup_steps + spec.steps
    with tempfile.TemporaryDirectory(prefix="glm-probe-") as tmp:
        data["training"] = {**data.get("training", {}), "output_dir": tmp, "max_steps": total, "save_steps": 0,
                            "logging_steps": 1, "overwrite_output_dir": True, "resume": None, "init_from": None,
                            "stage": spec.stage, "micro_batch_size": spec.micro_batch, "plot_loss": False,
                            "save_total_limit": 1}
        data["model"] = {**data.get("model", {}),
                         "llm": {**data.get("model", {}).get("llm", {}),
                                 "gradient_checkpointing": spec.gradient_checkpointing}}
        cfg = config_from_dict(data, "<probe config>")
        dataset = list(range(spec.micro_batch * accum * total))
        trainer = MeasuredTrainer(cfg.training, Recipe.from_config(cfg), model, dataset, collate, progress=False,
                                  hidden_size=int(model.llm.config.hidden_size), record=RunRecord.from_config(cfg))
        t0 = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - t0
    dtype, stage = trainer.engine_info
    return ProbeResult(
        spec=asdict(spec), device=str(device), runner="recipe", measured_bytes=meter.peak - meter.baseline,
        baseline_bytes=meter.baseline, peak_bytes=meter.peak, reserved_peak_bytes=meter.reserved,
        trainable_params=n_train, frozen_graph_params=n_frozen_graph,
        llm_config=model.llm.config.to_dict(), seq_len=seq_len,
        loss=float(result.final_loss), seconds=seconds, recipe=cfg.recipe, zero_stage=stage, engine_dtype=dtype,
        loaded_bytes=loaded, resident_bytes=meter.baseline - loaded, steps_run=result.global_step,
    )


def _json_default(obj: Any) -> Any:
    return str(obj)


if __name__ == "__main__":  # the subprocess entry point used by run_probe
    _spec = ProbeSpec(**json.loads(sys.argv[1]))
    result = _probe_recipe(_spec) if _spec.runner == "recipe" else _probe_torch(_spec)
    print("GLM_PROBE_RESULT " + json.dumps(result.to_dict(), default=_json_default), flush=True)


def spec_from_config(cfg: Any, device: str = "cpu", steps: int = 2, text_tokens: Optional[int] = None,
                     runner: str = "recipe", attention: Optional[str] = None) -> ProbeSpec:
    """The probe of a :class:`~glm.core.config.RunConfig`: its LLM, encoder, stage and recipe, batches
    of the shape the planner assumes for ``device`` (:func:`glm.core.plan.from_config.from_run_config`)."""
    from dataclasses import replace

    from glm.core.factory import default_backend
    from glm.core.llm import tiny_family
    from glm.core.plan.from_config import from_run_config

    inp = from_run_config(cfg, device=device, text_tokens=text_tokens)
    if attention:
        inp = replace(inp, attention=attention)
    name = cfg.model.llm.name
    if name in ("smollm2-135m", "smollm2") and not cfg.model.llm.path:
        llm: Any = "smollm2"
    elif tiny_family(name) is not None:
        llm = {"family": tiny_family(name), **cfg.model.llm.options}
    else:
        llm = cfg.model.llm.path or name  # built-in config, random init (same memory as the real weights)
    return ProbeSpec(llm=llm, dtype=inp.dtype, stage=inp.stage, gradient_checkpointing=inp.gradient_checkpointing,
                     attention=inp.attention, micro_batch=inp.micro_batch, text_tokens=inp.text_tokens,
                     graphs_per_sample=inp.graphs_per_sample, nodes_per_graph=inp.nodes_per_graph, steps=steps,
                     device=device, backend=default_backend(cfg.backend), encoder=asdict(cfg.model.encoder),
                     runner=runner, config=cfg.to_dict() if runner == "recipe" else None,
                     quantization=inp.quantization)


def plan_input_for(result: ProbeResult):
    """The :class:`~glm.core.plan.memory.PlanInput` describing what ``result`` measured
    (for the recipe runner: the recipe's ZeRO stage and offload flags, the engine's dtype)."""
    from glm.core.plan.memory import PlanInput
    from glm.core.plan.models import shape_from_config

    spec = ProbeSpec(**result.spec)
    text = result.seq_len - spec.graphs_per_sample * spec.nodes_per_graph
    zero: dict[str, Any] = {"quantization": spec.quantization}
    if spec.config is not None:
        from glm.core.config import config_from_dict
        from glm.core.plan.from_config import tuning_fields

        run = config_from_dict(spec.config, "<probe config>")
        zero.update(tuning_fields(run.model.llm, spec.stage), accumulation=run.training.gradient_accumulation_steps)
        if spec.quantization == "4bit" and zero.get("tuning") != "qlora":
            zero["double_quant"] = False
    if result.runner == "recipe" and result.recipe:
        from glm.core.plan.from_config import recipe_settings

        rs = recipe_settings(result.recipe, "cuda" if spec.device == "cuda" else "cpu")
        zero.update(zero_stage=rs["zero_stage"], offload_optimizer=rs["offload_optimizer"],
                    offload_param=rs["offload_param"])
    return PlanInput(
        llm=shape_from_config(result.llm_config), dtype=result.engine_dtype or spec.dtype,
        trainable_params=result.trainable_params,
        frozen_graph_params=result.frozen_graph_params, stage=spec.stage, micro_batch=spec.micro_batch,
        text_tokens=text, graphs_per_sample=spec.graphs_per_sample, nodes_per_graph=spec.nodes_per_graph,
        loss_positions=labelled_positions(result.seq_len),
        gradient_checkpointing=spec.gradient_checkpointing, attention=spec.attention, padded=False,
        graph_dim=int(spec.encoder.get("out_dim", 128)), gnn_layers=int(spec.encoder.get("num_layers", 3)),
        device="cuda" if spec.device == "cuda" else "cpu", **zero,
    )


def compare(result: ProbeResult) -> dict[str, float]:
    """Estimate vs measurement for a probe: ``{"estimate", "measured", "error"}`` (error = est/meas - 1).

    The estimate is what the measured steps add on top of what was resident before them:
    :attr:`MemoryPlan.peak_over_weights` (weights, CUDA context and reserve excluded), less the
    optimizer states for the recipe runner (its warm-up step allocated them already).
    """
    from glm.core.plan.memory import estimate

    plan = estimate(plan_input_for(result))
    est = plan.peak_over_weights
    if result.runner == "recipe":
        est -= sum(it.gpu for it in plan.items if it.name == "optimizer states")
    return {"estimate": est, "measured": result.measured_bytes, "error": est / result.measured_bytes - 1.0}
