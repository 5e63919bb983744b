"""clothingclf.metrics: the numbers of an evaluation, checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clothingclf.metrics import EvaluationReport, evaluation_report


def test_numbers_by_hand() -> None:
    # true: a a a b b c ; predicted: a a b b b a
    report = evaluation_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], classes=["a", "b", "c"])
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.balanced_accuracy == pytest.approx((2 / 3 + 1 + 0) / 3)
    # F1: a = 2*(2/3*2/3)/(4/3) = 2/3; b = 2*(2/3*1)/(5/3) = 0.8; c = 0
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert report.per_class.loc["b", "precision"] == pytest.approx(2 / 3)
    assert report.per_class["support"].tolist() == [3, 2, 1]
    assert report.confusion_matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report.classes == ("a", "b", "c") and report.n_samples == 6


def test_classes_absent_from_the_split_do_not_count_as_zeros() -> None:
    report = evaluation_report([0, 0, 1], [0, 0, 1], classes=["a", "b", "never"])
    assert report.balanced_accuracy == 1.0 and report.macro_f1 == 1.0
    assert report.per_class.loc["never", "support"] == 0
    assert report.confusion_matrix.shape == (3, 3)


def test_to_dict_is_json_and_str_is_a_table() -> None:
    report = evaluation_report([0, 1, 1], [0, 1, 0], classes=["Hat", "Shoes"])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["confusion_matrix"] == [[1, 0], [1, 1]]
    assert data["per_class"]["Shoes"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 / 3,
        "support": 2,
    }
    text = str(report)
    assert "accuracy           0.6667" in text and "confusion matrix" in text
    assert "Shoes" in text and "precision" in text
    assert isinstance(report, EvaluationReport)
    with pytest.raises(AttributeError):
        report.accuracy = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0], "y_true has 2 labels but y_pred has 1"),
        ([], [], "Nothing to evaluate"),
        ([0, 3], [0, 1], r"y_true holds label ids from 0 to 3; expected ids in 0\.\.1"),
    ],
)
def test_bad_input(y_true: list[int], y_pred: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluation_report(np.array(y_true), np.array(y_pred), classes=["a", "b"])
