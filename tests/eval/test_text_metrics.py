"""Generation metrics against values computed by hand (glm.core.eval.text_metrics)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("sacrebleu", reason="the eval extra (sacrebleu, rouge-score, nltk) is not installed")
pytest.importorskip("rouge_score", reason="the eval extra (sacrebleu, rouge-score, nltk) is not installed")
pytest.importorskip("nltk", reason="the eval extra (sacrebleu, rouge-score, nltk) is not installed")

from glm.core.eval.text_metrics import corpus_bleu, generation_scores, graphlama_bleu, rouge  # noqa: E402

OUT, REF = "the cat sat on the mat", "the cat is on the mat"


def test_corpus_bleu_is_sacrebleus_with_exp_smoothing():
    # n-gram precisions 5/6, 3/5, 1/4 and 0/3 -> (1/2)/3 under exp smoothing; equal lengths: no brevity penalty
    by_hand = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert corpus_bleu([OUT], [REF]) == pytest.approx(by_hand, abs=1e-6)
    assert corpus_bleu([REF, "a b c d"], [REF, "a b c d"]) == pytest.approx(100.0)


def test_rouge_f1():
    r = rouge([OUT], [REF])
    # unigram overlap 5 of 6 each way; bigrams 3 of 5; LCS "the cat on the mat" = 5 of 6
    assert r["rouge1"] == pytest.approx(100 * 5 / 6) and r["rouge2"] == pytest.approx(60.0)
    assert r["rougeL"] == pytest.approx(100 * 5 / 6)


def test_graphlama_bleu_swaps_hypothesis_and_reference():
    b1, b2, _, _ = graphlama_bleu([OUT], [REF])
    assert b1 == pytest.approx(5 / 6) and b2 == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    # a short output: standard BLEU-1 would be 1 * exp(1 - 6/2); with the title as hypothesis it is
    # its unigram precision against the output, 2/6, and no brevity penalty (the "hypothesis" is longer)
    assert graphlama_bleu(["the cat"], [OUT])[0] == pytest.approx(2 / 6)
    assert graphlama_bleu(["abcd"], ["abce"], chars=True)[0] == pytest.approx(3 / 4)  # letters, not words


def test_generation_scores_names_every_metric():
    s = generation_scores([OUT, REF], [REF, REF])
    assert set(s) == {"bleu", "rouge1", "rouge2", "rougeL", *(f"graphlama_bleu{i}" for i in range(1, 5)),
                      *(f"graphlama_charbleu{i}" for i in range(1, 5))}
    with pytest.raises(ValueError, match="1 outputs for 2 references"):
        generation_scores([OUT], [REF, REF])
