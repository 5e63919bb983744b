"""The model file: its format constants, its reader, and the bounds every field is checked
against before anything is built from it."""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from .._kinds import IMAGE_SIDES, is_number
from ..exceptions import ModelFileError, UnsupportedFormatError
from .files import clip, safe_load
from .training_checkpoint import CHECKPOINT_FORMAT

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE_KEYS",
    "read_model_file",
    "validate_model_payload",
]

#: The ``format`` of every clothingclf model file.
FORMAT_NAME = "clothingclf"
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

# Bounds of the fields of a model file.
_MAX_CLASSES = 10_000
_MAX_FEATURES = 1_000_000
#: The architecture kinds a model file may name (backbones.registry rebuilds each).
_SPEC_KINDS = ("torchvision", "timm", "lite", "module")
#: The builder arguments a spec may record (backbones.torchvision writes no others), so that
#: no number in a file reaches a builder unchecked.
_BUILDER_KWARGS: dict[str, type] = {
    "aux_logits": bool,
    "init_weights": bool,
    "transform_input": bool,
    "image_size": int,
}


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
        >>> from clothingclf.checkpoint import atomic_save
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
            f"{clip(classes)}."
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
        if value is not None and not (is_number(value) and 0.0 <= value <= 1.0):
            return f"metrics[{key!r}] must be a number in [0, 1] or null; found {clip(value)}."
    if payload.get("holds") not in ("best", "final"):
        return f"'holds' must be 'best' or 'final'; found {clip(payload.get('holds'))}."
    epoch = metrics.get("best_epoch", 0)
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= 100_000):
        return f"metrics['best_epoch'] must be an epoch number; found {clip(epoch)}."
    history = payload.get("history")
    if not isinstance(history, list) or not all(
        isinstance(row, dict) and all(is_number(v) for v in row.values()) for row in history
    ):
        return "'history' must be a list of rows of numbers."
    return None


def _spec_problem(spec: Any, num_classes: int) -> str | None:
    if not isinstance(spec, dict) or spec.get("kind") not in _SPEC_KINDS:
        return f"'model' must be an architecture spec of kind {', '.join(map(repr, _SPEC_KINDS))}."
    if spec["kind"] != "module" and not (isinstance(spec.get("name"), str) and spec["name"]):
        return "the architecture spec lacks the backbone's name."
    if spec.get("num_classes") != num_classes:
        return (
            f"the architecture scores {clip(spec.get('num_classes'))} classes but the file "
            f"names {num_classes}."
        )
    features = spec.get("num_features")
    if not (isinstance(features, int) and not isinstance(features, bool)) or not (
        1 <= features <= _MAX_FEATURES
    ):
        return (
            f"the architecture's num_features must be 1 to {_MAX_FEATURES}; found {clip(features)}."
        )
    kwargs = spec.get("builder_kwargs", {})
    if not isinstance(kwargs, dict) or not all(
        type(value) is _BUILDER_KWARGS.get(key) for key, value in kwargs.items()
    ):
        allowed = ", ".join(f"{key} ({kind.__name__})" for key, kind in _BUILDER_KWARGS.items())
        return (
            f"the architecture's builder_kwargs may hold only {allowed}, the arguments "
            f"clothingclf records; found {clip(kwargs)}."
        )
    size = kwargs.get("image_size")
    if size is not None and not (
        isinstance(size, int) and IMAGE_SIDES[0] <= size <= IMAGE_SIDES[1]
    ):
        low, high = IMAGE_SIDES
        return f"builder_kwargs['image_size'] must be {low} to {high}; found {clip(size)}."
    return None


def _preprocessing_problem(prep: Any, where: str) -> str | None:
    if not isinstance(prep, dict):
        return f"the preprocessing{where} must be a dict."
    low, high = IMAGE_SIDES
    for key in ("image_size", "resize_size"):
        value = prep.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            return (
                f"preprocessing{where}[{key!r}] must be an int from {low} to {high}; found "
                f"{clip(value)}."
            )
    for key in ("mean", "std"):
        values = prep.get(key)
        if (
            not isinstance(values, list)
            or len(values) != 3
            or not all(is_number(v) and math.isfinite(v) for v in values)
        ):
            return f"preprocessing{where}[{key!r}] must be 3 finite numbers; found {clip(values)}."
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
