"""Classification metrics, shared by training (each evaluation) and `mindwell eval`."""

from __future__ import annotations

import numpy as np


def classification_metrics(labels, predictions) -> dict[str, float]:
    """Accuracy and precision/recall/F1, weighted and macro."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    result = {"accuracy": float(accuracy_score(labels, predictions))}
    for average in ("weighted", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predictions, average=average, zero_division=0
        )
        result.update({
            f"precision_{average}": float(precision),
            f"recall_{average}": float(recall),
            f"f1_{average}": float(f1),
        })
    return result
