"""``glm bench fewshot --generate``: the method rows' decoded answers read by every answer parser.

The same test nodes as the choice-scored table, decoded greedily (``eval.max_new_tokens``); each parser of
:mod:`glm.core.eval.parsers` (``exact``, ``substring``, ``graphlama``, ``graphgpt``, ``llaga``) turns an
answer into a class or into none ("unmatched"). Tools in the field report generated answers under their
own parser, so the table puts them side by side: the spread between columns is how much a published
number depends on its parser.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from glm.core.eval.parsers import ANSWER_PARSERS


def parsers_mean(results: Sequence[Any]) -> dict[str, dict[str, float]]:
    """``{parser: {"accuracy", "unmatched"}}`` averaged over the seeds that decoded (``RowSeed.extra``)."""
    decoded = [r.extra["parsers"] for r in results if "parsers" in r.extra]
    return {p: {k: statistics.fmean(d[p][k] for d in decoded) for k in ("accuracy", "unmatched")}
            for p in ANSWER_PARSERS if all(p in d for d in decoded)}


def parsers_markdown(summary: Sequence[dict[str, Any]]) -> str:
    """A row per decoded bench row, a column per parser: ``accuracy (unmatched answers per seed)``."""
    parsers = list(ANSWER_PARSERS)
    lines = ["## Generated answers under each answer parser",
             "",
             "Accuracy of the decoded answers (greedy) per parser; in brackets the answers it matched to no "
             "class, per seed. Choice scoring (the table above) never needs a parser.",
             "",
             f"| row | {' | '.join(parsers)} |", "|---" * (len(parsers) + 1) + "|"]
    for s in summary:
        if "parsers" in s:
            cells = [f"{s['parsers'][p]['accuracy']:.3f} ({s['parsers'][p]['unmatched']:.1f})"
                     if p in s["parsers"] else "–" for p in parsers]
            lines.append(f"| {s['row']} | {' | '.join(cells)} |")
    return "\n".join(lines)
