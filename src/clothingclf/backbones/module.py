"""The user's-module source: a :class:`torch.nn.Module` that maps images to features,
copied (never changed), with its own weights or a local file's, and ImageNet's preprocessing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..exceptions import InvalidParameterError, ModelFileError, WeightsUnavailableError
from .network import Built, ClothingNet
from .preprocessing import default_preprocessing
from .weights import Weights, load_local, local_weights_path


def build_from_module(
    backbone: nn.Module, weights: Weights, num_classes: int, image_size: int
) -> Built:
    """A copy of ``backbone`` with its own weights (``None`` or ``"DEFAULT"``) or a local
    file's; the number of features comes from a trial batch."""
    features = copy.deepcopy(backbone)
    local = local_weights_path(weights)
    if local is not None:
        load_local(features, local, drop_prefixes=())
    elif weights not in (None, "DEFAULT"):
        raise WeightsUnavailableError(
            "For an nn.Module backbone, weights must be None or 'DEFAULT' (both keep the "
            f"module's own weights) or the path of a state_dict file; found {weights!r}."
        )
    num_features = _infer_num_features(features, image_size)
    spec = {
        "kind": "module",
        "class": f"{type(backbone).__module__}.{type(backbone).__qualname__}",
        "num_features": num_features,
        "num_classes": num_classes,
        "weights": str(local) if local is not None else None,
    }
    head = nn.Linear(num_features, num_classes)
    return ClothingNet(features, head), default_preprocessing(image_size), spec


def rebuild_module(spec: Mapping[str, Any], backbone: nn.Module | None) -> tuple[nn.Module, int]:
    """A copy of ``backbone`` for a ``"module"`` spec (a model file holds no module
    class, so the caller passes one), and the spec's number of features."""
    if backbone is None:
        raise ModelFileError(
            f"This model was built from your own nn.Module (class {spec.get('class')!r}), "
            "which a model file cannot rebuild from data alone. Pass a module of the same "
            "class and shape: ClothingClassifier.load(path, backbone=MyFeatures())."
        )
    return copy.deepcopy(backbone), int(spec["num_features"])


def _infer_num_features(features: nn.Module, image_size: int) -> int:
    """F of a module that maps N×3×H×W images to N×F features (or N×C×1×1)."""
    was_training = features.training
    parameter = next(features.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(2, 3, image_size, image_size, device=device))
    except Exception as error:
        raise InvalidParameterError(
            f"The backbone module {type(features).__name__} failed on a batch of "
            f"2×3×{image_size}×{image_size} images ({type(error).__name__}: {error}); it must "
            "map images N×3×H×W to features N×F."
        ) from None
    finally:
        features.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.shape[0] != 2:
        raise InvalidParameterError(
            f"The backbone module {type(features).__name__} returned "
            f"{getattr(out, 'shape', type(out).__name__)} for 2 images; it must return a "
            "tensor N×F (or N×C×1×1)."
        )
    return int(torch.flatten(out, 1).shape[1])
