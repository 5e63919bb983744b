"""Paths: what one names, found without opening it (opening a FIFO would block the reader),
and the one way the library writes a file (atomically: a reader sees the old file or the
new one, never a part)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .exceptions import ClothingClfError, InvalidParameterError, SaveError

PathKind = Literal["missing", "directory", "regular", "special"]


def checked_path(
    value: object, what: str, error: type[ClothingClfError] = InvalidParameterError
) -> Path:
    """``value`` as a :class:`~pathlib.Path`, once checked that it can name a file: a str
    or an ``os.PathLike`` of a str, without a NUL byte (which no file name can hold; the
    operating system would refuse it with a ``ValueError``).

    Raises:
        ClothingClfError: ``error`` (``InvalidParameterError`` by default), naming ``what``.
    """
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise error(f"{what} must be a path (a str or os.PathLike); found {type(value).__name__}.")
    if "\0" in text:
        raise error(
            f"{what} {text!r} holds a NUL byte, which no file name can; check where the path "
            "came from."
        )
    return Path(text)


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


def file_in_the_way(folder: Path) -> Path | None:
    """The file at ``folder`` or above it that keeps ``folder`` from being (made) a folder,
    or ``None`` when it is one or can be created.

    Raises:
        OSError: As :func:`path_kind` (a link loop, a name too long).
    """
    for candidate in (folder, *folder.parents):
        kind = path_kind(candidate)
        if kind != "missing":
            return None if kind == "directory" else candidate
    return None


def refuse_blocked_folder(
    folder: Path, what: str, error: type[ClothingClfError] = SaveError
) -> None:
    """Raise ``error`` (naming ``what``, e.g. "The report folder") when ``folder`` is, or
    lies below, a file, or cannot be looked at (a link loop, a name too long): checked
    before any work, so that nothing is computed only to be refused at the end."""
    try:
        blocker = file_in_the_way(folder)
    except OSError as problem:
        raise error(
            f"{what} {str(folder)!r} cannot be used ({problem.strerror or problem}). "
            "Choose another one."
        ) from None
    if blocker is not None:
        raise error(
            f"{what} {str(folder)!r} cannot be a folder: {str(blocker)!r} is a file; nothing "
            "was written. Choose another one."
        )


def _new_file_mode() -> int:
    # mkstemp makes 0600 files; give a new file the mode open() would give it.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(folder: Path) -> None:
    # Make the rename itself durable (POSIX); not possible or needed on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A fresh temporary file beside ``target`` for the block to write; when the block ends
    without an error it is flushed to disk and renamed over ``target`` (atomic on POSIX and
    Windows), with ``target``'s mode or a new file's; otherwise it is removed and ``target``
    is left as it was.

    Raises:
        OSError: From the file system; :func:`write_atomically` turns it into a SaveError.
    """
    mode = target.stat().st_mode & 0o777 if path_kind(target) == "regular" else _new_file_mode()
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        fd = os.open(temp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        os.replace(temp, target)
        _fsync_directory(target.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_error(target: Path, error: OSError, verb: str = "write") -> SaveError:
    """The SaveError for a ``verb`` of ``target`` that the system refused (errno kept)."""
    advice = (
        f"The disk is full: free some space or {verb} elsewhere."
        if error.errno in (errno.ENOSPC, errno.EDQUOT)
        else "Check that the folder exists and is writable, and that there is free space."
    )
    message = (
        f"Could not {verb} {str(target)!r} ({error.strerror or error}). {advice} The previous "
        "file at that path, if any, is unchanged."
    )
    # With an errno, OSError's str() is "[Errno N] <message>" and .errno is kept.
    return SaveError(error.errno, message) if error.errno else SaveError(message)


def write_atomically(
    target: Path, data: bytes | str, *, make_folder: bool = False, verb: str = "write"
) -> None:
    """Write ``data`` (text as UTF-8) to ``target`` through :func:`replacing`; ``verb``
    ("save", "write") is the word of the error messages.

    Raises:
        SaveError: ``target`` is a folder or a special file (left alone), or the system
            refused the write; the previous file, if any, is unchanged.
    """
    try:
        refuse_to_replace_non_file(target, verb)
        if make_folder:
            target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target) as temp, os.fdopen(os.open(temp, os.O_WRONLY), "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
    except SaveError:
        raise
    except OSError as error:
        raise write_error(target, error, verb) from error
