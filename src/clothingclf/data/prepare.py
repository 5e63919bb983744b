"""From the clothing-dataset folder to verified, stratified splits: :func:`prepare_dataset`.

:func:`prepare_dataset` reads ``images.csv`` and the images folder (``tables``), drops
what cannot be used (excluded labels, missing files, undecodable files) and names it in a
:class:`~clothingclf.DatasetReport`, maps labels to integer ids, splits deterministically
(``splitting``), computes balanced class weights, and may save the result
(``splits``). Each of those is one step below; the arguments are all checked first.

Split sizes: ``test_size`` is a fraction of all kept rows; ``val_size`` is a fraction of
what remains after the test split (train + validation), as in the original study, which
got 4182 / 466 / 518 images from 5166 kept rows with ``test_size=val_size=0.1``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from .._paths import refuse_blocked_folder
from ..exceptions import EmptyDatasetError, InvalidParameterError, UnsafePathError
from ..images import check_image
from .report import DatasetReport
from .splits import DatasetSplits, save_splits
from .splitting import SPLIT_NAMES, assign_splits
from .tables import file_name, find_images_dir, locate, read_rows

__all__ = ["balanced_class_weights", "prepare_dataset"]


def prepare_dataset(
    root: str | os.PathLike[str],
    *,
    exclude: Iterable[str] | None = ("Skip", "Not sure"),
    test_size: float = 0.1,
    val_size: float = 0.1,
    stratify: bool = True,
    group_by: str | None = None,
    seed: int = 42,
    verify_images: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    images_dir: str | None = None,
    workers: int | None = None,
) -> DatasetSplits:
    """Read a clothing-dataset folder into verified, stratified, reproducible splits.

    Steps: read ``images.csv`` (UTF-8, a byte-order mark is fine, extra columns are kept),
    strip whitespace around labels, drop rows whose label is in ``exclude``, drop rows
    whose file is missing or (with ``verify_images``) does not fully decode, map labels
    sorted by name to ids, split, and compute balanced class weights on the train split.
    Everything dropped is named in :attr:`DatasetSplits.report`.

    Splitting: ``test_size`` is a fraction of all kept rows and ``val_size`` a fraction of
    the rest (train + validation), as in the original study. With ``stratify``, every
    class is split on its own and its count in each split is within one image of its
    proportional share; a class with fewer images than there are non-empty splits goes
    wholly to train and is named in the report with a ``UserWarning``. With ``group_by``,
    every group (e.g. one ``sender_id``) lies in exactly one split; groups are assigned
    largest first to the split that brings the per-class counts closest to their shares,
    so proportions are close but not exact. Rows with an empty group value are groups of
    their own. The same inputs and ``seed`` always give the same splits.

    Args:
        root: The dataset folder (holding ``images.csv`` and ``images/``,
            ``images_compressed/`` or ``images_original/``), or the ``images.csv`` itself.
        exclude: Labels whose rows are removed (``None``: none).
        test_size: Fraction of kept rows in the test split, in [0, 1).
        val_size: Fraction of the non-test rows in the validation split, in [0, 1).
        stratify: Keep class proportions equal across splits.
        group_by: A column whose values must not be shared between splits.
        seed: Seed of the shuffles.
        verify_images: Fully decode every image (in parallel) and drop those that fail.
        output_dir: If given, write ``train.csv``, ``val.csv``, ``test.csv``,
            ``report.json`` and ``report.txt`` there (atomically); read back with
            :func:`load_splits`.
        images_dir: The images folder's name inside ``root``; default the first of
            ``images``, ``images_compressed`` and ``images_original`` that exists.
        workers: Threads used to verify images; default one per CPU core.

    Returns:
        The splits, classes, class weights and report.

    Raises:
        DatasetNotFoundError: ``root``, ``images.csv`` or the images folder is missing.
        MissingColumnsError: ``images.csv`` lacks ``image``, ``label`` or ``group_by``.
        EmptyDatasetError: ``images.csv`` is empty, or no row is left after dropping.
        DuplicateImageError: Two rows name the same image id.
        UnsafePathError: An image id holds a path separator, ``..`` or an absolute path.
        DatasetError: ``root`` is a file that is not a CSV, the CSV is binary or
            unparsable, or a label or image id is empty.
        InvalidParameterError: An argument of the wrong kind or out of range (a fraction
            outside [0, 1), a seed that is not an int, ``output_dir`` that is a file, ...),
            raised before any file is read.

    Example:
        >>> import tempfile
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=10, image_size=16)
        >>> splits = prepare_dataset(root, seed=0)
        >>> len(splits.train), len(splits.val), len(splits.test)
        (49, 5, 6)
        >>> splits.train.columns.tolist()
        ['image', 'path', 'label', 'label_id', 'sender_id', 'kids']
    """
    exclude = _check_arguments(
        exclude=exclude,
        test_size=test_size,
        val_size=val_size,
        stratify=stratify,
        group_by=group_by,
        seed=seed,
        verify_images=verify_images,
        output_dir=output_dir,
        images_dir=images_dir,
        workers=workers,
    )
    kept = _read(
        root,
        exclude=exclude,
        group_by=group_by,
        images_dir=images_dir,
        verify_images=verify_images,
        workers=workers,
    )
    table, classes = _number_labels(kept.table)
    frames, small, messages = _split(
        table,
        classes,
        test_size=test_size,
        val_size=val_size,
        stratify=stratify,
        group_by=group_by,
        seed=seed,
    )
    weights = balanced_class_weights(frames["train"]["label_id"].to_numpy(), len(classes))
    missing_in_train = [c for c, w in zip(classes, weights, strict=True) if w == 0.0]
    if missing_in_train:
        messages.append(f"Classes without a train image (weight 0): {', '.join(missing_in_train)}.")
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    settings = {
        "exclude": list(exclude),
        "test_size": float(test_size),
        "val_size": float(val_size),
        "stratify": bool(stratify),
        "group_by": group_by,
        "seed": int(seed),
        "verify_images": bool(verify_images),
    }
    report = _report(kept, frames, small, messages, settings)
    splits = DatasetSplits(
        train=frames["train"],
        val=frames["val"],
        test=frames["test"],
        classes=classes,
        class_weights=weights,
        report=report,
    )
    if output_dir is not None:
        save_splits(splits, Path(output_dir))
    return splits


# --------------------------------------------------------------------------- arguments


def _check_arguments(**arguments: Any) -> tuple[str, ...]:
    """Refuse arguments of :func:`prepare_dataset` that cannot work, before any file is
    read; return ``exclude`` as a tuple of labels."""

    def bad(name: str, expected: str) -> InvalidParameterError:
        return InvalidParameterError(
            f"prepare_dataset: {name} must be {expected}; found {arguments[name]!r}."
        )

    for name in ("test_size", "val_size"):
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise bad(name, "a fraction in [0, 1)")
    for name in ("stratify", "verify_images"):
        if not isinstance(arguments[name], bool):
            raise bad(name, "True or False")
    seed = arguments["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise bad("seed", "an int from 0 to 2**32 - 1")
    workers = arguments["workers"]
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise bad("workers", "None or a positive int")
    for name in ("group_by", "images_dir"):
        if arguments[name] is not None and not isinstance(arguments[name], str):
            raise bad(name, "None or a column/folder name")
    output_dir = arguments["output_dir"]
    if output_dir is not None:
        if not isinstance(output_dir, (str, os.PathLike)):
            raise bad("output_dir", "None or a folder path")
        _check_output_dir(Path(output_dir))
    exclude = arguments["exclude"]
    if exclude is None:
        return ()
    if isinstance(exclude, str):
        return (exclude.strip(),)
    try:
        labels = tuple(exclude)
    except TypeError:
        raise bad("exclude", "a label or a list of labels") from None
    if not all(isinstance(label, str) for label in labels):
        raise bad("exclude", "a label or a list of labels (strings)")
    return tuple(label.strip() for label in labels)


def _check_output_dir(folder: Path) -> None:
    """Refuse an ``output_dir`` that is, or lies below, a file (before images are verified)."""
    refuse_blocked_folder(folder, "prepare_dataset: output_dir", InvalidParameterError)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Kept:
    """The rows of ``images.csv`` left after reading, and what was dropped on the way."""

    table: pd.DataFrame
    root: Path
    folder: Path
    n_rows: int
    n_stripped: int
    excluded: dict[str, int]
    missing: tuple[str, ...]
    unreferenced: tuple[str, ...]
    unreadable: dict[str, str]


def _read(
    root: str | os.PathLike[str],
    *,
    exclude: tuple[str, ...],
    group_by: str | None,
    images_dir: str | None,
    verify_images: bool,
    workers: int | None,
) -> _Kept:
    """Read ``images.csv``, then drop excluded labels, missing files and (with
    ``verify_images``) files that do not decode; refuse a dataset with no row left."""
    root_path, csv_path = locate(root)
    table, n_stripped = read_rows(csv_path, group_by)
    n_rows = len(table)
    referenced = set(table["image"].map(file_name))  # excluded rows still name their files
    table, excluded = _drop_excluded(table, exclude, csv_path.name)
    folder = find_images_dir(root_path, images_dir)
    table, missing, unreferenced = _find_files(table, folder, referenced)
    unreadable: dict[str, str] = {}
    if verify_images:
        table, unreadable = _drop_unreadable(table, workers)
    if table.empty:
        raise EmptyDatasetError(
            f"No row of {csv_path.name} is left after dropping {len(missing)} missing and "
            f"{len(unreadable)} unreadable files in {str(folder)!r}. Check that the images "
            "folder holds <image>.jpg for the ids in images.csv."
        )
    return _Kept(
        table=table,
        root=root_path,
        folder=folder,
        n_rows=n_rows,
        n_stripped=n_stripped,
        excluded=excluded,
        missing=missing,
        unreferenced=unreferenced,
        unreadable=unreadable,
    )


def _drop_excluded(
    table: pd.DataFrame, exclude: tuple[str, ...], csv_name: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows whose label is not in ``exclude``, and the dropped rows per label."""
    excluded_mask = table["label"].isin(exclude)
    excluded_counts = table.loc[excluded_mask, "label"].value_counts()
    excluded = {str(k): int(excluded_counts[k]) for k in sorted(excluded_counts.index)}
    table = table.loc[~excluded_mask]
    if table.empty:
        raise EmptyDatasetError(
            f"Every row of {csv_name} has an excluded label ({', '.join(exclude)}). "
            "Pass a smaller exclude=... or check the label column."
        )
    return table, excluded


def _find_files(
    table: pd.DataFrame, folder: Path, referenced: set[str]
) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """The rows whose file exists, with its ``path``; the ids without a file; and the files
    of ``folder`` that no row names. A link that leads outside ``folder`` is refused."""
    names = table["image"].map(file_name)
    paths = [folder / n for n in names]
    for image, path in zip(table["image"], paths, strict=True):
        if os.path.islink(path) and not _resolve(path).is_relative_to(folder):  # False: too long
            raise UnsafePathError(
                f"Image {image!r} is a link to {str(path.resolve())!r}, outside {str(folder)!r}. "
                "Copy the file into the images folder instead; nothing outside it is read."
            )
    exists = np.array([os.path.lexists(p) for p in paths], dtype=bool)  # a link loop too
    missing = tuple(table["image"][~exists].tolist())
    unreferenced = tuple(
        sorted(e.name for e in os.scandir(folder) if e.name not in referenced and e.is_file())
    )
    return table.assign(path=[str(p) for p in paths]).loc[exists], missing, unreferenced


def _resolve(path: Path) -> Path:
    """``path`` with its links followed; a link loop resolves to the link itself (it is then
    reported as unreadable rather than raising)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path


def _drop_unreadable(
    table: pd.DataFrame, workers: int | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rows whose image fully decodes, and why each of the others does not."""
    reasons = _verify(table["path"].tolist(), workers)
    bad_rows = np.array([r is not None for r in reasons], dtype=bool)
    unreadable = {
        img: str(r) for img, r in zip(table["image"], reasons, strict=True) if r is not None
    }
    return table.loc[~bad_rows], unreadable


def _verify(paths: Sequence[str], workers: int | None) -> list[str | None]:
    """Why each image does not decode (``None``: it does), checked in parallel threads."""
    if not paths:
        return []
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n <= 1:
        return [check_image(p) for p in paths]
    # Pillow releases the GIL while it decodes, so threads use every core without the
    # start-up and pickling cost of processes. open_image silences DecompressionBombWarning
    # with warnings.catch_warnings, which is not thread-safe: concurrent exits can restore
    # each other's filters. Silencing it here first, in this thread, keeps the filter in
    # force while the workers run and restores the caller's filters exactly afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(check_image, paths))


# --------------------------------------------------------------------------- splitting


def _number_labels(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows with a ``label_id`` column after ``label`` (the label's position among the
    labels sorted by name) and an index from 0; and the sorted labels."""
    classes = sorted(table["label"].unique().tolist())
    label_ids = table["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    others = [c for c in table.columns if c not in ("image", "path", "label")]
    table = table.assign(label_id=label_ids)[["image", "path", "label", "label_id", *others]]
    return table.reset_index(drop=True), classes


def _split(
    table: pd.DataFrame,
    classes: list[str],
    *,
    test_size: float,
    val_size: float,
    stratify: bool,
    group_by: str | None,
    seed: int,
) -> tuple[dict[str, pd.DataFrame], list[str], list[str]]:
    """The rows of each split; the classes too small to split (put wholly in train); and
    the warning that names them, if any."""
    fractions = np.array([(1 - test_size) * (1 - val_size), (1 - test_size) * val_size, test_size])
    n_splits = int((fractions > 0).sum())
    labels = table["label_id"].to_numpy()
    sizes = np.bincount(labels, minlength=len(classes))
    small = [c for c, n in zip(classes, sizes, strict=True) if n < n_splits]
    messages: list[str] = []
    groups = None
    if group_by is not None:
        groups = np.array(
            [
                f"={value}" if pd.notna(value) else f"\x00row{i}"
                for i, value in enumerate(table[group_by])
            ],
            dtype=str,
        )
        small = []  # whole groups move together; a tiny class goes wherever its groups go
    elif not stratify:
        small = []
    if small:
        messages.append(
            f"{len(small)} class(es) have fewer images than the {n_splits} splits and were "
            f"put wholly in train: {', '.join(small)}. Add images or exclude them."
        )
    assignment = assign_splits(
        labels,
        fractions,
        seed=seed,
        stratify=stratify,
        groups=groups,
        keep_in_train=[classes.index(c) for c in small],
    )
    frames = {
        s: table.loc[assignment == i].reset_index(drop=True) for i, s in enumerate(SPLIT_NAMES)
    }
    return frames, small, messages


def _report(
    kept: _Kept,
    frames: dict[str, pd.DataFrame],
    small: list[str],
    messages: list[str],
    settings: dict[str, Any],
) -> DatasetReport:
    """What was read, dropped and kept, with the arguments that shaped the splits."""
    counts = {
        s: {str(c): int(n) for c, n in frames[s]["label"].value_counts().sort_index().items()}
        for s in SPLIT_NAMES
    }
    return DatasetReport(
        root=str(kept.root),
        images_dir=str(kept.folder),
        n_rows=kept.n_rows,
        excluded=kept.excluded,
        stripped_labels=kept.n_stripped,
        missing_files=kept.missing,
        unreadable=kept.unreadable,
        unreferenced_files=kept.unreferenced,
        small_classes=tuple(small),
        counts=counts,
        settings=settings,
        warnings=tuple(messages),
    )


def balanced_class_weights(train_ids: np.ndarray, n_classes: int) -> list[float]:
    """scikit-learn's balanced class weights on the train split; 0 for a class it lacks."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(train_ids)
    if len(present) == n_classes:
        weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=train_ids)
        return [float(w) for w in weights]
    # A class absent from train gets weight 0 (it cannot be learned); the rest as sklearn.
    counts = np.bincount(train_ids, minlength=n_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, len(train_ids) / (n_classes * counts), 0.0)
    return [float(w) for w in weights]
