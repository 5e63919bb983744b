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
from typing import Any, BinaryIO

import torch

from .._paths import checked_path, path_kind, write_atomically
from ..exceptions import InvalidParameterError, ModelFileError, first_line

__all__ = ["atomic_save", "check_payload", "safe_load"]

_PLAIN = (str, int, float, bool, type(None))
_TENSOR, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__tuple__", "__items__", "__float__"
_MARKERS = (_TENSOR, _TUPLE, _ITEMS, _FLOAT)
# safetensors' own limit on the header (100 MB); a larger length field is damage.
_MAX_HEADER = 100_000_000
#: The tensor types a file may hold, with safetensors' names for them: those every check
#: can compute on; others (float8, ...) are refused by name when written and when read.
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


# --------------------------------------------------------------------------- encoding


def check_payload(value: Any, where: str) -> None:
    """Raise :class:`~clothingclf.exceptions.InvalidParameterError` if ``value`` holds
    anything a clothingclf file cannot hold (anything but tensors of float, int and bool
    types (not float8), plain values, and lists, tuples and dicts of these).

    Example:
        >>> check_payload({"a": [1, 2.5, None]}, "card")
    """
    # Exact types: subclasses such as numpy.float64 (a float) would not read back as such.
    if isinstance(value, torch.Tensor):
        if value.dtype not in _DTYPES:
            raise InvalidParameterError(
                f"{where} is a tensor of {value.dtype}, which a model file cannot hold; convert "
                "it to float32, float16 or bfloat16 (or an integer type)."
            )
        return
    if type(value) in _PLAIN:
        if type(value) is int and abs(value) >= 2**63:
            raise InvalidParameterError(f"{where} is an int beyond 64 bits, {clip(value, 40)}.")
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            if type(key) not in _PLAIN:
                raise InvalidParameterError(
                    f"{where} has a key of type {type(key).__name__}: {clip(key, 40)}."
                )
            check_payload(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_payload(item, f"{where}[{index}]")
        return
    raise InvalidParameterError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a model "
        "file cannot hold. Store only tensors, str, int, float, bool, None, and lists, tuples "
        "and dicts of these (convert NumPy values with float()/tolist())."
    )


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON-able data; its tensors go into ``tensors`` under their path."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.device.type == "meta":
            raise InvalidParameterError(
                f"{path} is a {value.layout} tensor on {value.device}; save dense ones."
            )
        if path in tensors:
            raise InvalidParameterError(f"two tensors of the payload would both be named {path!r}.")
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
    try:
        draft = save(tensors, metadata=metadata)
        # The data section does not depend on the metadata, so its hash goes into the final one.
        metadata["sha256"] = hashlib.sha256(_data_section(draft)).hexdigest()
        return save(tensors, metadata=metadata)
    except Exception as error:  # safetensors' SafetensorError: "header too large"
        size = len(json.dumps(metadata).encode()) / 1e6
        raise InvalidParameterError(
            f"The payload cannot be written as safetensors ({first_line(error)}): its header "
            f"(every value but the tensors: the model card, the history, ...) takes {size:.0f} "
            f"MB, and safetensors allows {_MAX_HEADER / 1e6:.0f} MB. Store large data as "
            "tensors or in a file of its own."
        ) from None


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
        InvalidParameterError: ``payload`` holds another kind of object, or a tensor of a
            type a model file cannot hold, or more plain data than a header holds (the
            message says where).
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
    header, data = _read_safetensors(source, what)
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("clothingclf"), str):
        raise ModelFileError(
            f"{name!r} is a safetensors file, but not one written by clothingclf (its header "
            f"has no 'clothingclf' metadata): a bare set of weights is not a {what}. Use it as "
            "weights=... of a new ClothingClassifier instead."
        )
    if not isinstance(metadata.get("sha256"), str):
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its header lacks the SHA-256 of its tensors "
            "that clothingclf always records, so they cannot be checked. It was not loaded; "
            "use an intact copy."
        )
    if metadata["sha256"] != hashlib.sha256(_data_section(data)).hexdigest():
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its tensors do not match the SHA-256 recorded "
            "in it (a changed or truncated byte). It was not loaded; use an intact copy."
        )
    try:
        from safetensors.torch import load

        tensors = load(data)
        del data
        payload = _decode(json.loads(metadata["clothingclf"]), tensors)
    except Exception as error:  # damage that the hash cannot see: the header itself
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its header cannot be read ({type(error).__name__}"
            f": {first_line(error, 'no details')}). Use an intact copy."
        ) from None
    if not isinstance(payload, dict):
        raise ModelFileError(f"The {what} {name!r} holds a {type(payload).__name__}, not a dict.")
    return payload


def _read_safetensors(source: Path, what: str) -> tuple[dict[str, Any], bytes]:
    """The header and the whole bytes of the safetensors file ``source``.

    The 8-byte length and the header are read first and must account for the file's size
    exactly, so nothing is read that the header does not describe, and a file that is not
    safetensors costs only the few MB read to say what it is."""
    name = str(source)
    try:
        kind = path_kind(source)
        if kind == "regular":
            with source.open("rb") as file:
                return _read_described(file, name, what)
    except PermissionError:
        raise ModelFileError(
            f"The {what} {name!r} cannot be read: permission denied. Check the file's "
            "permissions (the file itself may be fine)."
        ) from None
    except OSError as error:
        raise ModelFileError(
            f"The {what} {name!r} cannot be read ({error.strerror or error})."
        ) from None
    if kind == "missing":
        raise ModelFileError(f"The {what} {name!r} does not exist. Check the path.")
    if kind == "directory":
        raise ModelFileError(f"The {what} {name!r} is a directory; expected a file.")
    raise ModelFileError(
        f"The {what} {name!r} is not a regular file (a FIFO, socket or device); expected a "
        "file written by clothingclf. It was not read."
    )


def _read_described(file: BinaryIO, name: str, what: str) -> tuple[dict[str, Any], bytes]:
    size = os.fstat(file.fileno()).st_size
    start = file.read(8)
    length = struct.unpack("<Q", start)[0] if len(start) == 8 else -1
    if length < 2 or length > min(_MAX_HEADER, size - 8) or file.read(1) != b"{":
        file.seek(0)
        raise ModelFileError(f"The {what} {name!r} {_what_it_is(file)}")
    text = b"{" + file.read(length - 1)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, an int of 5,000 digits
        header = None
    if not isinstance(header, dict):
        raise ModelFileError(
            f"The {what} {name!r} is damaged: its safetensors header is not valid JSON. Use an "
            "intact copy."
        )
    problem = _tensor_entries_problem(header)
    if problem is None:
        described = 8 + length + _data_length(header)
        if described != size:
            problem = (
                f"its header describes {described} bytes but the file has {size} (truncated, "
                "or bytes added)"
            )
    if problem:
        raise ModelFileError(
            f"The {what} {name!r} is damaged: {problem}. It was not loaded; use an intact copy."
        )
    return header, start + text + file.read()


def _tensor_entries_problem(header: Mapping[str, Any]) -> str | None:
    """What is wrong with the header's tensor entries (dtype, shape, data_offsets), or None."""
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not all(k in entry for k in _ENTRY_KEYS):
            return f"the header's entry {key!r} is not a tensor description"
        if entry["dtype"] not in _DTYPES.values():
            return (
                f"the tensor {key!r} is of type {clip(entry['dtype'], 40)}, which clothingclf "
                f"never writes (it writes {', '.join(_DTYPES.values())})"
            )
        numbers = [*entry["shape"], *entry["data_offsets"]] if _lists(entry) else None
        if (
            not numbers
            or len(entry["data_offsets"]) != 2
            or not all(type(n) is int and 0 <= n < 2**53 for n in numbers)
        ):
            return f"the tensor {key!r} has a malformed shape or data_offsets"
    return None


_ENTRY_KEYS = ("dtype", "shape", "data_offsets")


def _lists(entry: Mapping[str, Any]) -> bool:
    return isinstance(entry["shape"], list) and isinstance(entry["data_offsets"], list)


def _data_length(header: Mapping[str, Any]) -> int:
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return max(ends, default=0)


def clip(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to ``width`` characters, for a message quoting a file's value."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


#: How much of a file that is not safetensors is read (or inflated) to say what it is.
_SNIFF = 8 * 1024 * 1024


def _what_it_is(file: BinaryIO) -> str:
    """The end of a sentence saying what the open ``file`` is, since it is no safetensors
    file; reads (and inflates) at most :data:`_SNIFF` bytes of it."""
    expected = (
        "clothingclf files are safetensors files (written by ClothingClassifier.save or "
        "fit(checkpoint=...))."
    )
    data = file.read(_SNIFF)
    if not data:
        return f"is empty. {expected}"
    refused = "clothingclf never unpickles, so it was refused and nothing in it ran."
    if data.startswith(b"PK\x03\x04"):
        names, pickle = _zip_contents(file)
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return (
                "is a TorchScript export (what ClothingClassifier.export(format='torchscript') "
                "writes): run it with torch.jit.load, not ClothingClassifier.load. " + expected
            )
        code = _code_in_pickle(_pickle_globals(pickle))
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


def _zip_contents(file: BinaryIO) -> tuple[list[str], bytes]:
    """The member names of the zip archive ``file`` and the first :data:`_SNIFF` bytes of
    its ``data.pkl`` (inflated no further: a small archive may inflate to gigabytes)."""
    import zipfile

    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()[:100_000]
            pickles = [n for n in names if n.endswith("data.pkl")]
            if not pickles:
                return names, b""
            with archive.open(pickles[0]) as member:
                return names, member.read(_SNIFF)
    except Exception:  # encrypted, unknown compression, a bad deflate stream: no pickle to show
        return [], b""


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
