"""The report folder: which names a report owns, the refusal to replace files of those
names that no report wrote, and writing all of a report's files or none."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .._paths import refuse_blocked_folder, refuse_to_replace_non_file, write_atomically
from ..exceptions import SaveError

__all__ = [
    "REPORT_FILES",
    "REPORT_FORMAT",
    "refuse_to_replace",
    "write_report_files",
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


def write_report_files(out: Path, contents: Mapping[Path, bytes | str]) -> None:
    """Write every file of a report into ``out`` (created), completely or not at all.

    The files are written into a temporary folder inside ``out`` and then renamed into
    place, ``report.json`` last, so a full disk leaves ``out`` as it was, and a run killed
    while renaming leaves a ``report.json`` (the earlier report's, or a claim written just
    before) for a rerun to recognise and replace.

    Raises:
        SaveError: The folder cannot be created, a file cannot be written (nothing of this
            report is left in ``out``), or a rename failed part-way (the message says so).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    except OSError as error:
        raise SaveError(f"Cannot write into the report folder {str(out)!r} ({error}).") from None
    renaming = False
    try:
        for path, content in contents.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            write_atomically(staging / path.name, data)
        for path in contents:
            refuse_to_replace_non_file(path, "write the report")
        if not (out / "report.json").exists():  # a first report: claim the folder first
            write_atomically(out / "report.json", json.dumps({"format": REPORT_FORMAT}).encode())
        renaming = True
        for path in sorted(contents, key=lambda p: p.name == "report.json"):
            os.replace(staging / path.name, path)
    except OSError as error:
        state = "it is incomplete; run it again" if renaming else "the folder is as it was"
        raise SaveError(f"Cannot write the report into {str(out)!r} ({error}); {state}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
