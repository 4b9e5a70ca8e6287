"""``glm bench fewshot --shots K,K,...``: every row's accuracy against k, from one bench per k."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from glm.bench.fewshot import all_rows
from glm.core.io import atomic_write_text


def write_curve(out: Path, summaries: dict[int, list[dict[str, Any]]], title: str,
                split: str = "test") -> dict[str, Path]:
    """Every row's accuracy (mean ± std over seeds) against k: ``curve.md`` (a row per bench row, a column
    per k), ``curve.json`` and ``curve.png`` (one line per row, std as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = sorted(summaries)
    cells = {k: {s["row"]: s for s in summaries[k]} for k in shots}
    rows = [r for r in all_rows() if any(r in cells[k] for k in shots)]

    def cell(k: int, row: str) -> str:
        s = cells[k].get(row)
        if s is None or s["accuracy"] != s["accuracy"]:
            return "–"
        return f"{s['accuracy']:.3f}" + (f" ± {s['accuracy_std']:.3f}" if s["accuracy_std"] is not None else "")

    table = "\n".join([f"| row | {' | '.join(f'k={k}' for k in shots)} |", "|---" * (len(shots) + 1) + "|",
                       *[f"| {r} | {' | '.join(cell(k, r) for k in shots)} |" for r in rows]])
    suffix = "" if split == "test" else f"-{split}"
    paths = {kind: out / f"curve{suffix}.{ext}" for kind, ext in (("markdown", "md"), ("json", "json"), ("png", "png"))}
    atomic_write_text(f"# Few-shot bench: accuracy against k\n\n{title}\n\n{table}\n", paths["markdown"])
    atomic_write_text(json.dumps({"title": title, "shots": shots,
                                  "rows": {r: {str(k): cells[k].get(r) for k in shots} for r in rows}},
                                 indent=1, default=str), paths["json"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ks = [k for k in shots if r in cells[k] and cells[k][r]["accuracy"] == cells[k][r]["accuracy"]]
        ax.errorbar(ks, [cells[k][r]["accuracy"] for k in ks], yerr=[cells[k][r]["accuracy_std"] or 0 for k in ks],
                    marker="o", capsize=3, label=r)
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("k (shots per class)")
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
