"""Training-step time of the demo's GraphLAMA pre-training on CPU: LLM dtype x where the LM head runs.

    python bench/train_step.py [--steps 6] [--threads N] [--batch 4]

Same model (SmolLM2-135M frozen + the demo's graph side), same real pre-training micro-batches
(the demo's CiteSeer TAG samples), measured side by side in one run:

* ``float32`` vs ``bfloat16`` frozen LLM (the graph side keeps float32 weights);
* ``logits: all`` (the LLM's own loss: LM head at every position, glm 0.1) vs ``answer``
  (``training.loss: lm``: the head only where the loss reads it) vs ``choice``.

Each cell is the median of ``--steps`` forward + backward + AdamW steps after one warm-up step.
Printed: seconds per step, tokens / s, the ratio to the glm 0.1 setting (float32, all), and the
achieved matmul rate (``4 x non-embedding params x tokens`` + the head's FLOPs, forward and
input-gradient backward) as a share of this machine's bf16 / fp32 matmul peak, measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("TL_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glm.core.config import load_config  # noqa: E402
from glm.core.factory import build_model  # noqa: E402
from glm.core.stages import set_stage  # noqa: E402
from glm.core.train.pipeline import make_collator, prepare_data, stage_samples  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` matmul in ``dtype`` (best of ``repeats``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def step_flops(model, batch, head_positions: int) -> float:
    """Forward + input-gradient backward of the frozen LLM: 4 FLOPs per weight per token, head at ``head_positions``."""
    llm = model.llm
    embed = llm.get_input_embeddings().weight
    body = sum(p.numel() for n, p in llm.named_parameters() if p is not embed)
    tokens = int(batch.attention_mask.sum())
    return 4.0 * body * tokens + 4.0 * embed.numel() * head_positions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = load_config(ROOT / "examples" / "demo_pretrain.yaml", ["backend=pyg"])
    data = prepare_data(base)
    samples = stage_samples(base, data)
    peaks = {"bfloat16": matmul_peak(torch.bfloat16), "float32": matmul_peak(torch.float32)}
    print(f"matmul peak here ({torch.get_num_threads()} threads): bf16 {peaks['bfloat16']:.0f} GFLOP/s, "
          f"fp32 {peaks['float32']:.0f} GFLOP/s")

    rows = []
    for dtype in ("float32", "bfloat16"):
        cfg = load_config(ROOT / "examples" / "demo_pretrain.yaml", ["backend=pyg", f"model.llm.dtype={dtype}"])
        model = build_model(cfg)
        set_stage(model, "pretrain")
        collate = make_collator(cfg, model, data)
        batches = [collate(samples[i * args.batch:(i + 1) * args.batch]) for i in range(args.steps + 1)]
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for loss in (None, "lm", "choice"):
            model.train_loss = loss
            times, flops, tokens = [], [], []
            for i, batch in enumerate(batches):
                t = _timed(lambda m=model, b=batch, o=opt: _step(m, b, o))
                if i == 0:
                    continue  # warm-up
                times.append(t)
                answer = int((batch.labels[:, 1:] != -100).any(0).sum())
                head = int(batch.attention_mask.shape[0] * (batch.attention_mask.shape[1] if loss is None else answer))
                flops.append(step_flops(model, batch, head))
                tokens.append(int(batch.attention_mask.sum()))
            sec = statistics.median(times)
            rate = statistics.median(f / t for f, t in zip(flops, times)) / 1e9
            rows.append((dtype, "all" if loss is None else loss, sec, statistics.median(tokens) / sec, rate,
                         rate / peaks[dtype]))
        del model, opt

    ref = rows[0][2]
    print(f"\n{'LLM dtype':<10} {'loss / logits':<14} {'s/step':>7} {'tokens/s':>9} {'vs 0.1':>7} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for dtype, loss, sec, tps, rate, share in rows:
        label = {"all": "lm, all pos.", "lm": "lm, answers", "choice": "choice"}[loss]
        print(f"{dtype:<10} {label:<14} {sec:>7.2f} {tps:>9.0f} {ref / sec:>6.2f}x {rate:>8.0f} {share:>7.0%}")
    print(f"\nmicro-batch {args.batch} of the demo's pre-training samples, median of {args.steps} steps; "
          "'vs 0.1' = speed-up over float32 with logits at every position")


def _step(model, batch, opt) -> None:
    loss = model(batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
