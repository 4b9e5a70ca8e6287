"""Generation metrics: standard BLEU and ROUGE from well-kept libraries, and GraphLAMA's own BLEU.

=====================  ====================================================================================
``bleu``               corpus BLEU, sacrebleu defaults (13a tokenisation, 4-grams, brevity penalty), 0-100:
                       the number to compare with other papers.
``rouge1/rouge2/rougeL``  mean F1 of rouge-score's ``RougeScorer`` (Porter stemming), 0-100.
``graphlama_bleu1..4``    GraphLAMA's ``run_gt3_tit_gen.py``: the mean over samples of nltk's
                       ``sentence_bleu([output], label, weights)`` on whitespace tokens -- the model's output
                       is the *reference* and the true title the *hypothesis* (swapped), no smoothing, weights
                       ``(1,0,0,0)``, ``(.5,.5,0,0)``, ``(.33,.33,.33,0)``, ``(.25,)*4``; 0-1.
``graphlama_charbleu1..4``  the same on raw strings (each character a token), as the version described in
                       the reference notes computes it; 0-1.
=====================  ====================================================================================

The GraphLAMA numbers are **not** BLEU in the usual sense: the brevity penalty punishes short *titles*,
not short outputs, and the character variant counts letters. They exist to set glm's output beside the
paper's table; compare methods with ``bleu`` and ROUGE.
"""

from __future__ import annotations

import warnings
from typing import Sequence

GRAPHLAMA_WEIGHTS = ((1, 0, 0, 0), (0.5, 0.5, 0, 0), (0.33, 0.33, 0.33, 0), (0.25, 0.25, 0.25, 0.25))


def corpus_bleu(outputs: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU, 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(outputs), [list(references)]).score)


def rouge(outputs: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F1 (rouge-score, Porter stemming), 0-100."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for out, ref in zip(outputs, references):
        for key, score in scorer.score(ref, out).items():
            totals[key] += score.fmeasure
    n = max(len(outputs), 1)
    return {k: 100.0 * v / n for k, v in totals.items()}


def graphlama_bleu(outputs: Sequence[str], references: Sequence[str], chars: bool = False) -> list[float]:
    """GraphLAMA's BLEU-1..4 (see the module docstring): swapped, unsmoothed, mean over samples, 0-1."""
    from nltk.translate.bleu_score import sentence_bleu

    sums = [0.0] * 4
    with warnings.catch_warnings():  # nltk warns on every zero n-gram count (short titles)
        warnings.simplefilter("ignore")
        for out, ref in zip(outputs, references):
            o, r = (list(out), list(ref)) if chars else (out.split(), ref.split())
            for i, w in enumerate(GRAPHLAMA_WEIGHTS):
                sums[i] += float(sentence_bleu([o], r, weights=w)) if o and r else 0.0
    n = max(len(outputs), 1)
    return [s / n for s in sums]


def generation_scores(outputs: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Every metric above, by name."""
    if len(outputs) != len(references):
        raise ValueError(f"generation_scores: {len(outputs)} outputs for {len(references)} references")
    scores = {"bleu": corpus_bleu(outputs, references), **rouge(outputs, references)}
    for prefix, chars in (("graphlama_bleu", False), ("graphlama_charbleu", True)):
        for i, v in enumerate(graphlama_bleu(outputs, references, chars), start=1):
            scores[f"{prefix}{i}"] = v
    return scores
