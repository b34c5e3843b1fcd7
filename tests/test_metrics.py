"""Classification metrics, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from edgeft.metrics import classification_report


def test_report_matches_hand_computed_values() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(y_true, y_pred, 3)
    # class 0: P=1, R=2/3; class 1: P=1/2, R=1/2; class 2: P=1/2, R=1
    f1 = [0.8, 0.5, 2 / 3]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert report["per_class_f1"] == pytest.approx(f1)
    assert report["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_classes_never_seen_nor_predicted_do_not_lower_the_macro_average() -> None:
    report = classification_report(np.array([0, 1]), np.array([0, 1]), 5)
    assert report["macro_f1"] == 1.0
