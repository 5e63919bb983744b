"""Finding and reading ``images.csv`` and the images folder, with clear errors (for prepare.py)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import (
    ClothingClfError,
    DatasetError,
    DatasetNotFoundError,
    DuplicateImageError,
    EmptyDatasetError,
    MissingColumnsError,
    UnsafePathError,
)

__all__ = ["IMAGE_FOLDERS", "file_name", "find_images_dir", "label_ids", "locate", "read_rows"]

#: Folder names searched, in this order, for the images beside ``images.csv``: the GitHub
#: release uses ``images/``; the Kaggle release ships ``images_compressed/`` (used by the
#: study) and ``images_original/``.
IMAGE_FOLDERS = ("images", "images_compressed", "images_original")

_REQUIRED = ("image", "label")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
_SHOWN = 10


def locate(root: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The dataset folder and its ``images.csv`` (both absolute) for a folder or csv path."""
    try:
        return _locate(Path(root))
    except ClothingClfError:  # DatasetNotFoundError is an OSError too
        raise
    except OSError as error:  # a name too long, a link loop, no permission to look
        raise DatasetError(
            f"The dataset path {str(root)!r} cannot be read ({error.strerror or error})."
        ) from None


def _locate(root_path: Path) -> tuple[Path, Path]:
    csv_path = root_path / "images.csv"
    if not root_path.exists():
        raise DatasetNotFoundError(
            f"Dataset folder {str(root_path)!r} does not exist. Expected a folder holding "
            "images.csv and images/ (the clothing-dataset release)."
        )
    if root_path.is_file():
        if root_path.suffix.lower() != ".csv":
            raise DatasetError(
                f"{str(root_path)!r} is a file, not a dataset folder. Expected a folder "
                "holding images.csv and images/ (the clothing-dataset release)."
            )
        csv_path, root_path = root_path, root_path.parent
    root_path = root_path.resolve()
    csv_path = csv_path.resolve()
    if csv_path.exists() and not csv_path.is_file():
        raise DatasetError(
            f"{str(csv_path)!r} is not a regular file (a folder, FIFO or device); it was not "
            "read. Expected the images.csv table of the dataset."
        )
    if not csv_path.is_file():
        raise DatasetNotFoundError(
            f"{str(root_path)!r} has no images.csv. Expected a table with the columns image, "
            "sender_id, label, kids beside the images/ folder."
        )
    return root_path, csv_path


def read_rows(csv_path: Path, group_by: str | None) -> tuple[pd.DataFrame, int]:
    """``images.csv`` checked (columns, ids, labels), ids and labels stripped; and the number
    of labels that had surrounding whitespace."""
    table = _read_table(csv_path)
    _check_columns(table, csv_path, group_by)
    n_rows = len(table)
    if n_rows == 0:
        raise EmptyDatasetError(
            f"{csv_path.name} has a header but no rows. Expected one row per photo."
        )
    ids = _check_ids(table, csv_path)
    raw_labels = table["label"]
    stripped = raw_labels.astype(str).str.strip()
    empty = raw_labels.isna() | (stripped == "")
    if empty.any():
        bad = ids[empty].tolist()
        raise DatasetError(
            f"{csv_path.name} has {len(bad)} row(s) with an empty label (images: "
            f"{', '.join(bad[:_SHOWN])}). Give each row a label, or remove the rows."
        )
    n_stripped = int((stripped != raw_labels.astype(str)).sum())
    table = table.assign(image=ids, label=stripped)
    return table, n_stripped


def _read_table(csv_path: Path) -> pd.DataFrame:
    try:
        raw = csv_path.read_bytes()
    except OSError as error:
        raise DatasetError(f"Cannot read {str(csv_path)!r}: {error}.") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(
                f"{str(csv_path)!r} starts as UTF-16 text but does not decode ({error}). Save "
                "it as UTF-8 CSV."
            ) from None
    if b"\x00" in raw[:8192]:
        raise DatasetError(
            f"{str(csv_path)!r} is not a text table: it contains binary data (is it a model "
            "file or an image?). Expected a CSV with the columns image, label."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{str(csv_path)!r} is not UTF-8 text ({error}). Save it as UTF-8 CSV."
        ) from None
    if not text.strip():
        raise EmptyDatasetError(
            f"{str(csv_path)!r} is empty. Expected a header line (image,sender_id,label,kids) "
            "and one row per photo."
        )
    try:
        table = pd.read_csv(
            io.StringIO(text),
            dtype={"image": str, "label": str},
            keep_default_na=False,
            na_values=[""],
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise DatasetError(
            f"{str(csv_path)!r} could not be parsed as CSV ({error}). Expected a CSV with "
            "the columns image, label."
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _check_columns(table: pd.DataFrame, csv_path: Path, group_by: str | None) -> None:
    required = [*_REQUIRED, *([group_by] if group_by is not None else [])]
    missing = [c for c in required if c not in table.columns]
    if missing:
        found = ", ".join(map(str, table.columns)) or "no columns"
        names = ", ".join(repr(c) for c in missing)
        noun = "column" if len(missing) == 1 else "columns"
        raise MissingColumnsError(
            f"{csv_path.name} lacks {noun} {names} (found: {found}). Expected the columns of "
            f"the clothing-dataset release: {', '.join(required)}."
        )
    if len(table.columns) != len(set(table.columns)):
        raise DatasetError(f"{csv_path.name} names a column twice: {list(table.columns)}.")


def file_name(image: str) -> str:
    return image if image.lower().endswith(_IMAGE_SUFFIXES) else f"{image}.jpg"


def _check_ids(table: pd.DataFrame, csv_path: Path) -> pd.Series:
    ids = table["image"]
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        rows = [int(i) + 2 for i in np.flatnonzero(empty.to_numpy())[:_SHOWN]]
        raise DatasetError(
            f"{csv_path.name} has rows without an image id (lines {rows}). Fill in the "
            "'image' column or remove those rows."
        )
    ids = ids.astype(str).str.strip()
    for line, image in enumerate(ids, start=2):
        if (
            "/" in image
            or "\\" in image
            or ".." in image
            or "\x00" in image
            or os.path.isabs(image)
            or image.startswith("~")
        ):
            raise UnsafePathError(
                f"{csv_path.name} line {line}: image id {image!r} contains a path separator, "
                "'..' or an absolute path. Expected a plain file name inside the images "
                "folder; nothing outside the dataset folder is read."
            )
    duplicated = ids[ids.duplicated(keep=False)]
    if not duplicated.empty:
        names = sorted(set(duplicated))
        raise DuplicateImageError(
            f"{csv_path.name} names {len(names)} image id(s) in more than one row: "
            f"{', '.join(names[:_SHOWN])}. Expected one row per image; remove the duplicates."
        )
    return ids


def find_images_dir(root: Path, images_dir: str | None) -> Path:
    candidates = (images_dir,) if images_dir is not None else IMAGE_FOLDERS
    for name in candidates:
        if "/" in name or "\\" in name or ".." in name:
            raise UnsafePathError(f"images_dir {name!r} must be a folder name inside {root}.")
        folder = root / name
        if folder.is_dir():
            resolved = folder.resolve()
            if not resolved.is_relative_to(root):
                raise UnsafePathError(
                    f"The images folder {str(folder)!r} is a link to {str(resolved)!r}, outside "
                    f"the dataset folder {str(root)!r}; nothing outside it is read. Copy or move "
                    "the photos into the dataset folder."
                )
            return resolved
    raise DatasetNotFoundError(
        f"{str(root)!r} has no images folder (looked for {', '.join(candidates)}). Expected "
        "the photos as images/<image>.jpg beside images.csv."
    )


def label_ids(labels: pd.Series, classes: Sequence[str], problem: str, **names: str) -> np.ndarray:
    """The index in ``classes`` of each label: the one mapping of labels to the network's
    outputs, for fitting and for scoring alike.

    Raises:
        DatasetError: Labels outside ``classes``: ``problem`` with ``{unknown}`` and
            ``{classes}`` filled in (each a comma-separated list), and the ``names``.

    Example:
        >>> label_ids(pd.Series(["Hat", "Dress"]), ["Dress", "Hat"], "{unknown}").tolist()
        [1, 0]
    """
    index = {str(name): i for i, name in enumerate(classes)}
    unknown = sorted({str(v) for v in labels} - set(index))
    if unknown:
        listed = {"unknown": ", ".join(unknown), "classes": ", ".join(index)}
        raise DatasetError(problem.format(**names, **listed))
    return np.array([index[str(v)] for v in labels], dtype=np.int64)
