"""Classification metrics for imbalanced data: confusion matrix, per-class precision and
recall, balanced accuracy. Plain numpy on predictions; the report calls :func:`classification_metrics`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


def class_counts(labels: np.ndarray | torch.Tensor, num_classes: int) -> list[int]:
    """Samples per class 0..num_classes-1."""
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return np.bincount(y.astype(np.int64), minlength=num_classes).tolist()


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """C×C counts: row = true class, column = predicted class."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {labels.shape[0]} labels")
    return np.bincount(labels * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass
class ClassMetrics:
    """Metrics of one model on one split; ``nan`` where a class has no samples / predictions."""

    class_names: list[str]
    confusion: list[list[int]]
    support: list[int]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    accuracy: float
    balanced_accuracy: float
    macro_f1: float

    def to_dict(self) -> dict:
        """As plain data; ``nan`` (undefined) becomes ``None`` so that it is valid JSON."""
        def clean(v):
            if isinstance(v, float) and v != v:
                return None
            return [clean(i) for i in v] if isinstance(v, list) else v

        return {k: clean(v) for k, v in asdict(self).items()}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1), np.nan)


def metrics_from_confusion(cm: np.ndarray, class_names: list[str]) -> ClassMetrics:
    """Per-class precision/recall/F1, accuracy, balanced accuracy (mean recall over present classes)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(1), cm.sum(0)
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    f1 = np.where(np.isnan(f1) & (support > 0), 0.0, f1)  # a present class never predicted right: F1 = 0
    total = cm.sum()
    present = support > 0
    return ClassMetrics(
        list(class_names), cm.tolist(), support.tolist(), precision.tolist(), recall.tolist(), f1.tolist(),
        float(tp.sum() / total) if total else float("nan"),
        float(np.nanmean(np.where(present, recall, np.nan))) if present.any() else float("nan"),
        float(np.nanmean(np.where(present, f1, np.nan))) if present.any() else float("nan"),
    )


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> ClassMetrics:
    """Metrics of argmax predictions of ``logits`` against ``labels``."""
    pred = logits.argmax(1).cpu().numpy()
    return metrics_from_confusion(confusion_matrix(pred, labels.cpu().numpy(), len(class_names)), class_names)
