"""What :func:`~clothingclf.prepare_dataset` dropped and why, and what it kept.

:class:`DatasetReport` travels with the splits, is saved beside them as ``report.json``
and ``report.txt``, and is read back by :func:`~clothingclf.load_splits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .splitting import SPLIT_NAMES

__all__ = ["DatasetReport"]

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
            sizes = " / ".join(f"{sum(self.counts.get(s, {}).values())} {s}" for s in SPLIT_NAMES)
            lines.append(f"Kept: {sizes}")
        lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _names(names: Sequence[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:_SHOWN])
    more = f", ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f" ({shown}{more})"
