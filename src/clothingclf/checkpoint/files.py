"""Safetensors files that hold data only: a payload of tensors and plain values encoded
into one file (tensors in the data section, the rest as JSON in the header, a SHA-256 of
the data), written atomically, read without unpickling anything, and, for a file that is
something else, what it is (a pickle and the code it would call, a torch.save archive, an
export)."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._paths import checked_path, path_kind, write_atomically
from ..exceptions import ModelFileError, first_line

__all__ = ["atomic_save", "check_payload", "safe_load"]

_PLAIN = (str, int, float, bool, type(None))
_TENSOR, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__tuple__", "__items__", "__float__"
_MARKERS = (_TENSOR, _TUPLE, _ITEMS, _FLOAT)
# safetensors' own limit on the header; a larger length field is damage, not a model.
_MAX_HEADER = 100 * 1024 * 1024


# --------------------------------------------------------------------------- encoding


def check_payload(value: Any, where: str) -> None:
    """Raise :class:`TypeError` if ``value`` holds anything a clothingclf file cannot hold
    (anything but tensors, plain values, and lists, tuples and dicts of these).

    Example:
        >>> check_payload({"a": [1, 2.5, None]}, "card")
    """
    # Exact types: subclasses such as numpy.float64 (a float) would not read back as such.
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            if type(key) not in _PLAIN:
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r}.")
            check_payload(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_payload(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a model "
        "file cannot hold. Store only tensors, str, int, float, bool, None, and lists, tuples "
        "and dicts of these (convert NumPy values with float()/tolist())."
    )


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON-able data; its tensors go into ``tensors`` under their path."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.device.type == "meta":
            raise TypeError(
                f"{path} is a {value.layout} tensor on {value.device}; save dense ones."
            )
        if path in tensors:
            raise TypeError(f"two tensors of the payload would both be named {path!r}.")
        # A copy of its own: safetensors refuses tensors that share memory.
        tensors[path] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        return {_TENSOR: path}
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: str(value)}
    if isinstance(value, dict):
        looks_like_a_marker = len(value) == 1 and next(iter(value)) in _MARKERS
        if all(type(key) is str for key in value) and not looks_like_a_marker:
            return {key: _encode(item, _join(path, key), tensors) for key, item in value.items()}
        return {
            _ITEMS: [[key, _encode(item, _join(path, key), tensors)] for key, item in value.items()]
        }
    if isinstance(value, (list, tuple)):
        items = [_encode(item, _join(path, index), tensors) for index, item in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    return value


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The payload that :func:`_encode` turned into ``value``."""
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _MARKERS:
        ((marker, inner),) = value.items()
        if marker == _TENSOR:
            if not isinstance(inner, str) or inner not in tensors:
                raise ValueError(f"the header names a tensor {inner!r} that the file lacks")
            return tensors[inner]
        if marker == _FLOAT:
            if inner not in ("nan", "inf", "-inf"):
                raise ValueError(f"{inner!r} is not a non-finite float")
            return float(inner)
        if marker == _TUPLE and isinstance(inner, list):
            return tuple(_decode(item, tensors) for item in inner)
        if marker == _ITEMS and isinstance(inner, list):
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in inner):
                raise ValueError("a dict's items are not [key, value] pairs")
            return {key: _decode(item, tensors) for key, item in inner}
        raise ValueError(f"malformed {marker} value")
    return {key: _decode(item, tensors) for key, item in value.items()}


def _serialize(payload: Mapping[str, Any]) -> bytes:
    """The safetensors bytes of ``payload``: tensors in the data section, the rest as JSON."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    body = json.dumps(_encode(dict(payload), "", tensors), allow_nan=False, ensure_ascii=False)
    metadata = {"format": str(payload.get("format", "")), "clothingclf": body}
    draft = save(tensors, metadata=metadata)
    # The data section does not depend on the metadata, so its hash goes into the final one.
    metadata["sha256"] = hashlib.sha256(_data_section(draft)).hexdigest()
    return save(tensors, metadata=metadata)


def _data_section(data: bytes) -> memoryview:
    (length,) = struct.unpack("<Q", data[:8])
    return memoryview(data)[8 + length :]


# --------------------------------------------------------------------------- writing


def atomic_save(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``payload`` as a safetensors file so that ``path`` is never left half-written.

    The data goes to a temporary file in the same folder, which is flushed and synced to
    disk, then renamed over ``path`` (:func:`os.replace`, atomic on POSIX and Windows).
    Missing parent folders are created. An existing file keeps its permissions.

    Args:
        payload: A dict of tensors, numbers, strings, booleans, ``None`` and lists, tuples
            and dicts of these (see the module documentation for how each is stored).
        path: The file to write.

    Raises:
        TypeError: ``payload`` holds another kind of object (the message says where).
        SaveError: The file could not be written (disk full, no permission, ...). The
            temporary file is removed and any previous file at ``path`` is untouched.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_save({"x": torch.zeros(2), "steps": (1, 2)}, folder / "a.safetensors")
        >>> loaded = safe_load(folder / "a.safetensors")
        >>> loaded["x"].tolist(), loaded["steps"]
        ([0.0, 0.0], (1, 2))
    """
    target = checked_path(path, "The path to save to")
    check_payload(dict(payload), "payload")
    write_atomically(target, _serialize(payload), make_folder=True, verb="save")


def safe_load(path: str | os.PathLike[str], *, what: str = "model file") -> dict[str, Any]:
    """Read a file written by :func:`atomic_save`; nothing in it can run code.

    Args:
        path: The file.
        what: What the file is meant to be, for the error message (``"model file"``,
            ``"training checkpoint"``).

    Returns:
        The dict that was saved; tensors are on the CPU.

    Raises:
        ModelFileError: The file does not exist, is not a regular file (a folder, a FIFO),
            cannot be read, is not a clothingclf safetensors file (random bytes, a pickle,
            a ``torch.save`` file, an ONNX or TorchScript export), is truncated, or its
            tensors do not match the SHA-256 in its header.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.safetensors"
        >>> _ = bad.write_bytes(b"not a model")
        >>> safe_load(bad)
        Traceback (most recent call last):
        ...
        clothingclf.exceptions.ModelFileError: ...
    """
    source = checked_path(path, f"The {what}", ModelFileError)
    name = str(source)
    data = _read_regular_file(source, what)
    header = _header(data, name, what)
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("clothingclf"), str):
        raise ModelFileError(
            f"{name!r} is a safetensors file, but not one written by clothingclf (its header "
            f"has no 'clothingclf' metadata): a bare set of weights is not a {what}. Use it as "
            "weights=... of a new ClothingClassifier instead."
        )
    digest = hashlib.sha256(_data_section(data)).hexdigest()
    if metadata.get("sha256") != digest:
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its tensors do not match the SHA-256 recorded "
            "in it (a changed or truncated byte). It was not loaded; use an intact copy."
        )
    try:
        from safetensors.torch import load

        tensors = load(data)
        payload = _decode(json.loads(metadata["clothingclf"]), tensors)
    except Exception as error:  # damage that the hash cannot see: the header itself
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its header cannot be read ({type(error).__name__}"
            f": {first_line(error, 'no details')}). Use an intact copy."
        ) from None
    if not isinstance(payload, dict):
        raise ModelFileError(f"The {what} {name!r} holds a {type(payload).__name__}, not a dict.")
    return payload


def _read_regular_file(source: Path, what: str) -> bytes:
    name = str(source)
    try:
        kind = path_kind(source)
    except OSError as error:
        raise ModelFileError(
            f"The {what} {name!r} cannot be opened ({error.strerror or error})."
        ) from None
    if kind == "missing":
        raise ModelFileError(f"The {what} {name!r} does not exist. Check the path.")
    if kind == "directory":
        raise ModelFileError(f"The {what} {name!r} is a directory; expected a file.")
    if kind == "special":
        raise ModelFileError(
            f"The {what} {name!r} is not a regular file (a FIFO, socket or device); expected a "
            "file written by clothingclf. It was not read."
        )
    try:
        return source.read_bytes()
    except PermissionError:
        raise ModelFileError(
            f"The {what} {name!r} cannot be read: permission denied. Check the file's "
            "permissions (the file itself may be fine)."
        ) from None
    except OSError as error:
        raise ModelFileError(
            f"The {what} {name!r} cannot be read ({error.strerror or error})."
        ) from None


def _header(data: bytes, name: str, what: str) -> dict[str, Any]:
    """The JSON header of safetensors ``data``, or an error that says what the bytes are."""
    length = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    if length < 2 or length > min(_MAX_HEADER, len(data) - 8) or data[8:9] != b"{":
        raise ModelFileError(f"The {what} {name!r} {_what_it_is(data)}")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its safetensors header is not valid JSON. Use an "
            "intact copy."
        )
    return header


def _what_it_is(data: bytes) -> str:
    """The end of a sentence saying what ``data`` is, since it is no safetensors file."""
    expected = (
        "clothingclf files are safetensors files (written by ClothingClassifier.save or "
        "fit(checkpoint=...))."
    )
    if not data:
        return f"is empty. {expected}"
    refused = "clothingclf never unpickles, so it was refused and nothing in it ran."
    if data.startswith(b"PK\x03\x04"):
        if b"/code/" in data[:4096] or b"constants.pkl" in data:
            return (
                "is a TorchScript export (what ClothingClassifier.export(format='torchscript') "
                "writes): run it with torch.jit.load, not ClothingClassifier.load. " + expected
            )
        code = _code_in_pickle(_pickle_globals(_zip_pickle(data)))
        return (
            f"is a torch.save archive (a pickle; the model files of clothingclf before 0.2 "
            f"were such files){code}. {refused} {expected}"
        )
    imports = _pickle_globals(data)
    if imports is not None:
        return f"is a Python pickle{_code_in_pickle(imports)}. {refused} {expected}"
    if data[:1] == b"\x08" and b"onnx" in data[:4096].lower():
        return (
            "is an ONNX model (what ClothingClassifier.export(format='onnx') writes): run it "
            "with onnxruntime, not ClothingClassifier.load. " + expected
        )
    return f"is not a clothingclf file: its bytes are not a safetensors file. {expected}"


# What torch.save's own pickles import: tensors and their storage, ordered dicts.
_TENSOR_GLOBALS = ("torch.", "collections.OrderedDict")


def _code_in_pickle(imports: list[str] | None) -> str:
    """``" that would run code ... (it calls os.system)"``, or ``""`` when the pickle's
    ``imports`` (:func:`_pickle_globals`) name nothing beyond tensors and containers."""
    calls = [name for name in imports or [] if not name.startswith(_TENSOR_GLOBALS)]
    if not calls:
        return ""
    names = ", ".join(dict.fromkeys(calls))
    return f" that would run code when unpickled (it calls {names}): it contains code"


def _zip_pickle(data: bytes) -> bytes:
    """The ``data.pkl`` of a torch.save zip archive, or nothing."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    except Exception:  # encrypted, unknown compression, a bad deflate stream: no pickle to show
        return b""


def _pickle_globals(data: bytes) -> list[str] | None:
    """The ``module.name`` of each global a pickle would import, read from its opcodes with
    :mod:`pickletools` (which executes nothing); ``None`` if ``data`` is no pickle. Reads
    a few pickles one after the other (torch's legacy format writes several)."""
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    start, ops = 0, 0
    for _ in range(8):
        end = None
        try:
            for opcode, argument, position in pickletools.genops(data[start:]):
                ops += 1
                if ops == 1 and opcode.name not in ("PROTO", "GLOBAL", "MARK", "EMPTY_DICT"):
                    return None
                if opcode.name == "GLOBAL":
                    found.append(str(argument).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(argument, str):
                    strings.append(argument)
                if opcode.name == "STOP":
                    end = start + int(position or 0) + 1
                if ops > 1_000_000:
                    return found
        except Exception:  # damage part-way: a call or a whole pickle read so far still tells
            return found if found or start > 0 else None
        if end is None or end >= len(data):
            break
        start = end
    return found
