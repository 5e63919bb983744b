"""The model file and the training checkpoint: safetensors files that hold data only.

Both are `safetensors <https://huggingface.co/docs/safetensors>`_ files: the tensors in
the file's data section, everything else as JSON in its header. Reading one parses JSON
and copies raw numbers; nothing is unpickled, so a file from a stranger cannot run code.
The header's ``__metadata__`` holds three strings:

* ``format``: ``"clothingclf"`` for a model file, ``"clothingclf-training-checkpoint"``
  for a checkpoint written by ``fit(checkpoint=...)``;
* ``clothingclf``: the JSON of the payload (see below), where each tensor is replaced by
  ``{"__tensor__": NAME}``, the name of the tensor in the file (its path in the payload,
  such as ``state_dict/head.weight``);
* ``sha256``: the SHA-256 of the data section (the bytes after the header). A file whose
  tensors changed by a single byte is refused.

The JSON marks the values that JSON has no word for: ``{"__tuple__": [...]}``,
``{"__items__": [[key, value], ...]}`` for a dict whose keys are not all strings (an
optimiser's state), and ``{"__float__": "nan"}`` (or ``"inf"``, ``"-inf"``).

A model file's payload has these keys (format version 3)::

    format            "clothingclf"
    format_version    3
    library_version   the clothingclf version that wrote it
    model             the architecture spec of clothingclf.backbones.build_model
    state_dict        the weights (float32, or float16 / bfloat16 when saved so)
    classes           class names, in the order of the network's outputs
    preprocessing     clothingclf.backbones.Preprocessing.to_dict()
    config            the training configuration
    metrics           best and final validation accuracy, best epoch
    holds             "best" or "final": which weights the file holds
    history           per-epoch training history
    params            the estimator's parameters (optional)
    extra_networks    further networks: [{"preprocessing": ..., "state_dict": ...}] (optional)
    model_card        what the model is for, its data and test metrics (optional)

:func:`read_model_file` checks every field against its bounds (see
:func:`validate_model_payload`), so a hand-edited file is refused with a
:class:`~clothingclf.exceptions.ModelFileError` rather than loaded and failing, or
predicting NaN, later. The conventional suffix is ``.safetensors``; any suffix loads.

:func:`atomic_save` writes to a temporary file in the same folder, flushes it to disk and
renames it over the target: a crash or a full disk in the middle of a save leaves the
previous file as it was.
"""

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

from ._paths import path_kind, write_atomically
from .exceptions import ModelFileError, UnsupportedFormatError

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE_KEYS",
    "atomic_save",
    "check_payload",
    "read_model_file",
    "safe_load",
    "validate_model_payload",
]

#: The ``format`` of every clothingclf model file.
FORMAT_NAME = "clothingclf"
#: The ``format`` of a training checkpoint (``fit(checkpoint=...)``).
CHECKPOINT_FORMAT = "clothingclf-training-checkpoint"
#: The newest model-file format version this release writes and reads (3, safetensors).
FORMAT_VERSION = 3
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
_TENSOR, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__tuple__", "__items__", "__float__"
_MARKERS = (_TENSOR, _TUPLE, _ITEMS, _FLOAT)
# safetensors' own limit on the header; a larger length field is damage, not a model.
_MAX_HEADER = 100 * 1024 * 1024
# Bounds of the fields of a model file.
_MAX_CLASSES = 10_000
_IMAGE_SIZES = (8, 2048)
_MAX_FEATURES = 1_000_000


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
    check_payload(dict(payload), "payload")
    write_atomically(Path(path), _serialize(payload), make_folder=True, verb="save")


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
    source = Path(path)
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
            f": {_first_line(str(error))}). Use an intact copy."
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


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line if len(line) <= 200 else line[:197] + "..."


# --------------------------------------------------------------------------- model files


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a clothingclf model file and check its format and every field's bounds.

    Args:
        path: The file written by :meth:`clothingclf.ClothingClassifier.save`.

    Returns:
        The payload (see the module documentation for its keys).

    Raises:
        ModelFileError: Not a clothingclf model file (see :func:`safe_load`), a training
            checkpoint, or one with a missing or out-of-bounds field.
        UnsupportedFormatError: A model file of a newer format version than this release
            reads.

    Example:
        >>> import tempfile, pathlib
        >>> other = pathlib.Path(tempfile.mkdtemp()) / "weights.safetensors"
        >>> atomic_save({"format": CHECKPOINT_FORMAT, "epoch": 1}, other)
        >>> read_model_file(other)
        Traceback (most recent call last):
        ...
        clothingclf.exceptions.ModelFileError: ...
    """
    payload = safe_load(path, what="model file")
    name = str(path)
    if payload.get("format") != FORMAT_NAME:
        found = payload.get("format")
        hint = (
            " It is a training checkpoint: pass it as fit(resume=...)."
            if found == CHECKPOINT_FORMAT
            else ""
        )
        raise ModelFileError(
            f"{name!r} is not a clothingclf model file: its 'format' is {found!r}, expected "
            f"{FORMAT_NAME!r}.{hint}"
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
    problem = validate_model_payload(payload)
    if problem:
        raise ModelFileError(f"{name!r} is not a valid model file: {problem}")
    return payload


def read_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint (``fit(checkpoint=...)``) without unpickling anything.

    Raises:
        ModelFileError: The file is missing, unreadable, damaged or not a training
            checkpoint (a model file, say).
    """
    saved = safe_load(path, what="training checkpoint")
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{str(path)!r} is not a clothingclf training checkpoint (found format "
            f"{saved.get('format')!r}). Pass the file given as checkpoint= to the "
            "interrupted fit."
        )
    return saved


def validate_model_payload(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a model file's fields, or ``None`` when each is within bounds.

    Checks: class names (unique non-empty strings, as many as the head scores), the
    architecture spec, each network's preprocessing (sizes from 8 to 2048 px, mean and std
    three finite numbers, std positive), its weights (finite), the metrics (in [0, 1])
    and ``holds``.

    Args:
        payload: A model file's payload.

    Returns:
        A sentence naming the first field out of bounds, or ``None``.

    Example:
        >>> validate_model_payload({"classes": ["Hat", "Hat"]})
        "the class names are not unique: 'Hat' twice."
    """
    classes = payload.get("classes")
    if (
        not isinstance(classes, list)
        or not 1 <= len(classes) <= _MAX_CLASSES
        or not all(isinstance(c, str) and c.strip() for c in classes)
    ):
        return (
            f"'classes' must be a list of 1 to {_MAX_CLASSES} non-empty names; found "
            f"{_short(classes)}."
        )
    counts = collections.Counter(classes)
    twice = [c for c, n in counts.items() if n > 1]
    if twice:
        count = counts[twice[0]]
        return (
            f"the class names are not unique: {twice[0]!r} "
            f"{'twice' if count == 2 else f'{count} times'}."
        )
    problem = _spec_problem(payload.get("model"), len(classes))
    networks = [(payload.get("preprocessing"), payload.get("state_dict"))]
    extra = payload.get("extra_networks", [])
    if not isinstance(extra, list) or not all(isinstance(item, dict) for item in extra):
        return "'extra_networks' must be a list of networks."
    networks += [(item.get("preprocessing"), item.get("state_dict")) for item in extra]
    for index, (prep, state) in enumerate(networks):
        where = "" if index == 0 else f" of network {index + 1}"
        problem = problem or _preprocessing_problem(prep, where)
        problem = problem or _weights_problem(state, len(classes), where)
    if problem:
        return problem
    metrics = payload.get("metrics")
    if not isinstance(metrics, dict):
        return "'metrics' must be a dict."
    for key in ("best_val_accuracy", "final_val_accuracy"):
        value = metrics.get(key)
        if value is not None and not (_number(value) and 0.0 <= value <= 1.0):
            return f"metrics[{key!r}] must be a number in [0, 1] or null; found {_short(value)}."
    if payload.get("holds") not in ("best", "final"):
        return f"'holds' must be 'best' or 'final'; found {_short(payload.get('holds'))}."
    epoch = metrics.get("best_epoch", 0)
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= 100_000):
        return f"metrics['best_epoch'] must be an epoch number; found {_short(epoch)}."
    history = payload.get("history")
    if not isinstance(history, list) or not all(
        isinstance(row, dict) and all(_number(v) for v in row.values()) for row in history
    ):
        return "'history' must be a list of rows of numbers."
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _spec_problem(spec: Any, num_classes: int) -> str | None:
    if not isinstance(spec, dict) or spec.get("kind") not in ("torchvision", "timm", "module"):
        return "'model' must be an architecture spec of kind 'torchvision', 'timm' or 'module'."
    if spec["kind"] != "module" and not (isinstance(spec.get("name"), str) and spec["name"]):
        return "the architecture spec lacks the backbone's name."
    if spec.get("num_classes") != num_classes:
        return (
            f"the architecture scores {_short(spec.get('num_classes'))} classes but the file "
            f"names {num_classes}."
        )
    features = spec.get("num_features")
    if not (isinstance(features, int) and not isinstance(features, bool)) or not (
        1 <= features <= _MAX_FEATURES
    ):
        return (
            f"the architecture's num_features must be 1 to {_MAX_FEATURES}; found "
            f"{_short(features)}."
        )
    kwargs = spec.get("builder_kwargs", {})
    if not isinstance(kwargs, dict) or not all(type(v) in _PLAIN for v in kwargs.values()):
        return "the architecture's builder_kwargs must be a dict of plain values."
    size = kwargs.get("image_size")
    if size is not None and not (
        isinstance(size, int) and _IMAGE_SIZES[0] <= size <= _IMAGE_SIZES[1]
    ):
        return f"builder_kwargs['image_size'] must be 8 to 2048; found {_short(size)}."
    return None


def _preprocessing_problem(prep: Any, where: str) -> str | None:
    if not isinstance(prep, dict):
        return f"the preprocessing{where} must be a dict."
    low, high = _IMAGE_SIZES
    for key in ("image_size", "resize_size"):
        value = prep.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            return (
                f"preprocessing{where}[{key!r}] must be an int from {low} to {high}; found "
                f"{_short(value)}."
            )
    for key in ("mean", "std"):
        values = prep.get(key)
        if (
            not isinstance(values, list)
            or len(values) != 3
            or not all(_number(v) and math.isfinite(v) for v in values)
        ):
            return (
                f"preprocessing{where}[{key!r}] must be 3 finite numbers; found {_short(values)}."
            )
    if not all(v > 0 for v in prep["std"]):
        return f"preprocessing{where}['std'] must be positive; found {prep['std']}."
    return None


def _weights_problem(state: Any, num_classes: int, where: str) -> str | None:
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        return f"the weights{where} must be a non-empty dict of tensors."
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"the weights{where} hold NaN or infinite values ({key})."
    head = state.get("head.weight")
    if head is not None and (head.ndim != 2 or head.shape[0] != num_classes):
        return (
            f"the head{where} scores {head.shape[0] if head.ndim else '?'} classes but the file "
            f"names {num_classes}."
        )
    return None
