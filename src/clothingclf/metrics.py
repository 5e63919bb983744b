"""Evaluation metrics: accuracy, balanced accuracy, macro F1, per-class scores, confusion,
and, given the probabilities, calibration error and coverage.

:func:`evaluation_report` turns true and predicted label ids (and optionally the
probabilities) into an :class:`EvaluationReport`, computed with scikit-learn and
:mod:`clothingclf.calibration`. Classes that have no test image
and were never predicted carry no information, so they are left out of the balanced
accuracy and the macro F1 (instead of counting as zeros); they still appear, with support
0, in the per-class table and the confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .calibration import coverage_curve, expected_calibration_error, reliability_table

__all__ = ["EvaluationReport", "evaluation_report"]


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """How well a classifier labels one split.

    Attributes:
        accuracy: Share of images labelled correctly.
        balanced_accuracy: Mean recall over the classes that occur in the split.
        macro_f1: Mean F1 over the classes that occur in the split or were predicted.
        per_class: One row per class (index: class name) with ``precision``, ``recall``,
            ``f1`` and ``support`` (number of images of that class).
        confusion_matrix: ``confusion_matrix[i, j]`` counts images of class ``i`` labelled
            as class ``j``; rows and columns in :attr:`classes` order.
        classes: The class names.
        n_samples: Number of images evaluated.
        expected_calibration_error: Mean gap between the top score and the accuracy over
            15 confidence bins (0: the scores mean what they say); ``None`` without
            probabilities.
        reliability: The reliability diagram's bins
            (:func:`~clothingclf.calibration.reliability_table`), or ``None``.
        coverage: Accuracy on the photos whose top score reaches each threshold, and
            their share (:func:`~clothingclf.calibration.coverage_curve`), or ``None``.

    Example:
        >>> report = evaluation_report([0, 0, 1, 1], [0, 1, 1, 1], classes=["Hat", "Shoes"])
        >>> report.accuracy, report.balanced_accuracy
        (0.75, 0.75)
        >>> report.confusion_matrix.tolist()
        [[1, 1], [0, 2]]
        >>> round(float(report.per_class.loc["Shoes", "precision"]), 3)
        0.667
    """

    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    per_class: pd.DataFrame = field(repr=False)
    confusion_matrix: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)
    n_samples: int = 0
    expected_calibration_error: float | None = None
    reliability: pd.DataFrame | None = field(default=None, repr=False)
    coverage: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field.

        Example:
            >>> evaluation_report([0, 1], [0, 1], classes=["a", "b"]).to_dict()["per_class"]["a"]
            {'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': 1}
        """
        per_class = {
            str(name): {
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
                "f1": float(row["f1"]),
                "support": int(row["support"]),
            }
            for name, row in self.per_class.iterrows()
        }
        ece = self.expected_calibration_error
        return {
            "accuracy": float(self.accuracy),
            "balanced_accuracy": float(self.balanced_accuracy),
            "macro_f1": float(self.macro_f1),
            "expected_calibration_error": None if ece is None else float(ece),
            "n_samples": int(self.n_samples),
            "classes": list(self.classes),
            "per_class": per_class,
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "reliability": _records(self.reliability),
            "coverage": _records(self.coverage),
        }

    def __str__(self) -> str:
        """A readable summary: the three scores, the per-class table, the confusion matrix."""
        lines = [
            f"{self.n_samples} images, {len(self.classes)} classes",
            f"accuracy           {self.accuracy:.4f}",
            f"balanced accuracy  {self.balanced_accuracy:.4f}",
            f"macro F1           {self.macro_f1:.4f}",
        ]
        if self.expected_calibration_error is not None:
            lines.append(f"calibration error  {self.expected_calibration_error:.4f} (ECE, 15 bins)")
        lines.append("")
        table = self.per_class.copy()
        table["support"] = table["support"].astype(int)
        lines.append(table.to_string(float_format=lambda v: f"{v:.3f}"))
        lines.append("")
        lines.append("confusion matrix (rows: true class, columns: predicted class)")
        matrix = pd.DataFrame(
            self.confusion_matrix, index=list(self.classes), columns=list(self.classes)
        )
        lines.append(matrix.to_string())
        if self.coverage is not None:
            lines += ["", "coverage (photos whose top score >= min_score, and their accuracy)"]
            lines.append(self.coverage.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return "\n".join(lines)


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """A table as JSON-able rows (NaN as ``None``)."""
    if table is None:
        return None
    return [
        {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def evaluation_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    *,
    classes: Sequence[str],
    probabilities: np.ndarray | None = None,
) -> EvaluationReport:
    """Compute an :class:`EvaluationReport` from label ids.

    Args:
        y_true: The true label id of each image (positions in ``classes``).
        y_pred: The predicted label id of each image.
        classes: The class names.
        probabilities: ``(images, classes)`` probabilities the predictions came from:
            adds the calibration error, the reliability table and the coverage curve.

    Returns:
        The report.

    Raises:
        ValueError: The two sequences differ in length, are empty, or hold an id outside
            ``range(len(classes))``; ``probabilities`` is not one row per image and one
            column per class.

    Example:
        >>> evaluation_report([0, 1, 2], [0, 1, 1], classes=["a", "b", "c"]).macro_f1
        0.5555555555555555
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    true = np.asarray(y_true, dtype=np.int64).ravel()
    pred = np.asarray(y_pred, dtype=np.int64).ravel()
    names = tuple(str(c) for c in classes)
    n = len(names)
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true has {true.size} labels but y_pred has {pred.size}; expected one each."
        )
    if true.size == 0:
        raise ValueError("Nothing to evaluate: y_true and y_pred are empty.")
    for what, ids in (("y_true", true), ("y_pred", pred)):
        if ids.min() < 0 or ids.max() >= n:
            raise ValueError(
                f"{what} holds label ids from {ids.min()} to {ids.max()}; expected ids in "
                f"0..{n - 1} (one per class of {list(names)})."
            )
    calibration: dict[str, Any] = {}
    if probabilities is not None:
        scores = np.asarray(probabilities, dtype=np.float64)
        if scores.shape != (true.size, n):
            raise ValueError(
                f"probabilities has shape {scores.shape}; expected ({true.size}, {n}), one "
                "row per image and one column per class."
            )
        calibration = {
            "expected_calibration_error": expected_calibration_error(scores, true),
            "reliability": reliability_table(scores, true),
            "coverage": coverage_curve(scores, true),
        }
    labels = list(range(n))
    matrix = confusion_matrix(true, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0.0
    )
    present = support > 0
    seen = present | (matrix.sum(axis=0) > 0)
    per_class = pd.DataFrame(
        {
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "support": support.astype(np.int64),
        },
        index=pd.Index(names, name="class"),
    )
    return EvaluationReport(
        accuracy=float(np.mean(true == pred)),
        balanced_accuracy=float(np.mean(recall[present])),
        macro_f1=float(np.mean(f1[seen])),
        per_class=per_class,
        confusion_matrix=matrix,
        classes=names,
        n_samples=int(true.size),
        **calibration,
    )
