"""Where a dataset lives: :func:`open_splits` takes a folder a user names and returns its
splits, prepared from a dataset root or read back from a folder of saved splits.

The one rule for "what is this folder", used by the command line (``train``, ``evaluate``,
``report``) and :func:`~clothingclf.load_evaluation_data`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._paths import path_kind
from ..exceptions import DatasetError, DatasetNotFoundError, InvalidParameterError
from .prepare import prepare_dataset
from .splits import DatasetSplits, load_splits

__all__ = ["open_splits", "open_splits_noting_prepared"]

_EXPECTED = (
    "Expected a dataset root holding images.csv (split with prepare_dataset), or a folder "
    "written by prepare_dataset(output_dir=...) or 'clothingclf prepare --output' (report.json, "
    "train.csv, val.csv and test.csv)."
)


def open_splits(path: str | os.PathLike[str], *, seed: int = 42) -> DatasetSplits:
    """The splits of a dataset root or of a folder of saved splits.

    * A folder holding ``images.csv`` is a dataset root: it is split by
      :func:`prepare_dataset` with its default options and ``seed``, which gives the same
      splits as ``prepare_dataset(path, seed=seed)``. This holds also when the folder
      holds saved splits as well (``output_dir`` was the root itself).
    * Otherwise a folder holding ``report.json`` is one written by
      ``prepare_dataset(output_dir=...)`` or ``clothingclf prepare --output``: it is read by
      :func:`load_splits`, which also needs ``train.csv``, ``val.csv`` and ``test.csv`` and
      says which one is missing or does not match.

    Args:
        path: The folder.
        seed: The split seed for a dataset root; a folder of saved splits keeps the split
            it was saved with.

    Returns:
        The splits. :func:`prepare_dataset`'s ``UserWarning`` (a class too small to split)
        is not caught.

    Raises:
        DatasetNotFoundError: ``path`` does not exist, is not a folder, or holds neither
            ``images.csv`` nor ``report.json``; and what :func:`prepare_dataset` or
            :func:`load_splits` raise for a folder that is missing a file.
        DatasetError: ``path`` cannot be looked at (no permission, a link loop), and what
            :func:`prepare_dataset` or :func:`load_splits` raise for a bad file.
        InvalidParameterError: ``path`` is not a path, or ``seed`` is not a valid seed (for a
            dataset root).

    Example:
        >>> import tempfile
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=5, image_size=16)
        >>> out = tempfile.mkdtemp()
        >>> splits = open_splits(root)
        >>> splits == prepare_dataset(root, output_dir=out)
        True
        >>> open_splits(out) == splits
        True
    """
    return open_splits_noting_prepared(path, seed=seed)[0]


def open_splits_noting_prepared(
    path: str | os.PathLike[str], *, seed: int = 42
) -> tuple[DatasetSplits, bool]:
    """:func:`open_splits`, and whether the splits were prepared just now (``False``: read
    back), for a caller that reports what ``prepare_dataset`` dropped (the CLI)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"open_splits needs the path of a folder; found {path!r}. {_EXPECTED}"
        )
    folder = Path(path)
    try:
        kind = path_kind(folder)
        has_table = kind == "directory" and path_kind(folder / "images.csv") != "missing"
        has_saved = kind == "directory" and path_kind(folder / "report.json") != "missing"
    except OSError as error:  # no permission to look, a link loop, a name too long
        raise DatasetError(
            f"The dataset path {str(folder)!r} cannot be read ({error.strerror or error})."
        ) from None
    # Present is enough: the reader then names what is wrong with it (a folder named
    # images.csv, a report.json of another format, a missing val.csv).
    if has_table:
        return prepare_dataset(folder, seed=seed), True
    if has_saved:
        return load_splits(folder), False
    if kind == "missing":
        found = "does not exist"
    elif kind == "regular":
        found = "is a file, not a folder"
    elif kind == "special":
        found = "is not a folder (a FIFO, socket or device)"
    else:
        found = "holds neither images.csv nor report.json"
    raise DatasetNotFoundError(f"{str(folder)!r} {found}. {_EXPECTED} Give the path of one.")
