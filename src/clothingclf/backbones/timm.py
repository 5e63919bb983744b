"""The timm source: ``"timm/<name>"`` backbones, and the timm import and preprocessing that
the EfficientNet-Lite source (timm's architecture) shares.

timm is optional (the ``timm`` extra); it is imported only when a timm backbone is built,
so that the rest of clothingclf, EfficientNet-Lite included, works without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, cast

from torch import nn

from ..exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    WeightsUnavailableError,
    did_you_mean,
)
from .network import Built, ClothingNet
from .preprocessing import CROP_FRACTION, IMAGENET_MEAN, IMAGENET_STD, Preprocessing, triple
from .weights import Weights, load_local, local_weights_path

#: How a backbone name asks for a timm model: ``"timm/<timm's name>"``.
TIMM_PREFIX = "timm/"
_EXTRA = "pip install 'clothingclf[timm]'"


def import_timm(what: str) -> Any:
    """timm, or a :class:`MissingDependencyError` that says how to install it."""
    try:
        import timm
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs the timm package, which is not installed. Install it with: {_EXTRA}"
        ) from None
    return timm


def timm_features(name: str, *, pretrained: bool = False) -> tuple[nn.Module, int]:
    """timm's model ``name`` without its classifier, and its number of features."""
    timm = import_timm(f"The timm backbone {name!r}")
    if not timm.is_model(name):
        hint = did_you_mean(name, timm.list_models(), most=3, show=lambda c: f"timm/{c}")
        raise InvalidParameterError(f"Unknown timm model {name!r}.{hint}")
    model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    return cast(nn.Module, model), int(model.num_features)


def build_timm(name: str, weights: Weights, num_classes: int, image_size: int) -> Built:
    """timm's model ``name`` with timm's pretrained weights (``"DEFAULT"``), a local file,
    or ``None`` (random)."""
    local = local_weights_path(weights)
    pretrained = local is None and weights is not None
    if pretrained and str(weights) != "DEFAULT":
        raise WeightsUnavailableError(
            f"For timm/{name}, weights must be 'DEFAULT' (timm's pretrained weights), None, "
            f"or the path of a local state_dict file; found {weights!r}."
        )
    try:
        features, num_features = timm_features(name, pretrained=pretrained)
    except (InvalidParameterError, WeightsUnavailableError, MissingDependencyError):
        raise
    except Exception as error:
        raise WeightsUnavailableError(
            f"timm could not provide pretrained weights for {name!r} ({type(error).__name__}: "
            f"{error}). Without network access pass weights='/path/to/state_dict.pth' or None."
        ) from error
    cfg = dict(getattr(features, "pretrained_cfg", None) or {})
    if local is not None:
        drop = (str(cfg["classifier"]),) if cfg.get("classifier") else ()
        load_local(features, local, drop_prefixes=drop)
    spec = {
        "kind": "timm",
        "name": name,
        "num_features": num_features,
        "num_classes": num_classes,
        "weights": str(local) if local is not None else ("DEFAULT" if pretrained else None),
    }
    head = nn.Linear(num_features, num_classes)
    return ClothingNet(features, head), timm_preprocessing(cfg, image_size), spec


def rebuild_timm(spec: Mapping[str, Any], backbone: nn.Module | None) -> tuple[nn.Module, int]:
    """The feature extractor of a ``"timm"`` spec (random weights), and its features."""
    return timm_features(str(spec["name"]))


def timm_preprocessing(cfg: Mapping[str, Any], image_size: int) -> Preprocessing:
    """The evaluation view of timm weights (mean, std, interpolation, crop fraction) at
    ``image_size``."""
    crop_pct = float(cfg.get("crop_pct") or CROP_FRACTION)
    interpolation: Literal["bilinear", "bicubic"] = (
        "bicubic" if cfg.get("interpolation") == "bicubic" else "bilinear"
    )
    return Preprocessing(
        image_size=image_size,
        resize_size=max(image_size, math.floor(image_size / crop_pct)),
        mean=triple(cfg.get("mean", IMAGENET_MEAN)),
        std=triple(cfg.get("std", IMAGENET_STD)),
        interpolation=interpolation,
    )
