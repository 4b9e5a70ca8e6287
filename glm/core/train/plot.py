"""Loss / learning-rate curves from ``trainer_log.jsonl`` (LLaMA-Factory's ``plot_loss``).

Each key gets ``training_<key>.png``: the raw curve (alpha 0.4) and a TensorBoard-style
exponential moving average whose weight grows with the number of points. A key naming a family
of the training-health fields (``grad_norm``, ``update_ratio``, ``act``; see
:mod:`glm.core.train.health`) gets one PNG with a curve per member (log scale for norms and ratios).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from glm.core.io import atomic_path
from glm.core.train.log import read_log


def smooth(values: Sequence[float]) -> list[float]:
    """EMA with weight ``1.8 * (1 / (1 + exp(-0.05 * n)) - 0.5)`` (0 for one point, ~0.9 for many)."""
    if not values:
        return []
    weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], values[0]
    for v in values:
        last = last * weight + (1 - weight) * v
        out.append(last)
    return out


def plot_run(run_dir: str | os.PathLike, keys: Sequence[str] = ("loss", "lr")) -> list[Path]:
    """Write one PNG per key into ``run_dir``; return the paths (keys absent from the log are skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(run_dir)
    if not records:
        raise FileNotFoundError(f"{Path(run_dir) / 'trainer_log.jsonl'}: no log records to plot")
    written = []
    for key in keys:
        members = sorted({k for r in records for k in r if k.startswith(key + "/")})
        if members:
            written.append(_plot_family(plt, records, key, members, Path(run_dir)))
            continue
        pts = [(r["current_steps"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if not pts:
            continue
        steps, values = zip(*pts)
        fig = plt.figure(figsize=(6, 4))
        plt.plot(steps, values, color="#1f77b4", alpha=0.4, label="original")
        plt.plot(steps, smooth(list(values)), color="#1f77b4", label="smoothed")
        plt.title(f"{key} of {Path(run_dir).name}")
        plt.xlabel("step")
        plt.ylabel(key)
        plt.legend()
        path = Path(run_dir) / f"training_{key}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(path)
    return written




def _plot_family(plt, records: list[dict], family: str, members: list[str], run_dir: Path) -> Path:
    fig = plt.figure(figsize=(7, 4))
    for name in members:
        pts = [(r["current_steps"], r[name]) for r in records
               if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])]
        if pts:
            steps, values = zip(*pts)
            plt.plot(steps, values, label=name[len(family) + 1:])
    if family in ("grad_norm", "update_ratio"):
        plt.yscale("log")
    plt.title(f"{family} of {run_dir.name}")
    plt.xlabel("step")
    plt.legend(fontsize=7)
    path = run_dir / f"training_{family}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
