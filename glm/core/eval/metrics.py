"""Classification and generation metrics with explicit label matching.

Matching a free-text prediction to a class:

* ``exact`` (default): the prediction, normalised (lower case, punctuation and surrounding
  words such as "Answer:" stripped, whitespace collapsed), must equal one class name
  normalised the same way; otherwise the prediction matches no class and counts as wrong.
* ``substring``: the official GraphLAMA scoring (``grapht3/eval/run_SFT_task.py``): correct when the normalised
  label occurs inside the normalised prediction. Lenient: "AI or ML" is correct for both.

BLEU uses ``sacrebleu`` (``pip install sacrebleu``) when installed; it raises
:class:`ImportError` naming the package otherwise (no home-made BLEU).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Optional, Sequence

_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
_PREFIX = re.compile(r"^(the )?(answer|category|class|label)( is)?\s*[:\-]?\s*")


def normalize(text: str) -> str:
    """Lower case, NFKC, punctuation -> space, collapsed whitespace, leading "answer:" dropped."""
    text = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    text = _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    return _PREFIX.sub("", text).strip()


def match_class(prediction: str, choices: Sequence[str], mode: str = "exact") -> Optional[str]:
    """The class a prediction names, or ``None``.

    ``exact``: the normalised prediction equals a normalised choice (first line only).
    ``substring``: the first choice whose normalised name occurs in the normalised prediction
    (longest names tried first, so "Machine Learning" wins over "Learning").
    """
    if mode not in ("exact", "substring"):
        raise ValueError(f"match mode must be 'exact' or 'substring', got {mode!r}")
    first_line = prediction.strip().split("\n", 1)[0] if mode == "exact" else prediction
    pred = normalize(first_line)
    if mode == "exact":
        for c in choices:
            if normalize(c) == pred:
                return c
        return None
    padded = f" {pred} "
    for c in sorted(choices, key=lambda c: -len(normalize(c))):
        if f" {normalize(c)} " in padded:
            return c
    return None


def is_correct(prediction: str, label: str, choices: Sequence[str], mode: str = "exact") -> bool:
    if mode == "substring":  # the paper's rule: label inside the output
        return f" {normalize(label)} " in f" {normalize(prediction)} "
    return match_class(prediction, choices, mode) == label


def accuracy(predicted: Sequence[Optional[str]], labels: Sequence[str]) -> float:
    """Share of ``predicted[i] == labels[i]`` (``None`` = no class matched = wrong)."""
    if len(predicted) != len(labels):
        raise ValueError(f"accuracy: {len(predicted)} predictions for {len(labels)} labels")
    if not labels:
        return float("nan")
    return sum(p == y for p, y in zip(predicted, labels)) / len(labels)


def macro_f1(predicted: Sequence[Optional[str]], labels: Sequence[str],
             classes: Optional[Sequence[str]] = None) -> float:
    """Unweighted mean of per-class F1 over ``classes`` (default: the labels present).
    Unmatched predictions (``None``) are false negatives of their true class."""
    classes = list(dict.fromkeys(classes if classes is not None else labels))
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, y in zip(predicted, labels):
        if p == y:
            tp[y] += 1
        else:
            fn[y] += 1
            if p is not None:
                fp[p] += 1
    scores = []
    for c in classes:
        denom = 2 * tp[c] + fp[c] + fn[c]
        scores.append(2 * tp[c] / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else float("nan")


def majority_baseline(train_labels: Sequence[str], test_labels: Sequence[str]) -> float:
    """Accuracy of always answering the most frequent training label (ties: first seen)."""
    if not train_labels:
        return float("nan")
    top = Counter(train_labels).most_common(1)[0][0]
    return accuracy([top] * len(test_labels), test_labels)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, 4-grams), 0-100."""
    try:
        import sacrebleu
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("BLEU needs the 'sacrebleu' package: pip install sacrebleu") from exc
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)
