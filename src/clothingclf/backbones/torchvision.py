"""The torchvision source: any torchvision classification model by name, its classifier
layer replaced by the new head, with torchvision's weights and their preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from torch import nn

from ..exceptions import InvalidParameterError, did_you_mean
from .network import Built, ClothingNet
from .preprocessing import CROP_FRACTION, Preprocessing, default_preprocessing, triple
from .weights import Weights, download, load_local, local_weights_path, weights_enum

# Attribute names under which torchvision models keep their classifier, in lookup order.
_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def build_torchvision(name: str, weights: Weights, num_classes: int, image_size: int) -> Built:
    """torchvision's model ``name`` with a weights enum member or its name, a local file,
    or ``None`` (random); the preprocessing is the enum's, else ImageNet's."""
    import torchvision
    from torchvision.models import get_model

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        hint = did_you_mean(name, available, most=3, show=str)
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
        preprocessing = default_preprocessing(image_size)
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


def rebuild_torchvision(
    spec: Mapping[str, Any], backbone: nn.Module | None
) -> tuple[nn.Module, int]:
    """The feature extractor of a ``"torchvision"`` spec (random weights), and its features."""
    model = _torchvision_model(str(spec["name"]), dict(spec.get("builder_kwargs", {})))
    return _strip_torchvision_head(model, str(spec["name"]))


def _torchvision_model(name: str, builder_kwargs: dict[str, Any]) -> nn.Module:
    from torchvision.models import get_model

    return cast(nn.Module, get_model(name, weights=None, **builder_kwargs))


def _pretrained_kwargs(name: str) -> dict[str, Any]:
    """The builder arguments under which a released checkpoint loads."""
    if name in ("googlenet", "inception_v3"):
        # Load the released checkpoint (which includes the auxiliary heads), drop them after.
        return {"aux_logits": True, "init_weights": False, "transform_input": True}
    return {}


def _builder_kwargs(name: str, image_size: int, pretrained: bool) -> dict[str, Any]:
    """The builder arguments the spec records, so that a rebuild makes the same layers."""
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        # Pretrained weights of these two expect transform_input=True (the builder sets it).
        kwargs = {"aux_logits": False, "init_weights": False, "transform_input": pretrained}
    elif name.startswith("vit_") and not pretrained:
        kwargs = {"image_size": image_size}
    return kwargs


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


def _preprocessing_from_enum(weights: Any, image_size: int) -> Preprocessing:
    """What ``weights.transforms()`` does for evaluation, at ``image_size``."""
    transform = weights.transforms()
    crop = int(transform.crop_size[0])
    resize_sizes = getattr(transform, "resize_size", None)
    resize = int(resize_sizes[0]) if resize_sizes else round(crop / CROP_FRACTION)
    interpolation = str(getattr(transform.interpolation, "value", "bilinear"))
    base = Preprocessing(
        image_size=crop,
        resize_size=max(resize, crop),
        mean=triple(transform.mean),
        std=triple(transform.std),
        interpolation="bicubic" if interpolation == "bicubic" else "bilinear",
    )
    return base if image_size == crop else base.with_image_size(image_size)
