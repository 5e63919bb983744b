"""The report folder: which names a report owns, the refusal to replace files of those
names that no report wrote, claiming the folder, and writing each file atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .._paths import refuse_blocked_folder, write_atomically
from ..exceptions import SaveError

__all__ = [
    "REPORT_FILES",
    "REPORT_FORMAT",
    "claim_folder",
    "refuse_to_replace",
    "write_figures",
    "write_page",
    "write_tables",
]

#: The ``format`` of every ``report.json`` a report writes, by which a rerun knows its own.
REPORT_FORMAT = "clothingclf-report"

#: Every file a report may write; only these are ever replaced in the folder.
REPORT_FILES = (
    "report.html",
    "report.md",
    "report.json",
    "per_class.csv",
    "predictions.csv",
    "confusion_matrix.png",
    "reliability.png",
    "coverage.png",
    "training_curves.png",
    "mistakes.png",
)


def refuse_to_replace(out: Path, force: bool) -> None:
    """Refuse a report folder that is (below) a file, or that holds files of the report's
    names that no report wrote (unless ``force``).

    Raises:
        SaveError: Either is the case, or ``out`` cannot be looked at; nothing is written.
    """
    refuse_blocked_folder(out, "The report folder")
    if force or not out.is_dir():
        return
    taken = [name for name in REPORT_FILES if (out / name).exists()]
    if taken and not _written_by_a_report(out):
        raise SaveError(
            f"{str(out)!r} already holds {', '.join(taken)}, which no clothingclf report wrote "
            "(a splits folder's report.json, say); nothing was written. Choose another "
            "folder, or pass force=True (--force) to replace them."
        )


def _written_by_a_report(out: Path) -> bool:
    """Whether ``out/report.json`` is a report's: its claim, or an older report's summary."""
    try:
        earlier = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    return isinstance(earlier, dict) and (
        earlier.get("format") == REPORT_FORMAT or {"evaluation", "files"} <= set(earlier)
    )


def claim_folder(out: Path) -> None:
    """Create ``out`` and mark it as a report's before anything else is written, so a run
    cut short still leaves a ``report.json`` that a rerun recognises.

    Raises:
        SaveError: The folder cannot be created or written to.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SaveError(f"Cannot create the report folder {str(out)!r} ({error}).") from error
    write_atomically(out / "report.json", json.dumps({"format": REPORT_FORMAT}).encode("utf-8"))


def write_figures(out: Path, pngs: dict[str, bytes]) -> dict[str, Path]:
    """Write each PNG as ``out/<name>.png``; return the paths by name."""
    figures = {name: out / f"{name}.png" for name in pngs}
    for name, data_png in pngs.items():
        write_atomically(figures[name], data_png)
    return figures


def write_tables(out: Path, per_class: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, Path]:
    """Write ``per_class.csv`` (with its index, the class names) and ``predictions.csv``;
    return the paths by name (``per_class``, ``predictions``)."""
    tables = {"per_class": out / "per_class.csv", "predictions": out / "predictions.csv"}
    write_atomically(tables["per_class"], per_class.to_csv().encode("utf-8"))
    write_atomically(tables["predictions"], predictions.to_csv(index=False).encode("utf-8"))
    return tables


def write_page(out: Path, file_name: str, text: str) -> Path:
    """Write ``text`` (UTF-8) as ``out/file_name``; return its path."""
    path = out / file_name
    write_atomically(path, text.encode("utf-8"))
    return path
