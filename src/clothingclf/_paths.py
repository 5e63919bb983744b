"""What a path names, found without opening it (opening a FIFO would block the reader)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Literal

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
