"""Answer parsers: how a generated answer is judged against the class names (``eval.match``).

Each project in the field reads generated class answers its own way, so the same outputs give different
accuracies. glm names each rule and reports them side by side (``glm eval --mode generate`` prints all):

=============  ===========================================================================================
``exact``      glm's default: the answer's first line, normalised (lower case, punctuation and a leading
               "Answer:" dropped), equals one class name normalised the same way.
``substring``  glm's lenient rule: the normalised label occurs, as whole words, in the normalised answer
               (longest class names tried first for the matched class).
``graphlama``  GraphLAMA's ``find_common_categories`` (``grapht3/eval/run_SFT_task.py``): lower-cased raw
               substrings, no word boundaries; the answer's categories are the class names inside it, the
               label's are the class names inside the label; correct when they share one. Quirks: an answer
               that lists every class is correct; a class name inside another ("learning" in "machine
               learning") matches both. Its products rule (same text before the last comma counts as
               "almost correct", reported apart in the official script) is not applied.
``graphgpt``   GraphGPT's accuracy script: the class names found in the answer, ordered by where they first
               occur; the first is the prediction (its arXiv variant finds ``cs.XX`` codes by regex; here
               the class names, case-insensitive). At the same position the longer name wins.
``llaga``      LLaGA's ``eval_res.py``: the answer equals the label (lower case, stripped), or the label
               occurs in it and no other class name does (its cora / pubmed / arxiv rule on full names).
=============  ===========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from glm.core.eval.metrics import normalize


@dataclass(frozen=True)
class Judgement:
    matched: Optional[str]  # the class the answer is read as (None: no class)
    correct: bool


def _exact(answer: str, label: str, choices: Sequence[str]) -> Judgement:
    pred = normalize(answer.strip().split("\n", 1)[0])
    matched = next((c for c in choices if normalize(c) == pred), None)
    return Judgement(matched, matched == label)


def _substring(answer: str, label: str, choices: Sequence[str]) -> Judgement:
    padded = f" {normalize(answer)} "
    matched = next((c for c in sorted(choices, key=lambda c: -len(normalize(c))) if f" {normalize(c)} " in padded),
                   None)
    correct = f" {normalize(label)} " in padded
    return Judgement(label if correct else matched, correct)


def _graphlama(answer: str, label: str, choices: Sequence[str]) -> Judgement:
    out, lab = answer.lower(), label.lower()
    mentioned = [c for c in choices if c.lower() in out]
    common = set(mentioned) & {c for c in choices if c.lower() in lab}
    return Judgement(label if common else (mentioned[0] if mentioned else None), bool(common))


def _graphgpt(answer: str, label: str, choices: Sequence[str]) -> Judgement:
    out = answer.lower()
    found = [(out.find(c.lower()), -len(c), i) for i, c in enumerate(choices) if c.lower() in out]
    matched = choices[min(found)[2]] if found else None
    return Judgement(matched, matched == label)


def _llaga(answer: str, label: str, choices: Sequence[str]) -> Judgement:
    out = answer.lower().strip()
    if out == label.lower().strip():
        return Judgement(label, True)
    mentioned = [c for c in choices if c.lower().strip() in out]
    if len(mentioned) == 1:
        return Judgement(mentioned[0], mentioned[0] == label)
    return Judgement(None, False)


ANSWER_PARSERS: dict[str, Callable[[str, str, Sequence[str]], Judgement]] = {
    "exact": _exact, "substring": _substring, "graphlama": _graphlama, "graphgpt": _graphgpt, "llaga": _llaga,
}


def judge(answer: str, label: str, choices: Sequence[str], mode: str = "exact") -> Judgement:
    """``answer`` judged against ``label`` by the parser ``mode`` (a key of :data:`ANSWER_PARSERS`)."""
    parser = ANSWER_PARSERS.get(mode)
    if parser is None:
        raise ValueError(f"answer parser must be one of {', '.join(ANSWER_PARSERS)}; found {mode!r}")
    return parser(answer, label, list(choices))


def accuracy_by_parser(answers: Sequence[str], labels: Sequence[str],
                       choices: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{mode: {"accuracy", "unmatched"}}`` for every parser (unmatched: answers read as no class)."""
    out = {}
    for mode in ANSWER_PARSERS:
        js = [judge(a, y, choices, mode) for a, y in zip(answers, labels)]
        out[mode] = {"accuracy": sum(j.correct for j in js) / len(js) if js else float("nan"),
                     "unmatched": float(sum(j.matched is None for j in js))}
    return out
