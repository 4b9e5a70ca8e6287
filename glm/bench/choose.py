"""``glm bench choose``: pick one of several candidate settings from their validation reports.

Each candidate is a bench output folder written with ``--split val`` (``bench-val.json``, few-shot or
generation); the settings that made it are the report's ``overrides`` (and ``adapt_configs``). For one row
and one metric every candidate gets its mean over draws, and its difference to the best candidate paired
draw by draw (the same draw index = the same shots or training examples) with the standard error of that
difference. Two rules:

* ``best``: the highest mean (ties: the cheaper);
* ``within-se`` (Breiman's one-standard-error rule): the cheapest candidate whose mean is within one
  standard error of the best's, the error being that of the paired difference (of the best's mean when
  the candidates share no draw). Cost: the row's train + inference wall seconds per draw plus the
  method's pre-training seconds (unknown, shown as ``-`` and ranked as the highest, when the report reused a
  pre-trained run whose seconds were never recorded), so candidates that differ in cost (epochs, steps)
  are compared by it fairly only when they ran on idle cores.

A test report (``bench.json``) is never read: settings are chosen on validation nodes only.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from glm.bench.settings import BenchError

RULES = ("best", "within-se")
VAL_REPORT = "bench-val.json"


@dataclass
class Candidate:
    """One candidate's scores of ``row`` under ``metric``, by draw."""

    folder: Path
    settings: str  # the overrides / adaptation configs that made the report
    values: dict[int, float]  # draw (seed) -> metric
    scored_nodes: int
    cost_seconds: Optional[float]
    diff: float = 0.0  # mean paired difference to the best candidate
    diff_se: float = 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def se(self) -> float:
        v = list(self.values.values())
        return statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0


def read_candidate(folder: str | Path, row: str, metric: Optional[str]) -> tuple[Candidate, str]:
    """The candidate of ``folder``'s validation report; returns it and the metric used (default: ``accuracy``
    for a few-shot report, ``rouge1`` for a generation report)."""
    folder = Path(folder)
    path = folder / VAL_REPORT
    if not path.is_file():
        found = " (it has a test report, bench.json: settings are chosen on validation nodes only)" \
            if (folder / "bench.json").is_file() else ""
        raise BenchError(f"{folder}: no {VAL_REPORT}; run the bench there with --split val{found}")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        results = [r for r in report["results"] if r["row"] == row]
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{path}: not a bench report ({type(exc).__name__}: {exc})") from None
    if not results:
        rows = sorted({r.get("row") for r in report["results"]})
        raise BenchError(f"{path}: no row {row!r}; it has {', '.join(map(str, rows))}")
    generation = "draw" in results[0]
    metric = metric or ("rouge1" if generation else "accuracy")
    flat = [{**r, **r.get("extra", {})} for r in results]
    if metric not in flat[0]:
        known = sorted(k for k, v in flat[0].items() if isinstance(v, (int, float)) and k not in ("draw", "seed"))
        raise BenchError(f"{path}: row {row!r} has no metric {metric!r}; it has {', '.join(known)}")
    values = {int(r["draw" if generation else "seed"]): float(r[metric]) for r in flat}
    run_seconds = statistics.fmean(r["train_seconds"] + r["infer_seconds_per_node"] * r["test_nodes"] for r in flat)
    method = row.split("@")[0]
    times = report.get("time", report)
    made, reused = times.get("pretrain_seconds", {}), times.get("pretrain_reused", {})
    pre = made[method] if method in made else reused[method] if method in reused else 0.0  # None: not recorded
    overrides = report.get("overrides")
    settings = "(not recorded: an older report)" if overrides is None else " ".join(overrides) or "(the config as is)"
    if report.get("config"):
        settings = f"{report['config']} {settings if overrides else ''}".strip()
    recorded = report.get("adapt_settings") or {m: _split_label(label) for m, label in
                                                 (report.get("adapt_configs") or {}).items()}
    for m, entry in recorded.items():
        settings += " " + adapt_options(m, entry["file"], entry["changes"], report.get("config"))
    return Candidate(folder, settings, values, int(flat[0]["test_nodes"]),
                     None if pre is None else run_seconds + pre), metric


def _split_label(label: str) -> dict[str, Any]:
    """An older report's ``adapt_configs`` entry ``FILE + KEY=VALUE + ...`` (before ``adapt_settings``)."""
    path, *changes = label.split(" + ")
    return {"file": path, "changes": changes}


def adapt_options(method: str, path: str, changes: Sequence[str], config: Optional[str]) -> str:
    """A method's recorded adaptation (its file and ``--adapt-set`` changes) as the bench options that made
    it: ``--adapt-config [METHOD=]FILE`` (left out when FILE is the bench's CONFIG) and one
    ``--adapt-set [METHOD:]KEY=VALUE`` per change."""
    at = "" if method == "*" else method
    options = [] if changes and path == config else [f"--adapt-config {at + '=' if at else ''}{path}"]
    return " ".join(options + [f"--adapt-set {at + ':' if at else ''}{c}" for c in changes])


def choose(candidates: Sequence[Candidate], rule: str = "best") -> Candidate:
    """The chosen candidate under ``rule``; fills every candidate's ``diff`` / ``diff_se`` to the best."""
    if rule not in RULES:
        raise BenchError(f"--rule: expected one of {', '.join(RULES)}, found {rule!r}")
    nodes = {c.scored_nodes for c in candidates}
    if len(nodes) > 1:
        raise BenchError(f"the candidates were scored on different numbers of validation nodes ({sorted(nodes)}); "
                         "compare reports of one split")
    best = max(candidates, key=lambda c: (c.mean, -_cost(c)))
    for c in candidates:
        shared = sorted(set(c.values) & set(best.values))
        d = [c.values[k] - best.values[k] for k in shared]
        c.diff = statistics.fmean(d) if d else c.mean - best.mean
        c.diff_se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else best.se
    if rule == "best":
        return best
    near = [c for c in candidates if c.diff >= -c.diff_se - 1e-12]
    return min(near, key=lambda c: (_cost(c), -c.mean))


def _cost(c: Candidate) -> float:
    """Seconds, an unknown cost counting as the highest (never taken for the cheaper candidate)."""
    return math.inf if c.cost_seconds is None else c.cost_seconds


def markdown(candidates: Sequence[Candidate], chosen: Candidate, row: str, metric: str, rule: str) -> str:
    lines = [f"Row {row}, {metric} on {chosen.scored_nodes} validation nodes, rule {rule}:", "",
             "| candidate | settings | draws | mean ± SE | vs best (paired) | cost s | |", "|---|---|---|---|---|---|---|"]
    for c in candidates:
        cost = "-" if c.cost_seconds is None else f"{c.cost_seconds:.0f}"
        lines.append(f"| {c.folder} | {c.settings} | {len(c.values)} | {c.mean:.4g} ± {c.se:.2g} | "
                     f"{c.diff:+.4g} ± {c.diff_se:.2g} | {cost} | {'**chosen**' if c is chosen else ''} |")
    lines += ["", f"chosen: {chosen.folder}: {chosen.settings}", "(report the test nodes once, with these settings)"]
    return "\n".join(lines)
