"""The report's tables: the images to evaluate, wherever a dataset lives, and how the model
labelled each of them (every prediction, the mistakes most confident first, the scores per
class)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..data import is_splits
from ..exceptions import (
    DatasetNotFoundError,
    EmptyDatasetError,
    InvalidParameterError,
    MissingColumnsError,
)
from ..metrics import EvaluationReport, evaluation_report

if TYPE_CHECKING:
    from ..data import DatasetSplits
    from ..predictor import Predictor

__all__ = ["Labelling", "label_images", "load_evaluation_data", "per_class_table"]


def load_evaluation_data(
    data: str | os.PathLike[str] | pd.DataFrame | DatasetSplits,
    *,
    split: Literal["train", "val", "test", "all"] = "test",
    seed: int = 42,
) -> pd.DataFrame:
    """The table of images to evaluate, from any of the places a dataset can live.

    Args:
        data: One of

            * a table (DataFrame) with columns ``path`` and ``label``;
            * a :class:`~clothingclf.DatasetSplits`;
            * a CSV file with columns ``path`` and ``label`` (e.g. ``test.csv`` written by
              ``clothingclf prepare --output``);
            * a folder, read by :func:`~clothingclf.open_splits` (with ``seed``): a folder
              written by ``clothingclf prepare --output`` is read with
              :func:`~clothingclf.load_splits`; a dataset folder with ``images.csv`` and
              ``images/`` is split with :func:`~clothingclf.prepare_dataset` and its
              defaults, which gives the same split as training on ``prepare_dataset(root)``
              did.
        split: Which split of splits or folders: ``"train"``, ``"val"``, ``"test"`` or
            ``"all"`` (every row). A table or CSV file is always used whole.
        seed: The split seed for a dataset folder.

    Returns:
        A table with at least the columns ``path`` and ``label``.

    Raises:
        DatasetNotFoundError: The path does not exist, or is a folder that
            :func:`~clothingclf.open_splits` does not take.
        MissingColumnsError: A table or CSV lacks ``path`` or ``label``.
        EmptyDatasetError: The chosen split has no rows.

    Example:
        >>> table = pd.DataFrame({"path": ["a.jpg"], "label": ["Hat"]})
        >>> load_evaluation_data(table).columns.tolist()
        ['path', 'label']
    """
    if split not in ("train", "val", "test", "all"):
        raise InvalidParameterError(
            f"split must be 'train', 'val', 'test' or 'all'; found {split!r}."
        )
    if isinstance(data, pd.DataFrame):
        table, what = data, "the table"
    elif is_splits(data):
        table, what = _pick(data, split), f"the {split} split"
    else:
        table, what = _read(Path(data), split, seed)
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise MissingColumnsError(
            f"{what} lacks column {', '.join(map(repr, missing))} (found: "
            f"{', '.join(map(str, table.columns))}). Expected columns path and label, as in "
            "the CSV files that 'clothingclf prepare --output' writes."
        )
    if len(table) == 0:
        raise EmptyDatasetError(f"{what} has no rows; nothing to evaluate.")
    return table


def _read(source: Path, split: str, seed: int) -> tuple[pd.DataFrame, str]:
    """The table behind a path (a CSV file, or a folder as :func:`~clothingclf.open_splits`
    reads it), with how error messages name it."""
    if source.is_file():
        return pd.read_csv(source), repr(str(source))
    if source.is_dir():
        from ..data import open_splits

        splits = open_splits(source, seed=seed)
        return _pick(splits, split), f"the {split} split of {str(source)!r}"
    raise DatasetNotFoundError(
        f"{str(source)!r} is neither a CSV file, a folder written by 'clothingclf "
        "prepare --output', nor a dataset folder with images.csv. Give one of these."
    )


def _pick(splits: Any, split: str) -> pd.DataFrame:
    """One split of a splits object, or all three concatenated for ``"all"``."""
    parts: list[pd.DataFrame] = (
        [splits.train, splits.val, splits.test] if split == "all" else [getattr(splits, split)]
    )
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Labelling:
    """How the model labelled the evaluated images.

    Attributes:
        evaluation: The scores of the split.
        predictions: One row per image, in the table's order: ``path``, ``label``,
            ``predicted``, ``score`` (probability of the prediction), ``true_score``
            (probability of the true label) and ``correct``.
        mistakes: The wrong rows of ``predictions`` without ``correct``, the most confident
            first (ties keep the table's order), numbered from 0.
    """

    evaluation: EvaluationReport
    predictions: pd.DataFrame
    mistakes: pd.DataFrame


def label_images(predictor: Predictor, table: pd.DataFrame, batch_size: int | None) -> Labelling:
    """Label every image of ``table`` with ``predictor`` and score the result.

    Raises:
        DatasetError: The table has labels the model was not trained on.
    """
    classes = list(predictor.classes)
    y_true = predictor.label_ids(table, "The evaluated set of images")
    probabilities = predictor.probabilities(table, batch_size=batch_size)
    y_pred = probabilities.argmax(1)
    evaluation = evaluation_report(y_true, y_pred, classes=classes, probabilities=probabilities)
    rows = np.arange(len(y_true))
    predictions = pd.DataFrame(
        {
            "path": [str(p) for p in table["path"]],
            "label": [classes[i] for i in y_true],
            "predicted": [classes[i] for i in y_pred],
            "score": probabilities[rows, y_pred].astype(float),
            "true_score": probabilities[rows, y_true].astype(float),
            "correct": y_true == y_pred,
        }
    )
    mistakes = (
        predictions[~predictions["correct"]]
        .drop(columns="correct")
        .sort_values("score", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    return Labelling(evaluation=evaluation, predictions=predictions, mistakes=mistakes)


def per_class_table(evaluation: EvaluationReport) -> pd.DataFrame:
    """Precision, recall, F1 and support (an int) per class, indexed by class name."""
    per_class = evaluation.per_class.copy()
    per_class["support"] = per_class["support"].astype(int)
    return per_class
