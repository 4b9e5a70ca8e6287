"""Per-class metrics and the confusion matrix of a classification evaluation (JSON + PNG).

Rows of the confusion matrix are true classes, columns predicted ones; answers outside the
choices (``generate`` mode) get their own ``(other)`` column. Per class: accuracy (= recall),
precision, F1 and support (scikit-learn's ``precision_recall_fscore_support`` /
``confusion_matrix``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from glm.core.io import atomic_path

OTHER = "(other)"


def class_report(predicted: Sequence[Optional[str]], labels: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """``{"classes", "confusion" [true][predicted], "per_class": {class: {accuracy, precision, recall, f1, support}}}``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_pred = [p if p in classes else OTHER for p in predicted]
    columns = list(classes) + ([OTHER] if OTHER in y_pred else [])
    matrix = confusion_matrix(list(labels), y_pred, labels=columns)[: len(classes)]
    precision, recall, f1, support = precision_recall_fscore_support(list(labels), y_pred, labels=list(classes),
                                                                    zero_division=0)
    per_class = {c: {"accuracy": float(r), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for c, p, r, f, s in zip(classes, precision, recall, f1, support)}
    return {"classes": list(classes), "predicted_columns": columns, "confusion": matrix.tolist(), "per_class": per_class}


def report_of(result: Any, classes: Sequence[str]) -> dict[str, Any]:
    """:func:`class_report` of an :class:`~glm.core.eval.predict.EvalResult`."""
    return class_report([p.matched for p in result.predictions], [p.label for p in result.predictions], classes)


def format_class_report(report: dict[str, Any]) -> str:
    width = max(len(c) for c in report["classes"])
    lines = [f"{'class':<{width}}  accuracy  precision  F1     support"]
    for c, m in report["per_class"].items():
        lines.append(f"{c:<{width}}  {m['accuracy']:.4f}    {m['precision']:.4f}     {m['f1']:.4f}  {m['support']}")
    return "\n".join(lines)


def write_confusion(report: dict[str, Any], folder: Path, title: str = "") -> tuple[Path, Path]:
    """``confusion.json`` and ``confusion.png`` (counts, rows = true class) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / "confusion.json", folder / "confusion.png"
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    rows, cols = report["classes"], report["predicted_columns"]
    matrix = report["confusion"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(cols), 1.2 + 0.9 * len(rows)))
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(r) for r in matrix) or 1
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    ax.set_xticks(range(len(cols)), labels=[_short(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=[_short(c) for c in rows])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return json_path, png_path


def _short(name: str, n: int = 18) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"
