"""Classification and generation metrics with explicit label matching.

How a free-text answer is read as a class (``exact``, ``substring`` and the field's own rules) is
:mod:`glm.core.eval.parsers`; this module has :func:`normalize`, which they share, and the scores.

Generation metrics (BLEU, ROUGE, GraphLAMA's BLEU) are :mod:`glm.core.eval.text_metrics`.
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
