"""The splits :func:`~clothingclf.prepare_dataset` returns: kept in memory, saved to a
folder, read back, and fed to PyTorch one split at a time.

:class:`DatasetSplits` holds the three tables with their classes, class weights and report;
:func:`load_splits` reads what ``prepare_dataset(output_dir=...)`` wrote.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from typing_extensions import TypeIs

from .._paths import path_kind, write_atomically, write_error
from ..exceptions import (
    DatasetError,
    DatasetNotFoundError,
    InvalidParameterError,
)
from .report import DatasetReport
from .splitting import SPLIT_NAMES

__all__ = ["DatasetSplits", "is_splits", "load_splits"]


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """Train, validation and test splits of a clothing dataset, ready to train on.

    Each split is a DataFrame with the columns ``image``, ``path`` (absolute),
    ``label``, ``label_id`` (``int64``, the position of the label in :attr:`classes`) and
    the other columns of ``images.csv``, in the order of ``images.csv``.

    Attributes:
        train: The training split.
        val: The validation split (may be empty).
        test: The test split (may be empty).
        classes: Label names sorted by name; position == ``label_id``.
        class_weights: One weight per class, ``compute_class_weight("balanced")`` of
            scikit-learn on the train split.
        report: What was dropped and why.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=10, image_size=16)
        >>> splits = clothingclf.prepare_dataset(root)
        >>> splits.classes[:2], len(splits.train), len(splits.val), len(splits.test)
        (['Dress', 'Hat'], 49, 5, 6)
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    classes: list[str]
    class_weights: list[float]
    report: DatasetReport

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetSplits):
            return NotImplemented
        return (
            self.classes == other.classes
            and self.class_weights == other.class_weights
            and self.report == other.report
            and all(_frames_equal(getattr(self, s), getattr(other, s)) for s in SPLIT_NAMES)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"DatasetSplits(train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, classes={len(self.classes)})"
        )

    def counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns), with totals.

        Example:
            >>> import tempfile, clothingclf
            >>> from clothingclf.data.synthetic import make_synthetic
            >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=10, image_size=16)
            >>> clothingclf.prepare_dataset(root).counts().loc["Hat"].tolist()
            [8, 1, 1, 10]
        """
        table = pd.DataFrame(
            {
                s: getattr(self, s)["label"].value_counts().reindex(self.classes, fill_value=0)
                for s in SPLIT_NAMES
            },
            index=pd.Index(self.classes, name="label"),
        ).astype("int64")
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
        return table

    def table(self) -> str:
        """:meth:`counts` as a plain-text table, as ``clothingclf prepare`` prints it."""
        return self.counts().to_string()


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes) and a.equals(b)


def _text_columns(splits: DatasetSplits) -> list[str]:
    """Columns to read back as text: string columns, and object columns holding only str
    (object columns of mixed values, such as booleans with gaps, are left to inference)."""
    whole = pd.concat([getattr(splits, s) for s in SPLIT_NAMES])
    return [
        str(c)
        for c in whole.columns
        if pd.api.types.is_string_dtype(whole[c].dtype)
        and (whole[c].dtype != object or all(isinstance(v, str) for v in whole[c].dropna()))
    ]


def save_splits(splits: DatasetSplits, output_dir: Path) -> None:
    """Write the three splits as CSV, ``report.json`` (what :func:`load_splits` needs to read
    them back exactly) and ``report.txt`` (for people), each atomically."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(output_dir, error) from error
    for name in SPLIT_NAMES:
        write_atomically(
            output_dir / f"{name}.csv",
            getattr(splits, name).to_csv(index=False, lineterminator="\n"),
        )
    meta = {
        "format": "clothingclf-splits",
        "version": 1,
        "classes": splits.classes,
        "class_weights": splits.class_weights,
        "dtypes": {str(c): str(t) for c, t in splits.train.dtypes.items()},
        "text_columns": _text_columns(splits),
        "report": splits.report.to_dict(),
    }
    write_atomically(output_dir / "report.json", json.dumps(meta, indent=2, sort_keys=False) + "\n")
    write_atomically(
        output_dir / "report.txt", splits.table() + "\n\n" + splits.report.summary() + "\n"
    )


def _listed(value: Any, name: str) -> list[Any]:
    """``value`` if it is a list (a string would otherwise be read as its letters)."""
    if not isinstance(value, list):
        raise ValueError(f"{name!r} is a {type(value).__name__}, expected a list")
    return value


def is_splits(value: Any) -> TypeIs[DatasetSplits]:
    """Whether ``value`` is a :class:`DatasetSplits` (or has its shape: ``train``, ``val``,
    ``test``, ``classes`` and ``class_weights``), as opposed to one table: the one test of
    every function that takes either.

    Example:
        >>> is_splits(pd.DataFrame({"path": [], "label": []}))
        False
    """
    names = ("train", "val", "test", "classes", "class_weights")
    return isinstance(value, DatasetSplits) or all(hasattr(value, name) for name in names)


def load_splits(output_dir: str | os.PathLike[str]) -> DatasetSplits:
    """Read splits saved by :func:`prepare_dataset` (``output_dir=...``) back.

    Args:
        output_dir: The folder holding ``train.csv``, ``val.csv``, ``test.csv`` and
            ``report.json``.

    Returns:
        Splits equal to the ones that were saved (same rows, columns, dtypes, classes,
        class weights and report). The ``path`` column holds the absolute paths of the
        time of saving: after moving the dataset, run :func:`prepare_dataset` again.

    Raises:
        DatasetNotFoundError: The folder or one of its files is missing.
        DatasetError: A file is not what :func:`prepare_dataset` writes.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=5, image_size=16)
        >>> out = tempfile.mkdtemp()
        >>> splits = clothingclf.prepare_dataset(root, output_dir=out)
        >>> clothingclf.load_splits(out) == splits
        True
    """
    if not isinstance(output_dir, (str, os.PathLike)):
        raise InvalidParameterError(
            "load_splits needs the folder that prepare_dataset(output_dir=...) wrote; found "
            f"{output_dir!r}."
        )
    folder = Path(output_dir)
    meta_path = folder / "report.json"
    _check_files(folder, meta_path)
    saved = _read_meta(meta_path)
    frames = {name: _read_split(folder / f"{name}.csv", saved) for name in SPLIT_NAMES}
    return DatasetSplits(
        train=frames["train"],
        val=frames["val"],
        test=frames["test"],
        classes=saved.classes,
        class_weights=saved.class_weights,
        report=saved.report,
    )


def _check_files(folder: Path, meta_path: Path) -> None:
    """Refuse a splits folder unless ``report.json`` and the three CSVs are regular files."""
    for path in (meta_path, *(folder / f"{s}.csv" for s in SPLIT_NAMES)):
        try:
            kind = path_kind(path)
        except OSError as error:  # a name too long, a link loop
            raise DatasetError(
                f"The splits folder {str(folder)!r} cannot be read ({error.strerror or error})."
            ) from None
        if kind in ("directory", "special"):
            raise DatasetError(
                f"{str(path)!r} is not a regular file (a folder, FIFO or device); it was not "
                "read. Expected a folder written by prepare_dataset(..., output_dir=...)."
            )
        if kind == "missing":
            raise DatasetNotFoundError(
                f"{str(path)!r} does not exist. Expected a folder written by "
                "prepare_dataset(..., output_dir=...) or `clothingclf prepare --output`."
            )


@dataclass(frozen=True)
class _Saved:
    """What ``report.json`` says about the saved splits."""

    classes: list[str]
    class_weights: list[float]
    dtypes: dict[str, str]
    text_columns: dict[str, type[str]]
    report: DatasetReport


def _read_meta(meta_path: Path) -> _Saved:
    """``report.json`` checked: the format, unique classes with one weight each, the dtypes."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != "clothingclf-splits":
            raise ValueError("no 'format': 'clothingclf-splits' entry")
        classes = [str(c) for c in _listed(meta["classes"], "classes")]
        weights = [float(w) for w in _listed(meta["class_weights"], "class_weights")]
        if len(set(classes)) != len(classes) or len(weights) != len(classes):
            raise ValueError("classes must be unique, with one class weight each")
        dtypes = {str(k): str(v) for k, v in meta["dtypes"].items()}
        text = {str(c): str for c in _listed(meta["text_columns"], "text_columns")}
        report = DatasetReport.from_dict(meta["report"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"{str(meta_path)!r} is not a splits report written by prepare_dataset ({error}). "
            "Run prepare_dataset again with output_dir=..."
        ) from None
    return _Saved(classes, weights, dtypes, text, report)


def _read_split(path: Path, saved: _Saved) -> pd.DataFrame:
    """One saved split with the columns and dtypes ``report.json`` names."""
    try:
        frame = pd.read_csv(
            path,
            dtype=saved.text_columns,
            keep_default_na=False,
            na_values=[""],
        )
        if list(frame.columns) != list(saved.dtypes):
            raise ValueError(f"columns {list(frame.columns)}, expected {list(saved.dtypes)}")
        return frame.astype(saved.dtypes)
    except (ValueError, TypeError, pd.errors.ParserError) as error:
        raise DatasetError(
            f"{str(path)!r} does not match report.json ({error}). Run prepare_dataset "
            "again with output_dir=..."
        ) from None
