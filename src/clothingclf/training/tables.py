"""The tables a fit trains on: ``fit``'s arguments (a DatasetSplits, or a training and a
validation table) turned into tables with class indices, the classes and their weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..data import balanced_class_weights, is_splits, label_ids
from ..exceptions import (
    DatasetError,
    EmptyDatasetError,
    InvalidParameterError,
    MissingColumnsError,
)

__all__ = ["FitTables", "fit_tables", "require_columns"]

#: What :func:`fit_tables` gives: the training table and the validation table (each with
#: ``label_id``; ``None``: no validation), the classes and their weights.
FitTables = tuple[pd.DataFrame, pd.DataFrame | None, list[str], list[float]]


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`~clothingclf.exceptions.MissingColumnsError` naming the ``columns``
    that ``table`` (``what``, in the message) lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MissingColumnsError(
            f"{what} lacks column {', '.join(map(repr, missing))} (found: "
            f"{', '.join(map(str, table.columns))}). Expected a split of prepare_dataset() "
            "or a table with columns path and label."
        )


def fit_tables(data: Any, val: pd.DataFrame | None) -> FitTables:
    """The training table and the validation table (each with ``label_id``), the classes
    and their balanced weights, from ``fit``'s arguments.

    Raises:
        InvalidParameterError: Neither a DatasetSplits nor a table, or both given.
        MissingColumnsError: A table lacks ``path`` or ``label``.
        EmptyDatasetError: No training rows.
        DatasetError: One class only, or validation labels the training table lacks.
    """
    if is_splits(data):
        if val is not None:
            raise InvalidParameterError(
                "fit(splits) takes the validation split from splits.val; do not pass val_df too."
            )
        classes = [str(c) for c in data.classes]
        train = data.train
        val = data.val
        weights = [float(w) for w in data.class_weights]
    elif isinstance(data, pd.DataFrame):
        require_columns(data, ("path", "label"), "The training table")
        classes = sorted({str(v) for v in data["label"]})
        train = data
        weights = []
    else:
        raise InvalidParameterError(
            "fit expects the DatasetSplits of prepare_dataset() or a training DataFrame with "
            f"columns path and label; found {type(data).__name__}."
        )
    if len(train) == 0:
        raise EmptyDatasetError("The training table has no rows; nothing to train on.")
    train = _with_label_ids(train, classes, "training")
    seen = sorted({classes[i] for i in train["label_id"]})
    if len(seen) < 2:
        raise DatasetError(
            f"The training table holds one class only ({', '.join(seen)}): a classifier "
            "trained on it would answer that class for every photo, with certainty. Give it "
            "photos of at least two classes."
        )
    if val is not None:
        if not isinstance(val, pd.DataFrame):
            raise InvalidParameterError(f"val must be a DataFrame; found {type(val).__name__}.")
        require_columns(val, ("path", "label"), "The validation table")
        val = _with_label_ids(val, classes, "validation") if len(val) else None
    if not weights:  # the rule prepare_dataset uses for its splits
        weights = balanced_class_weights(train["label_id"].to_numpy(), len(classes))
    return train, val, classes, weights


def _with_label_ids(table: pd.DataFrame, classes: list[str], what: str) -> pd.DataFrame:
    if "label" not in table.columns:
        require_columns(table, ("path", "label_id"), f"The {what} table")
        return table
    ids = label_ids(
        table["label"],
        classes,
        "The {what} table has labels that the training classes lack: {unknown} (classes: "
        "{classes}). Every class needs training images; remove those rows or add training "
        "images.",
        what=what,
    )
    table = table.copy()
    table["label_id"] = ids
    return table
