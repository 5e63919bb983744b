"""What a path names, found without opening it (opening a FIFO would block the reader)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Literal

from .exceptions import SaveError

PathKind = Literal["missing", "directory", "regular", "special"]


def path_kind(path: Path) -> PathKind:
    """``"missing"``, ``"directory"``, ``"regular"`` (a file) or ``"special"`` (a FIFO,
    socket or device), following links.

    Raises:
        OSError: The path cannot be looked at: a link loop, a name too long, no permission
            on a folder above it. Callers turn it into their own error.
    """
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # a.jpg/x: nothing there either
        return "missing"
    if stat.S_ISDIR(mode):
        return "directory"
    return "regular" if stat.S_ISREG(mode) else "special"


def refuse_to_replace_non_file(target: Path, verb: str) -> None:
    """Raise :class:`SaveError` if ``target`` is a folder or a special file, which a write
    ``verb`` ("save", "export") must not replace; a missing path or a file is fine.

    Raises:
        OSError: As :func:`path_kind` (a link loop, a name too long).
    """
    kind = path_kind(target)
    if kind == "directory":
        raise SaveError(f"Cannot {verb} to {str(target)!r}: it is a directory. Give a file path.")
    if kind == "special":
        raise SaveError(
            f"Cannot {verb} to {str(target)!r}: it is not a regular file (a FIFO, socket or "
            "device), and it was left alone. Give a file path."
        )
