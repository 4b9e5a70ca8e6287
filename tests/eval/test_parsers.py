"""Each answer parser (glm.core.eval.parsers) on a table of answer strings, with what the field's scripts give."""

from __future__ import annotations

import pytest

from glm.core.eval.parsers import ANSWER_PARSERS, accuracy_by_parser, judge

CHOICES = ["Machine Learning", "Learning", "Databases", "Computer Vision"]

# answer, label, {parser: (matched, correct)}
TABLE = [
    ("Machine Learning", "Machine Learning",
     {"exact": ("Machine Learning", True), "substring": ("Machine Learning", True),
      "graphlama": ("Machine Learning", True), "graphgpt": ("Machine Learning", True),
      "llaga": ("Machine Learning", True)}),
    ("Answer: machine learning.", "Machine Learning",  # exact normalises; llaga needs "machine learning." == label
     {"exact": ("Machine Learning", True), "substring": ("Machine Learning", True),
      "graphlama": ("Machine Learning", True), "graphgpt": ("Machine Learning", True),
      "llaga": (None, False)}),  # "learning" is inside too: two class names, so LLaGA counts it wrong
    ("It is Databases, or maybe Computer Vision", "Computer Vision",
     {"exact": (None, False), "substring": ("Computer Vision", True),  # lenient: the label is in there
      "graphlama": ("Computer Vision", True),  # any shared category counts
      "graphgpt": ("Databases", False),  # the first class named is the prediction
      "llaga": (None, False)}),  # two class names in the answer
    ("Machine Learning, Learning, Databases, Computer Vision", "Databases",  # listing every class
     {"exact": (None, False), "substring": ("Databases", True), "graphlama": ("Databases", True),
      "graphgpt": ("Machine Learning", False), "llaga": (None, False)}),
    ("deep learning", "Machine Learning",  # "learning" is a class inside the label "machine learning"
     {"exact": (None, False), "substring": ("Learning", False), "graphlama": ("Machine Learning", True),
      "graphgpt": ("Learning", False), "llaga": ("Learning", False)}),
    ("I am not sure.", "Databases",
     {"exact": (None, False), "substring": (None, False), "graphlama": (None, False), "graphgpt": (None, False),
      "llaga": (None, False)}),
    ("computer visionary", "Computer Vision",  # raw substrings (graphlama, graphgpt, llaga) vs whole words
     {"exact": (None, False), "substring": (None, False), "graphlama": ("Computer Vision", True),
      "graphgpt": ("Computer Vision", True), "llaga": ("Computer Vision", True)}),
]


@pytest.mark.parametrize("answer,label,expected", TABLE, ids=[row[0][:24] for row in TABLE])
def test_each_parser_on_the_table(answer, label, expected):
    assert set(expected) == set(ANSWER_PARSERS)
    for mode, (matched, correct) in expected.items():
        j = judge(answer, label, CHOICES, mode)
        assert (j.matched, j.correct) == (matched, correct), mode


def test_accuracy_by_parser_counts_unmatched_answers():
    answers = [row[0] for row in TABLE]
    labels = [row[1] for row in TABLE]
    out = accuracy_by_parser(answers, labels, CHOICES)
    for mode in ANSWER_PARSERS:
        rows = [row[2][mode] for row in TABLE]
        assert out[mode]["accuracy"] == pytest.approx(sum(c for _, c in rows) / len(rows))
        assert out[mode]["unmatched"] == sum(m is None for m, _ in rows)
    with pytest.raises(ValueError, match="answer parser must be one of exact, substring, graphlama"):
        judge("x", "Databases", CHOICES, "bogus")
