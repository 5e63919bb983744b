"""The model file: written atomically, read without ever running code.

A clothingclf file is what :func:`torch.save` writes for a plain dict that holds only
tensors, numbers, strings, booleans, ``None`` and lists, tuples and dicts of these. It is
read back with ``torch.load(..., weights_only=True)``, which refuses any other Python
object, so loading a file from a stranger cannot run code.

:func:`atomic_save` writes to a temporary file in the same folder, flushes it to disk and
renames it over the target: a crash or a full disk in the middle of a save leaves the
previous file as it was. :func:`safe_load` turns every way a file can be wrong (missing,
random bytes, truncated, an unsafe pickle) into a :class:`~clothingclf.exceptions.ModelFileError`
that names the file. :func:`read_model_file` also checks that the file is a clothingclf
model of a format version this release understands.

A model file holds these keys (format version 1, or 2 for a network that sees a
non-square view: its ``preprocessing`` has an ``aspect`` other than 1, which releases that
read only version 1 would ignore and predict on the centre square instead)::

    format            "clothingclf"
    format_version    1 or 2
    library_version   the clothingclf version that wrote it
    model             the architecture spec of clothingclf.backbones.build_model
    state_dict        the weights
    classes           class names, in the order of the network's outputs
    preprocessing     clothingclf.backbones.Preprocessing.to_dict()
    config            the training configuration
    metrics           best and final validation accuracy, best epoch
    holds             "best" or "final": which weights the file holds
    history           per-epoch training history
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .exceptions import ModelFileError, SaveError, UnsupportedFormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE_KEYS",
    "atomic_save",
    "read_model_file",
    "safe_load",
]

#: The value of the ``"format"`` key of every clothingclf model file.
FORMAT_NAME = "clothingclf"
#: The newest model-file format version this release writes and reads.
FORMAT_VERSION = 2
#: The keys every model file of the current format holds.
MODEL_FILE_KEYS = (
    "format",
    "format_version",
    "library_version",
    "model",
    "state_dict",
    "classes",
    "preprocessing",
    "config",
    "metrics",
    "holds",
    "history",
)

_PLAIN = (str, int, float, bool, type(None))


def _check_payload(value: Any, where: str) -> None:
    """Raise TypeError if ``value`` holds anything ``weights_only`` loading would refuse."""
    # Exact types: subclasses such as numpy.float64 (a float) pickle as other classes.
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            if type(key) not in _PLAIN:
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r}.")
            _check_payload(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_payload(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a safe "
        "(weights_only) load would refuse. Store only tensors, str, int, float, bool, None, "
        "and lists, tuples and dicts of these (convert NumPy values with float()/tolist())."
    )


def atomic_save(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``payload`` with :func:`torch.save` so that ``path`` is never left half-written.

    The data goes to a temporary file in the same folder, which is flushed and synced to
    disk, then renamed over ``path`` (:func:`os.replace`, atomic on POSIX and Windows).
    Missing parent folders are created. An existing file keeps its permissions.

    Args:
        payload: A dict of tensors, numbers, strings, booleans, ``None`` and lists, tuples
            and dicts of these (nothing that a ``weights_only`` load would refuse).
        path: The file to write.

    Raises:
        TypeError: ``payload`` holds another kind of object (the message says where).
        SaveError: The file could not be written (disk full, no permission, ...). The
            temporary file is removed and any previous file at ``path`` is untouched.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_save({"x": torch.zeros(2)}, folder / "a.pt")
        >>> safe_load(folder / "a.pt")["x"].tolist()
        [0.0, 0.0]
    """
    _check_payload(dict(payload), "payload")
    target = Path(path)
    if target.is_dir():
        raise SaveError(f"Cannot save to {str(target)!r}: it is a directory. Give a file path.")
    temp_name: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else _default_mode()
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as stream:
            torch.save(dict(payload), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
        temp_name = None
        _fsync_directory(target.parent)
    except (OSError, RuntimeError) as failure:
        # torch's zip writer turns a write that fails part-way (a full disk) into a
        # RuntimeError raised as it closes the archive; the OSError is in its context.
        error = _os_error_in(failure)
        reason = (
            (error.strerror or str(error))
            if error is not None
            else f"{type(failure).__name__}: {_first_line(str(failure))}"
        )
        code = error.errno if error is not None else None
        advice = (
            "The disk is full: free some space or save elsewhere."
            if code in (errno.ENOSPC, errno.EDQUOT)
            else "Check that the folder exists and is writable, and that there is free space."
        )
        message = (
            f"Could not save {str(target)!r} ({reason}). {advice} The previous file at that "
            "path, if any, is unchanged."
        )
        # With an errno, OSError's str() is "[Errno N] <message>" and .errno is kept.
        raise (SaveError(code, message) if code else SaveError(message)) from failure
    finally:
        if temp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)


def _os_error_in(error: BaseException) -> OSError | None:
    """The first OSError in ``error``'s chain of causes and contexts, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _default_mode() -> int:
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


def safe_load(path: str | os.PathLike[str], *, what: str = "model file") -> dict[str, Any]:
    """Read a file written by :func:`atomic_save`, refusing anything that could run code.

    Args:
        path: The file.
        what: What the file is meant to be, for the error message (``"model file"``,
            ``"training checkpoint"``).

    Returns:
        The dict that was saved; tensors are on the CPU.

    Raises:
        ModelFileError: The file does not exist, cannot be read, is not a file written by
            :func:`torch.save` (random bytes, truncated), holds Python objects that a safe
            load refuses (a pickle that would run code), or holds something other than a
            dict. No code from the file runs in any case.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.pt"
        >>> _ = bad.write_bytes(b"not a model")
        >>> safe_load(bad)
        Traceback (most recent call last):
        ...
        clothingclf.exceptions.ModelFileError: ...
    """
    source = Path(path)
    name = str(source)
    if not source.exists():
        raise ModelFileError(f"The {what} {name!r} does not exist. Check the path.")
    if source.is_dir():
        raise ModelFileError(f"The {what} {name!r} is a directory; expected a file.")
    try:
        with warnings.catch_warnings():
            # A plain pickle of another protocol makes torch warn before it refuses it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            loaded = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        refused = re.search(r"unsupported GLOBAL (\S+)", text)
        if refused:
            raise ModelFileError(
                f"Refusing to load {name!r}: it contains Python objects ({refused.group(1)}) "
                f"that could run code when unpickled, so it is not a clothingclf {what} (which "
                "holds only tensors and plain values). Nothing from it was executed. Only load "
                "files you made with clothingclf."
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = detail.group(1).strip() if detail else _first_line(text)
        raise ModelFileError(
            f"The {what} {name!r} is not a file written by torch.save ({reason}): it is "
            "corrupt, or of another kind. (clothingclf never unpickles arbitrary objects, so "
            "plain pickle files are refused too.)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as error:
        if not _starts_like_torch_save(source):
            # Bytes of some other kind: which decoder error they trip is up to chance.
            raise ModelFileError(
                f"The {what} {name!r} is not a file written by torch.save "
                f"({type(error).__name__}: {_first_line(str(error))}): it is corrupt, or of "
                "another kind."
            ) from None
        raise ModelFileError(
            f"The {what} {name!r} could not be read ({type(error).__name__}: "
            f"{_first_line(str(error))}). It is probably truncated or corrupt; save it again."
        ) from None
    except Exception as error:  # any other decoder failure is the same problem for a user
        raise ModelFileError(
            f"The {what} {name!r} could not be read ({type(error).__name__}: "
            f"{_first_line(str(error))}). It is not a valid {what}."
        ) from None
    if not isinstance(loaded, dict):
        raise ModelFileError(
            f"The {what} {name!r} holds a {type(loaded).__name__}; expected a dict as written "
            "by clothingclf."
        )
    return loaded


def _starts_like_torch_save(path: Path) -> bool:
    """Whether ``path`` is empty or begins as torch.save's output does (zip, or a pickle)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
    except OSError:
        return True
    return not head or head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line if len(line) <= 200 else line[:197] + "..."


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a clothingclf model file and check its format.

    Args:
        path: The file written by :meth:`clothingclf.ClothingClassifier.save`.

    Returns:
        The payload (see the module documentation for its keys).

    Raises:
        ModelFileError: Not a clothingclf model file (see :func:`safe_load`), or one that
            lacks a required key.
        UnsupportedFormatError: A model file of a newer format version than this release
            reads.

    Example:
        >>> import tempfile, pathlib
        >>> other = pathlib.Path(tempfile.mkdtemp()) / "weights.pt"
        >>> torch.save({"fc.weight": torch.zeros(1)}, other)
        >>> read_model_file(other)
        Traceback (most recent call last):
        ...
        clothingclf.exceptions.ModelFileError: ...
    """
    payload = safe_load(path, what="model file")
    name = str(path)
    if payload.get("format") != FORMAT_NAME:
        keys = ", ".join(sorted(map(str, payload))[:8])
        raise ModelFileError(
            f"{name!r} is not a clothingclf model file: its 'format' is "
            f"{payload.get('format')!r}, expected {FORMAT_NAME!r} (it has the keys {keys}). "
            "A bare state_dict can be used as weights=... of a new ClothingClassifier."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(
            f"{name!r} has format_version {version!r}; expected a positive int. The file is "
            "damaged."
        )
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"{name!r} is a model file of format version {version}, written by clothingclf "
            f"{payload.get('library_version', '?')}; this clothingclf reads versions up to "
            f"{FORMAT_VERSION}. Upgrade: pip install --upgrade clothingclf."
        )
    missing = [key for key in MODEL_FILE_KEYS if key not in payload]
    if missing:
        raise ModelFileError(
            f"{name!r} lacks the keys {', '.join(missing)} of a clothingclf model file "
            f"(format version {version}); the file is damaged."
        )
    return payload
