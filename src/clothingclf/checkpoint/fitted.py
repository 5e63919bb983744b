"""A fitted model as data: what :meth:`ClothingClassifier.save
<clothingclf.ClothingClassifier.save>` writes into a model file, and what
:meth:`~clothingclf.ClothingClassifier.load` rebuilds from one (older files' settings
upgraded to the current ones)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .._kinds import is_number
from .._version import __version__
from ..backbones import ClothingNet, Preprocessing, rebuild_model
from ..calibration import Calibration
from ..exceptions import ClothingClfError, InvalidParameterError, ModelFileError, first_line
from ..settings import TrainConfig, implied_values
from .files import check_payload
from .model_file import FORMAT_NAME, FORMAT_VERSION, read_model_file

__all__ = [
    "FittedModel",
    "estimator_params",
    "gathered_state",
    "model_payload",
    "read_fitted_model",
]

WeightsDtype = Literal["float32", "float16", "bfloat16"]
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class FittedModel:
    """Everything a model file holds, in memory: the networks (each with the preprocessing
    of its view, the first being the classifier's ``model_``), the architecture spec, the
    classes, the training settings and history, the validation metrics (``best_epoch``,
    ``best_val_accuracy``, ``final_val_accuracy``), which weights it holds, the estimator's
    parameters, the model card, the calibration of its probabilities (files written
    before calibration existed: the identity) and what each reduced precision was measured
    to cost (:meth:`~clothingclf.ClothingClassifier.check_precision`; none in older files)."""

    networks: list[tuple[ClothingNet, Preprocessing]]
    spec: dict[str, Any]
    classes: list[str]
    config: TrainConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    holds: str
    params: dict[str, Any]
    model_card: dict[str, Any] | None = None
    calibration: Calibration = field(default_factory=Calibration)
    precision_checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def estimator_params(params: Mapping[str, Any], *, skip: Sequence[str]) -> dict[str, Any]:
    """The estimator's parameters as the plain values a model file stores: those in
    ``skip`` (how one run executed: the device, the run options) are left out, a module
    backbone becomes ``None``, a weights enum or path its name, tuples lists."""
    plain: dict[str, Any] = {}
    for key, value in params.items():
        if key in skip:
            continue
        if key == "backbone" and isinstance(value, nn.Module):
            plain[key] = None
        elif key == "weights" and value is not None and not isinstance(value, str):
            name = getattr(value, "name", None)
            plain[key] = str(value) if isinstance(value, Path) or name is None else str(name)
        elif isinstance(value, tuple):
            plain[key] = list(value)
        elif isinstance(value, (str, int, float, bool, type(None), list)):
            plain[key] = value
    return plain


def _saved_state(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The weights as a model file holds them: on the CPU, in the default (contiguous)
    layout, whatever layout prediction keeps the network in; floating-point ones in
    ``dtype``."""
    return {
        key: value.detach()
        .to(device="cpu", dtype=dtype if value.is_floating_point() else value.dtype)
        .contiguous()
        for key, value in model.state_dict().items()
    }


def model_payload(fitted: FittedModel, weights_dtype: WeightsDtype = "float32") -> dict[str, Any]:
    """The payload of the model file of ``fitted`` (see :mod:`clothingclf.checkpoint`).

    Raises:
        InvalidParameterError: ``weights_dtype`` is not one of the three, a weight
            overflows it, or the model card holds something other than plain values.
    """
    if not isinstance(weights_dtype, str) or weights_dtype not in _DTYPES:
        raise InvalidParameterError(
            f"weights_dtype must be 'float32', 'float16' or 'bfloat16'; found {weights_dtype!r}."
        )
    states = [_saved_state(network, _DTYPES[weights_dtype]) for network, _ in fitted.networks]
    for state in states:
        for key, value in state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise InvalidParameterError(
                    f"The weight {key} does not fit in {weights_dtype} (it overflows to "
                    "infinity): save with weights_dtype='float32' or 'bfloat16'."
                )
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": dict(fitted.spec),
        "state_dict": states[0],
        "classes": list(fitted.classes),
        "preprocessing": fitted.networks[0][1].to_dict(),
        "config": fitted.config.to_dict(),
        "metrics": dict(fitted.metrics),
        "holds": fitted.holds,
        "history": [{str(k): float(v) for k, v in row.items()} for row in fitted.history],
        "params": dict(fitted.params),
        "weights_dtype": weights_dtype,
        "calibration": fitted.calibration.to_dict(),
    }
    if fitted.precision_checks:
        payload["precision_checks"] = {k: dict(v) for k, v in fitted.precision_checks.items()}
    if fitted.model_card is not None:
        check_payload(dict(fitted.model_card), "model_card")
        payload["model_card"] = dict(fitted.model_card)
    if len(fitted.networks) > 1:
        payload["extra_networks"] = [
            {"preprocessing": prep.to_dict(), "state_dict": state}
            for (_, prep), state in zip(fitted.networks[1:], states[1:], strict=True)
        ]
    return payload


def gathered_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The pickled state of a classifier of 0.2, which kept each learned attribute apart
    (``classes_``, ``config_``, ...), with them gathered into its ``fitted_``."""
    state = dict(state)
    metrics = ("best_epoch", "best_val_accuracy", "final_val_accuracy")
    passes = state.pop("teacher_image_passes_", None)
    state["fitted_"] = FittedModel(
        networks=state.pop("networks_"),
        spec=state.pop("model_spec_"),
        classes=state.pop("classes_"),
        config=state.pop("config_"),
        history=state.pop("history_"),
        metrics={
            **{name: state.pop(name + "_", None) for name in metrics},
            **({"teacher_image_passes": passes} if passes is not None else {}),
        },
        holds=state.pop("kept_"),
        params={},
        model_card=state.pop("model_card_", None),
        calibration=state.pop("calibration_", Calibration()),
        precision_checks=state.pop("precision_checks_", {}),
    )
    for derived in ("model_", "preprocessing_"):
        state.pop(derived, None)
    return state


def read_fitted_model(
    path: str | os.PathLike[str], *, backbone: nn.Module | None = None
) -> FittedModel:
    """Read a model file and rebuild its networks (on the CPU, in evaluation mode).

    Raises:
        ModelFileError: Not a clothingclf model file, a damaged or hand-edited one, or a
            model of a user's module read without ``backbone``; the message names the file.
        UnsupportedFormatError: A file written by a newer clothingclf.
        MissingDependencyError: A timm model without timm.
    """
    payload = read_model_file(path)
    name = str(path)
    try:
        return _fitted(payload, name, backbone)
    except ClothingClfError as error:
        if not isinstance(error, ModelFileError) or name in str(error):
            raise
        raise type(error)(f"{name!r}: {error}") from None
    except Exception as error:  # a damaged or hand-made file: a field of the wrong kind
        raise ModelFileError(
            f"{name!r} is damaged or was not written by clothingclf: the model it "
            f"describes cannot be rebuilt ({type(error).__name__}: {first_line(error)})."
        ) from None


def _fitted(payload: dict[str, Any], name: str, backbone: nn.Module | None) -> FittedModel:
    classes = payload["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f"{name!r} has malformed class names; the file is damaged.")
    spec = payload["model"]
    if not isinstance(spec, dict):
        raise ModelFileError(f"{name!r} has a malformed model spec; the file is damaged.")
    model = _rebuild(spec, payload["state_dict"], backbone, name, len(classes))
    extra = payload.get("extra_networks", [])
    if not isinstance(extra, list) or not all(isinstance(item, dict) for item in extra):
        raise ModelFileError(f"{name!r} has a malformed network list; the file is damaged.")
    networks = [(model, Preprocessing.from_dict(payload["preprocessing"]))] + [
        (
            _rebuild(spec, item["state_dict"], backbone, name, len(classes)),
            Preprocessing.from_dict(item["preprocessing"]),
        )
        for item in extra
    ]
    params = payload.get("params")
    card = payload.get("model_card")
    metrics = payload["metrics"] if isinstance(payload["metrics"], dict) else {}
    return FittedModel(
        networks=networks,
        spec=dict(spec),
        classes=list(classes),
        config=_config(payload, name),
        history=[dict(row) for row in payload["history"]],
        metrics=dict(metrics),
        holds=str(payload["holds"]),
        params=dict(params) if isinstance(params, dict) else {},
        model_card=dict(card) if isinstance(card, dict) else None,
        calibration=_calibration(payload, name, len(classes)),
        precision_checks=_precision_checks(payload, name),
    )


#: The fields of one precision check, each a fraction (``photos``: a count).
_CHECK_FIELDS = ("top1_change", "labels_changed", "max_probability_change", "photos")


def _precision_checks(payload: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """The file's precision checks ({} for files written before there were any)."""
    stored = payload.get("precision_checks", {})
    # a precision of a later release is not this one's to judge: skipped
    ours = (
        {p: c for p, c in stored.items() if p in ("bfloat16", "int8")}
        if isinstance(stored, dict)
        else None
    )
    if ours is None or not all(map(_is_check, ours.values())):
        raise ModelFileError(
            f"{name!r} has malformed precision_checks (expected {{'bfloat16' or 'int8': {{"
            f"{', '.join(_CHECK_FIELDS)}}}}}); the file is damaged."
        )
    return {
        precision: {key: check[key] for key in _CHECK_FIELDS} for precision, check in ours.items()
    }


def _is_check(check: Any) -> bool:
    """Whether ``check`` holds the fields of a precision check, each in its range."""
    return (
        isinstance(check, dict)
        and set(_CHECK_FIELDS) <= set(check)
        and all(is_number(check[k]) and -1 <= check[k] <= 1 for k in _CHECK_FIELDS[:3])
        and isinstance(check["photos"], int)
        and check["photos"] > 0
    )


def _calibration(payload: Mapping[str, Any], name: str, classes: int) -> Calibration:
    """The file's calibration: the identity for files written before there was one."""
    stored = payload.get("calibration")
    if stored is None:
        return Calibration()
    try:
        if not isinstance(stored, Mapping):
            raise InvalidParameterError(f"a {type(stored).__name__}, not a mapping")
        calibration = Calibration.from_dict(stored)
        if calibration.prior and len(calibration.prior) != classes:
            raise InvalidParameterError(
                f"a prior of {len(calibration.prior)} classes for {classes} classes"
            )
        return calibration
    except InvalidParameterError as error:
        raise ModelFileError(
            f"{name!r} has a calibration this version cannot use ({error}); the file is "
            "damaged or was hand-edited."
        ) from None


def _config(payload: Mapping[str, Any], name: str) -> TrainConfig:
    """The file's training settings, upgraded: what older files lack, they did not use."""
    try:
        stored = dict(payload["config"])
        # Files written before image_size and aspect were settings: no one value is implied,
        # the file's preprocessing knows them.
        prep = payload.get("preprocessing")
        if isinstance(prep, Mapping) and isinstance(prep.get("image_size"), int):
            stored.setdefault("image_size", prep["image_size"])
        if isinstance(prep, Mapping) and isinstance(prep.get("aspect"), (int, float)):
            stored.setdefault("aspect", prep["aspect"])
        # Settings added since: what the file's fit ran with (one network, every epoch
        # validated, ...), whatever its recipe's value is now.
        return TrainConfig.from_dict({**implied_values(), **stored})
    except Exception as error:
        raise ModelFileError(
            f"{name!r} has a training configuration this version cannot read ({error})."
        ) from None


def _rebuild(
    spec: dict[str, Any], state: Any, backbone: nn.Module | None, name: str, classes: int
) -> ClothingNet:
    """The network ``spec`` describes with the weights ``state``.

    The architecture is first made on the meta device (no memory) and compared with the
    file's tensors, so a small file that names a large network is refused before the
    network's memory is taken."""
    try:
        with torch.device("meta"):
            skeleton = rebuild_model(spec, backbone=backbone)
        expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    except ModelFileError:
        raise
    except Exception:  # a builder that reads values while building (RegNet): no pre-check
        expected = None
    found = {key: tuple(value.shape) for key, value in state.items()}
    if expected is not None and expected != found:
        different = sorted(set(expected) ^ set(found)) or sorted(
            key for key in expected if expected[key] != found[key]
        )
        raise ModelFileError(
            f"The weights in {name!r} do not fit the architecture it names ({len(found)} "
            f"tensors for {len(expected)}; first difference: {different[0]!r}). The file is "
            "damaged, or was made with another version of the backbone."
        )
    model = rebuild_model(spec, backbone=backbone)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ModelFileError(
            f"The weights in {name!r} do not fit the architecture it names "
            f"({first_line(error)}). The file is damaged, or was made with another version "
            "of the backbone."
        ) from None
    if model.num_classes != classes:
        raise ModelFileError(
            f"{name!r} names {classes} classes but its network scores "
            f"{model.num_classes}; the file is damaged."
        )
    return model
