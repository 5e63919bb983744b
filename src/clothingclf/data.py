"""From the clothing-dataset folder to verified, stratified train / validation / test splits.

:func:`prepare_dataset` reads ``images.csv`` and the images folder, drops what cannot be
used (excluded labels, missing files, undecodable files) and says so in a
:class:`DatasetReport`, maps labels to integer ids, splits deterministically, and
computes balanced class weights. :func:`load_splits` reads saved splits back, and
:class:`ClothingDataset` feeds a split to PyTorch.

Split sizes: ``test_size`` is a fraction of all kept rows; ``val_size`` is a fraction of
what remains after the test split (train + validation), as in the original study, which
got 4182 / 466 / 518 images from 5166 kept rows with ``test_size=val_size=0.1``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch.utils.data
from PIL import Image

from ._paths import file_in_the_way, path_kind, write_atomically, write_error
from ._splitting import assign_splits
from ._table import IMAGE_FOLDERS, file_name, find_images_dir, locate, read_rows
from .exceptions import (
    DatasetError,
    DatasetNotFoundError,
    EmptyDatasetError,
    InvalidParameterError,
    MissingColumnsError,
    UnsafePathError,
)
from .images import check_image, open_image

__all__ = [
    "IMAGE_FOLDERS",
    "ClothingDataset",
    "DatasetReport",
    "DatasetSplits",
    "load_splits",
    "prepare_dataset",
]


_SPLITS = ("train", "val", "test")
_SHOWN = 10  # names listed in a summary before "... and N more"


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`prepare_dataset` dropped and why, and what it kept.

    Attributes:
        root: The dataset folder (absolute).
        images_dir: The images folder that was read (absolute).
        n_rows: Rows in ``images.csv``.
        excluded: Label -> rows removed because the label is in ``exclude``.
        stripped_labels: Rows whose label had surrounding whitespace (stripped and kept).
        missing_files: Image ids whose file does not exist (rows dropped).
        unreadable: Image id -> why its file could not be decoded (rows dropped).
        unreferenced_files: Files in the images folder that no row names (ignored).
        small_classes: Classes too small to be split (fewer images than non-empty splits);
            all their images were put in the train split.
        counts: Split name -> label -> number of images.
        settings: The arguments of :func:`prepare_dataset` that shaped the splits.
        warnings: Human-readable warnings that were also emitted as ``UserWarning``.

    Example:
        >>> report = DatasetReport(root="/data", images_dir="/data/images", n_rows=3,
        ...                        excluded={"Skip": 1})
        >>> print(report.summary().splitlines()[1])
        Excluded labels: Skip (1)
    """

    root: str
    images_dir: str
    n_rows: int
    excluded: dict[str, int] = field(default_factory=dict)
    stripped_labels: int = 0
    missing_files: tuple[str, ...] = ()
    unreadable: dict[str, str] = field(default_factory=dict)
    unreferenced_files: tuple[str, ...] = ()
    small_classes: tuple[str, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def n_dropped(self) -> int:
        """Rows dropped for any reason (excluded, missing file, unreadable file)."""
        return sum(self.excluded.values()) + len(self.missing_files) + len(self.unreadable)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible dictionaries and lists.

        Example:
            >>> DatasetReport(root="r", images_dir="r/images", n_rows=0).to_dict()["n_rows"]
            0
        """
        return {
            "root": self.root,
            "images_dir": self.images_dir,
            "n_rows": self.n_rows,
            "excluded": dict(self.excluded),
            "stripped_labels": self.stripped_labels,
            "missing_files": list(self.missing_files),
            "unreadable": dict(self.unreadable),
            "unreferenced_files": list(self.unreferenced_files),
            "small_classes": list(self.small_classes),
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "settings": dict(self.settings),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetReport:
        """Rebuild a report from :meth:`to_dict`'s output.

        Example:
            >>> r = DatasetReport(root="r", images_dir="r/images", n_rows=2, excluded={"Skip": 1})
            >>> DatasetReport.from_dict(r.to_dict()) == r
            True
        """
        return cls(
            root=str(data["root"]),
            images_dir=str(data["images_dir"]),
            n_rows=int(data["n_rows"]),
            excluded={str(k): int(v) for k, v in data.get("excluded", {}).items()},
            stripped_labels=int(data.get("stripped_labels", 0)),
            missing_files=tuple(data.get("missing_files", ())),
            unreadable={str(k): str(v) for k, v in data.get("unreadable", {}).items()},
            unreferenced_files=tuple(data.get("unreferenced_files", ())),
            small_classes=tuple(data.get("small_classes", ())),
            counts={
                str(s): {str(k): int(v) for k, v in c.items()}
                for s, c in data.get("counts", {}).items()
            },
            settings=dict(data.get("settings", {})),
            warnings=tuple(data.get("warnings", ())),
        )

    def summary(self) -> str:
        """A few lines saying what was kept and what was dropped and why.

        Example:
            >>> print(DatasetReport(root="r", images_dir="r/images", n_rows=0).summary())
            Rows in images.csv: 0
            Excluded labels: none
            Missing files: 0
            Unreadable files: 0
            Files no row names: 0
        """
        excluded = ", ".join(f"{k} ({v})" for k, v in self.excluded.items()) or "none"
        lines = [f"Rows in images.csv: {self.n_rows}", f"Excluded labels: {excluded}"]
        if self.stripped_labels:
            lines.append(f"Labels with surrounding whitespace (stripped): {self.stripped_labels}")
        lines.append(f"Missing files: {len(self.missing_files)}{_names(self.missing_files)}")
        lines.append(f"Unreadable files: {len(self.unreadable)}")
        for image, reason in list(self.unreadable.items())[:_SHOWN]:
            lines.append(f"  {image}: {reason}")
        if len(self.unreadable) > _SHOWN:
            lines.append(f"  ... and {len(self.unreadable) - _SHOWN} more")
        lines.append(
            f"Files no row names: {len(self.unreferenced_files)}{_names(self.unreferenced_files)}"
        )
        if self.small_classes:
            lines.append(
                "Classes too small to split (all in train): " + ", ".join(self.small_classes)
            )
        if self.counts:
            sizes = " / ".join(f"{sum(self.counts.get(s, {}).values())} {s}" for s in _SPLITS)
            lines.append(f"Kept: {sizes}")
        lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _names(names: Sequence[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:_SHOWN])
    more = f", ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f" ({shown}{more})"


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
        >>> from clothingclf.datasets import make_synthetic
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
            and all(_frames_equal(getattr(self, s), getattr(other, s)) for s in _SPLITS)
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
            >>> from clothingclf.datasets import make_synthetic
            >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=10, image_size=16)
            >>> clothingclf.prepare_dataset(root).counts().loc["Hat"].tolist()
            [8, 1, 1, 10]
        """
        table = pd.DataFrame(
            {
                s: getattr(self, s)["label"].value_counts().reindex(self.classes, fill_value=0)
                for s in _SPLITS
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


# --------------------------------------------------------------------------- reading


def _verify(paths: Sequence[str], workers: int | None) -> list[str | None]:
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


# --------------------------------------------------------------------------- writing


def _text_columns(splits: DatasetSplits) -> list[str]:
    """Columns to read back as text: string columns, and object columns holding only str
    (object columns of mixed values, such as booleans with gaps, are left to inference)."""
    whole = pd.concat([getattr(splits, s) for s in _SPLITS])
    return [
        str(c)
        for c in whole.columns
        if pd.api.types.is_string_dtype(whole[c].dtype)
        and (whole[c].dtype != object or all(isinstance(v, str) for v in whole[c].dropna()))
    ]


def _save(splits: DatasetSplits, output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(output_dir, error) from error
    for name in _SPLITS:
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
        >>> from clothingclf.datasets import make_synthetic
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
    for path in (meta_path, *(folder / f"{s}.csv" for s in _SPLITS)):
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
    frames = {}
    for name in _SPLITS:
        path = folder / f"{name}.csv"
        try:
            frame = pd.read_csv(
                path,
                dtype=text,
                keep_default_na=False,
                na_values=[""],
            )
            if list(frame.columns) != list(dtypes):
                raise ValueError(f"columns {list(frame.columns)}, expected {list(dtypes)}")
            frames[name] = frame.astype(dtypes)
        except (ValueError, TypeError, pd.errors.ParserError) as error:
            raise DatasetError(
                f"{str(path)!r} does not match report.json ({error}). Run prepare_dataset "
                "again with output_dir=..."
            ) from None
    return DatasetSplits(
        train=frames["train"],
        val=frames["val"],
        test=frames["test"],
        classes=classes,
        class_weights=weights,
        report=report,
    )


# --------------------------------------------------------------------------- the API


def _class_weights(train_ids: np.ndarray, n_classes: int) -> list[float]:
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


def _resolve(path: Path) -> Path:
    """``path`` with its links followed; a link loop resolves to the link itself (it is then
    reported as unreadable rather than raising)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path


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
        folder = Path(output_dir)
        try:
            blocker = file_in_the_way(folder)
        except OSError as error:
            raise InvalidParameterError(
                f"prepare_dataset: output_dir {str(folder)!r} cannot be used "
                f"({error.strerror or error}). Choose another output_dir."
            ) from None
        if blocker is not None:
            raise InvalidParameterError(
                f"prepare_dataset: output_dir {str(folder)!r} cannot be a folder: "
                f"{str(blocker)!r} is a file. Choose another output_dir."
            )
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
        >>> from clothingclf.datasets import make_synthetic
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
    root_path, csv_path = locate(root)
    table, n_stripped = read_rows(csv_path, group_by)
    n_rows = len(table)
    referenced = set(table["image"].map(file_name))  # excluded rows still name their files

    excluded_mask = table["label"].isin(exclude)
    excluded_counts = table.loc[excluded_mask, "label"].value_counts()
    excluded = {str(k): int(excluded_counts[k]) for k in sorted(excluded_counts.index)}
    table = table.loc[~excluded_mask]
    if table.empty:
        raise EmptyDatasetError(
            f"Every row of {csv_path.name} has an excluded label ({', '.join(exclude)}). "
            "Pass a smaller exclude=... or check the label column."
        )

    folder = find_images_dir(root_path, images_dir)
    names = table["image"].map(file_name)
    paths = [folder / n for n in names]
    for image, path in zip(table["image"], paths, strict=True):
        if path.is_symlink() and not _resolve(path).is_relative_to(folder):
            raise UnsafePathError(
                f"Image {image!r} is a link to {str(path.resolve())!r}, outside {str(folder)!r}. "
                "Copy the file into the images folder instead; nothing outside it is read."
            )
    exists = np.array([os.path.lexists(p) for p in paths], dtype=bool)  # a link loop too
    missing = tuple(table["image"][~exists].tolist())
    unreferenced = tuple(
        sorted(e.name for e in os.scandir(folder) if e.name not in referenced and e.is_file())
    )
    table = table.assign(path=[str(p) for p in paths]).loc[exists]

    unreadable: dict[str, str] = {}
    if verify_images:
        reasons = _verify(table["path"].tolist(), workers)
        bad_rows = np.array([r is not None for r in reasons], dtype=bool)
        unreadable = {
            img: str(r) for img, r in zip(table["image"], reasons, strict=True) if r is not None
        }
        table = table.loc[~bad_rows]
    if table.empty:
        raise EmptyDatasetError(
            f"No row of {csv_path.name} is left after dropping {len(missing)} missing and "
            f"{len(unreadable)} unreadable files in {str(folder)!r}. Check that the images "
            "folder holds <image>.jpg for the ids in images.csv."
        )

    classes = sorted(table["label"].unique().tolist())
    label_ids = table["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    others = [c for c in table.columns if c not in ("image", "path", "label")]
    table = table.assign(label_id=label_ids)[["image", "path", "label", "label_id", *others]]
    table = table.reset_index(drop=True)

    fractions = np.array([(1 - test_size) * (1 - val_size), (1 - test_size) * val_size, test_size])
    n_splits = int((fractions > 0).sum())
    labels = table["label_id"].to_numpy()
    sizes = np.bincount(labels, minlength=len(classes))
    small = [c for c, n in zip(classes, sizes, strict=True) if n < n_splits]
    messages = []
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

    frames = {s: table.loc[assignment == i].reset_index(drop=True) for i, s in enumerate(_SPLITS)}
    weights = _class_weights(frames["train"]["label_id"].to_numpy(), len(classes))
    missing_in_train = [c for c, w in zip(classes, weights, strict=True) if w == 0.0]
    if missing_in_train:
        messages.append(f"Classes without a train image (weight 0): {', '.join(missing_in_train)}.")
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    counts_by_split = {
        s: {c: int(n) for c, n in frames[s]["label"].value_counts().sort_index().items()}
        for s in _SPLITS
    }
    report = DatasetReport(
        root=str(root_path),
        images_dir=str(folder),
        n_rows=n_rows,
        excluded=excluded,
        stripped_labels=n_stripped,
        missing_files=missing,
        unreadable=unreadable,
        unreferenced_files=unreferenced,
        small_classes=tuple(small),
        counts=counts_by_split,
        settings={
            "exclude": list(exclude),
            "test_size": float(test_size),
            "val_size": float(val_size),
            "stratify": bool(stratify),
            "group_by": group_by,
            "seed": int(seed),
            "verify_images": bool(verify_images),
        },
        warnings=tuple(messages),
    )
    splits = DatasetSplits(
        train=frames["train"],
        val=frames["val"],
        test=frames["test"],
        classes=classes,
        class_weights=weights,
        report=report,
    )
    if output_dir is not None:
        _save(splits, Path(output_dir))
    return splits


class ClothingDataset(torch.utils.data.Dataset[tuple[Any, int]]):
    """A PyTorch dataset over one split: decoded RGB images and their label ids.

    Images are decoded by :func:`~clothingclf.open_image` (EXIF orientation applied;
    greyscale, 16-bit, CMYK, palette and transparent images converted to RGB).

    Args:
        split: A DataFrame with a ``path`` column and, for labelled data, ``label_id``
            (e.g. ``splits.train``).
        transform: Applied to each Pillow image (e.g. a torchvision transform); the
            image itself is returned when ``None``.
        draft_size: Passed to :func:`~clothingclf.open_image`: JPEGs may be decoded at a
            reduced size no smaller than this (width, height), which is much faster.

    Raises:
        MissingColumnsError: ``split`` has no ``path`` column.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.datasets import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=5, image_size=16)
        >>> data = ClothingDataset(clothingclf.prepare_dataset(root).train)
        >>> image, label = data[0]
        >>> image.mode, image.size, type(label)
        ('RGB', (16, 16), <class 'int'>)
    """

    def __init__(
        self,
        split: pd.DataFrame,
        transform: Callable[[Any], Any] | None = None,
        *,
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        if "path" not in split.columns:
            raise MissingColumnsError(
                f"The split lacks column 'path' (found: {', '.join(map(str, split.columns))}). "
                "Expected a split of prepare_dataset(), e.g. splits.train."
            )
        self.paths: list[str] = [str(p) for p in split["path"]]
        if "label_id" in split.columns:
            self.labels: list[int] = [int(i) for i in split["label_id"]]
        else:
            self.labels = [-1] * len(self.paths)
        self.transform = transform
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = open_image(self.paths[index], draft_size=self.draft_size)
        if self.transform is not None:
            return self.transform(image), self.labels[index]
        return image, self.labels[index]
