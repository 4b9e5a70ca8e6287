"""Every row's accuracy against one setting, from one bench per value: k (``glm bench fewshot --shots
K,K,...``) or the graph's size (``bench/new_graph_size.py``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from glm.bench.fewshot import all_rows
from glm.core.io import atomic_write_text

AXES = {"k": ("k", "k (shots per class)", "curve"), "nodes": ("nodes", "nodes in the graph", "size-curve")}
# axis -> (column label, x-axis label, file stem)


def probes_table(summaries: dict[int, list[dict[str, Any]]], column: str = "k") -> str:
    """Per value and method row (those with a token probe): accuracy, encoder / token probe, accuracy on
    its own shots (``""`` without method rows)."""
    def cell(value: Any) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = [f"| {column} | row | accuracy | probe: encoder / token | on the shots |", "|---|---|---|---|---|"]
    for value, summary in sorted(summaries.items()):
        lines += [f"| {value} | {s['row']} | {cell(s['accuracy'])} | {cell(s.get('encoder_probe'))} / "
                  f"{cell(s['token_probe'])} | {cell(s.get('shot_accuracy'))} |"
                  for s in summary if s.get("token_probe") is not None]
    return "\n".join(lines) if len(lines) > 2 else ""


def write_curve(out: Path, summaries: dict[int, list[dict[str, Any]]], title: str,
                split: str = "test", axis: str = "k") -> dict[str, Path]:
    """Every row's accuracy (mean ± std over seeds) against ``axis`` (:data:`AXES`: ``k`` or ``nodes``), one
    bench summary per value: ``curve.md`` (a row per bench row, a column per value), ``curve.json`` and
    ``curve.png`` (one line per row, std as error bars); ``size-curve.*`` against nodes. The markdown adds
    :func:`probes_table` for the method rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column, xlabel, stem = AXES[axis]
    values = sorted(summaries)
    cells = {k: {s["row"]: s for s in summaries[k]} for k in values}
    rows = [r for r in all_rows() if any(r in cells[k] for k in values)]

    def cell(k: int, row: str) -> str:
        s = cells[k].get(row)
        if s is None or s["accuracy"] != s["accuracy"]:
            return "–"
        return f"{s['accuracy']:.3f}" + (f" ± {s['accuracy_std']:.3f}" if s["accuracy_std"] is not None else "")

    table = "\n".join([f"| row | {' | '.join(f'{column}={k}' for k in values)} |", "|---" * (len(values) + 1) + "|",
                       *[f"| {r} | {' | '.join(cell(k, r) for k in values)} |" for r in rows]])
    suffix = "" if split == "test" else f"-{split}"
    paths = {kind: out / f"{stem}{suffix}.{ext}" for kind, ext in (("markdown", "md"), ("json", "json"), ("png", "png"))}
    probes = probes_table(summaries, column)
    atomic_write_text(f"# Few-shot bench: accuracy against {xlabel}\n\n{title}\n\n{table}\n"
                      + (f"\nThe method rows, where they lose it (probes fitted on the same shots):\n\n{probes}\n"
                         if probes else ""), paths["markdown"])
    named = {"shots": values} if axis == "k" else {}
    atomic_write_text(json.dumps({"title": title, "axis": axis, "values": values, **named,
                                  "rows": {r: {str(k): cells[k].get(r) for k in values} for r in rows}},
                                 indent=1, default=str), paths["json"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ks = [k for k in values if r in cells[k] and cells[k][r]["accuracy"] == cells[k][r]["accuracy"]]
        ax.errorbar(ks, [cells[k][r]["accuracy"] for k in ks], yerr=[cells[k][r]["accuracy_std"] or 0 for k in ks],
                    marker="o", capsize=3, label=r)
    ax.set_xscale("log")
    ax.set_xticks(values, [str(k) for k in values])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
