"""Measured peaks: run a few real training steps of the GraphLanguageModel and record memory.

Each probe runs in a fresh Python process (``python -m glm.core.plan.probe SPEC_JSON``) so
measurements are independent of one another and of the caller.

What is measured
----------------
* **CUDA**: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the measured
  steps (after ``reset_peak_memory_stats``) minus the allocated bytes before them; the absolute
  peaks are reported too.
* **CPU**: growth of the process's peak resident set size. After the model is built and a short
  warm-up step has initialised the libraries, the kernel's high-water mark is reset
  (``/proc/self/clear_refs``, value 5) and ``VmHWM - VmRSS(before)`` is read after the steps.
  glibc is told to serve every allocation above 64 KiB with ``mmap`` (``MALLOC_MMAP_THRESHOLD_``)
  so freed tensors leave the RSS at once and the high-water mark tracks live tensors.
  Weights are already resident before the steps, so the CPU number compares with the
  planner's :attr:`~glm.core.plan.memory.MemoryPlan.peak_over_weights` (activations, logits and
  loss, gradients, optimizer states, graph side), not with its full peak.

The model is the real :class:`~glm.core.model.GraphLanguageModel` with the real
:class:`~glm.core.encoder.GraphEncoder` on the chosen backend, trainable set from
:func:`glm.core.stages.set_stage`, trained with plain ``torch.optim.AdamW`` (``runner="torch"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

MMAP_THRESHOLD = "65536"


class ProbeError(RuntimeError):
    """A probe subprocess failed; the message carries its last lines of output."""


@dataclass
class ProbeSpec:
    """One measured configuration.

    ``llm``: ``"smollm2"`` (packaged weights), a built-in config name (random init), or a dict of
    :func:`glm.core.llm.tiny_llm` keyword arguments (``{"family": "llama", "hidden_size": 64, ...}``).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_probe(spec: ProbeSpec, timeout: float = 600.0) -> ProbeResult:
    """Run ``spec`` in a fresh subprocess and return its measurement."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD_="0",
               OMP_NUM_THREADS=str(spec.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TL_BACKEND=os.environ.get("TL_BACKEND", "torch"), TOKENIZERS_PARALLELISM="false")
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
    import torch

    from glm.core.encoder import EncoderConfig, build_encoder
    from glm.core.llm import llm_config, load_smollm2, tiny_llm, tiny_tokenizer
    from glm.core.model import GraphLAMAConfig, GraphLanguageModel
    from glm.core.stages import set_stage

    dtype = getattr(torch, spec.dtype)
    if spec.llm == "smollm2":
        llm, tok = load_smollm2(dtype=dtype)
    elif isinstance(spec.llm, dict):
        llm, tok = tiny_llm(**spec.llm)
    else:
        from transformers import AutoModelForCausalLM

        llm, tok = AutoModelForCausalLM.from_config(llm_config(spec.llm)), tiny_tokenizer()
    llm = llm.to(dtype)
    llm.set_attn_implementation(spec.attention)
    enc_cfg = EncoderConfig(**spec.encoder)
    encoder = build_encoder(enc_cfg, spec.backend)
    model = GraphLanguageModel(llm, tok, encoder, GraphLAMAConfig(graph_dim=enc_cfg.out_dim))
    model.to(dtype)
    trained = set(set_stage(model, spec.stage))
    n_train = sum(p.numel() for n, p in model.named_parameters() if n in trained)
    n_graph = sum(p.numel() for n, p in model.graph_parameters().items())
    return model, tok, enc_cfg, n_train, n_graph - n_train


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
            ids += [start] + [patch] * n + [end]
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
    labels = torch.full_like(input_ids, -100)
    labels[:, -max(1, input_ids.shape[1] // 4):] = input_ids[:, -max(1, input_ids.shape[1] // 4):]
    return GraphBatch(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels,
        graphs=SubgraphBatch.from_subgraphs(graphs),
        graphs_per_sample=torch.full((spec.micro_batch,), spec.graphs_per_sample),
        task_embedding=torch.randn(spec.micro_batch, model.config.gate_dim, generator=g),
    )


def _probe(spec: ProbeSpec) -> ProbeResult:
    import gc
    import time

    import torch

    torch.set_num_threads(spec.threads)
    torch.manual_seed(0)
    cuda = spec.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ProbeError("device cuda requested but torch.cuda.is_available() is False")
    device = torch.device(spec.device)
    model, tok, enc_cfg, n_train, n_frozen_graph = _build(spec)
    model.to(device)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    dtype = getattr(torch, spec.dtype)

    def step(batch) -> float:
        with torch.autocast(device.type, dtype=dtype, enabled=False):
            loss = model(batch.to(device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    # warm-up on a short sequence: initialises kernels, thread pools and autograd, not the peak
    warm = _batch(model, enc_cfg, ProbeSpec(**{**asdict(spec), "micro_batch": 1, "nodes_per_graph": 3}), 8, 1)
    loss = model(warm.to(device)).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    del loss
    batches = [_batch(model, enc_cfg, spec, spec.text_tokens, 100 + i) for i in range(spec.steps)]
    gc.collect()
    t0 = time.perf_counter()
    if cuda:
        torch.cuda.synchronize()
        baseline = float(torch.cuda.memory_allocated())
        torch.cuda.reset_peak_memory_stats()
    else:
        baseline = _status_kib("VmRSS") * 1024.0
        _reset_peak_rss()
    losses = [step(b) for b in batches]
    if cuda:
        torch.cuda.synchronize()
        peak, reserved = float(torch.cuda.max_memory_allocated()), float(torch.cuda.max_memory_reserved())
    else:
        peak, reserved = _status_kib("VmHWM") * 1024.0, None
    return ProbeResult(
        spec=asdict(spec), device=str(device), runner="torch", measured_bytes=peak - baseline,
        baseline_bytes=baseline, peak_bytes=peak, reserved_peak_bytes=reserved,
        trainable_params=n_train, frozen_graph_params=n_frozen_graph,
        llm_config=model.llm.config.to_dict(), seq_len=int(batches[0].input_ids.shape[1]),
        loss=losses[-1], seconds=time.perf_counter() - t0,
    )


def _json_default(obj: Any) -> Any:
    return str(obj)


if __name__ == "__main__":  # the subprocess entry point used by run_probe
    result = _probe(ProbeSpec(**json.loads(sys.argv[1])))
    print("GLM_PROBE_RESULT " + json.dumps(result.to_dict(), default=_json_default), flush=True)


def plan_input_for(result: ProbeResult):
    """The :class:`~glm.core.plan.memory.PlanInput` describing what ``result`` measured."""
    from glm.core.plan.memory import PlanInput
    from glm.core.plan.models import shape_from_config

    spec = ProbeSpec(**result.spec)
    text = result.seq_len - spec.graphs_per_sample * spec.nodes_per_graph
    return PlanInput(
        llm=shape_from_config(result.llm_config), dtype=spec.dtype, trainable_params=result.trainable_params,
        frozen_graph_params=result.frozen_graph_params, stage=spec.stage, micro_batch=spec.micro_batch,
        text_tokens=text, graphs_per_sample=spec.graphs_per_sample, nodes_per_graph=spec.nodes_per_graph,
        gradient_checkpointing=spec.gradient_checkpointing, attention=spec.attention, padded=False,
        graph_dim=int(spec.encoder.get("out_dim", 128)), gnn_layers=int(spec.encoder.get("num_layers", 3)),
        device="cuda" if spec.device == "cuda" else "cpu",
    )


def compare(result: ProbeResult) -> dict[str, float]:
    """Estimate vs measurement for a probe: ``{"estimate", "measured", "error"}`` (error = est/meas - 1).

    On CPU the estimate is :attr:`MemoryPlan.peak_over_weights` (what the RSS growth measures);
    on CUDA it is the allocated peak over the loaded model as well (context and reserve excluded).
    """
    from glm.core.plan.memory import estimate

    plan = estimate(plan_input_for(result))
    est = plan.peak_over_weights
    return {"estimate": est, "measured": result.measured_bytes, "error": est / result.measured_bytes - 1.0}
