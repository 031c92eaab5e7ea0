"""Imbalanced-data metrics: confusion matrix, per-class precision/recall, balanced accuracy; report wiring."""
from __future__ import annotations

import math

import numpy as np
import torch

from edgekd.distill.metrics import class_counts, classification_metrics, confusion_matrix, metrics_from_confusion
from edgekd.report import plots
from edgekd.report.build import ModelResult, RunResults, write_report


def test_confusion_matrix_and_golden_metrics():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 0])
    cm = confusion_matrix(p, y, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [1, 0, 3]]
    m = metrics_from_confusion(cm, ["a", "b", "c"])
    assert m.support == [4, 2, 4] and m.accuracy == 0.7
    assert np.allclose(m.recall, [0.75, 0.5, 0.75]) and np.allclose(m.precision, [0.6, 0.5, 1.0])
    assert math.isclose(m.balanced_accuracy, (0.75 + 0.5 + 0.75) / 3)
    f1a = 2 * 0.6 * 0.75 / 1.35
    assert math.isclose(m.macro_f1, (f1a + 0.5 + 2 * 0.75 / 1.75) / 3)


def test_majority_classifier_is_exposed_by_balanced_accuracy():
    y = torch.tensor([0] * 95 + [1] * 5)
    logits = torch.tensor([[1.0, 0.0]] * 100)
    m = classification_metrics(logits, y, ["common", "rare"])
    assert m.accuracy == 0.95 and m.balanced_accuracy == 0.5
    assert m.recall[1] == 0.0 and math.isnan(m.precision[1]) and m.f1[1] == 0.0
    assert class_counts(y, 3) == [95, 5, 0]
    assert m.to_dict()["precision"] == [0.95, None]  # undefined stays valid JSON


def test_absent_class_does_not_count_in_balanced_accuracy():
    m = metrics_from_confusion(np.array([[2, 0, 0], [0, 1, 1], [0, 0, 0]]), ["a", "b", "c"])
    assert math.isnan(m.recall[2]) and math.isclose(m.balanced_accuracy, 0.75)


def test_report_shows_per_class_table_and_confusion_plot(tmp_path):
    y = torch.tensor([0, 0, 1, 1, 1])
    met = classification_metrics(torch.tensor([[1.0, 0], [0, 1], [0, 1], [0, 1], [1, 0]]), y, ["neg", "pos"])
    models = [ModelResult("s1", "student", "mlp", 10, 0, met.accuracy, 0.5, 1.0, metrics=met.to_dict(),
                          history=[{"epoch": 1, "val_acc": 0.5}])]
    data = {"source": "test", "classes": ["neg", "pos"], "sizes": {"train": 1, "val": 1, "test": 5},
            "teacher_size": [16, 24], "student_size": 12}
    res = RunResults("t", "ok", True, [0], data, models, [], [], {}, {})
    write_report(res, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "balanced accuracy" in md and "| s1 | 60.00 | 58.33 |" in md and "16×24" in md
    assert (tmp_path / "plots" / "confusion_s1.png").stat().st_size > 1000
    assert "plots/confusion_s1.png" in md


def test_confusion_plot_writes_png(tmp_path):
    out = plots.confusion_matrix([[5, 1], [0, 4]], ["x", "y"], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
