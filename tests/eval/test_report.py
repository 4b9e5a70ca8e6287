"""Per-class metrics and the confusion matrix: checked against direct counts; the PNG is a real,
non-blank image of the expected size."""

import json

import numpy as np

from glm.core.eval.report import OTHER, class_report, format_class_report, write_confusion

CLASSES = ["Database", "HCI"]


def test_report_matches_direct_counts(tmp_path):
    labels = ["Database"] * 6 + ["HCI"] * 4
    predicted = ["Database"] * 4 + ["HCI", None] + ["HCI"] * 3 + ["Database"]
    rep = class_report(predicted, labels, CLASSES)
    assert rep["predicted_columns"] == CLASSES + [OTHER]
    assert rep["confusion"] == [[4, 1, 1], [1, 3, 0]]
    assert sum(map(sum, rep["confusion"])) == len(labels)
    db = rep["per_class"]["Database"]
    assert db["accuracy"] == db["recall"] == 4 / 6 and db["precision"] == 4 / 5 and db["support"] == 6
    hci = rep["per_class"]["HCI"]
    assert hci["recall"] == 3 / 4 and hci["precision"] == 3 / 4
    assert "Database" in format_class_report(rep)

    js, png = write_confusion(rep, tmp_path / "r", "test")
    assert json.loads(js.read_text())["confusion"] == rep["confusion"]
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"))
    assert img.shape[0] > 150 and img.shape[1] > 200 and img.std() > 10  # a real picture, not blank
