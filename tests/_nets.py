"""Small networks shared by the tests (imported as ``from _nets import ...``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from clothingclf import ClothingClassifier


def tiny_features() -> nn.Module:
    """A three-layer CNN that keeps a 4×4 map of where things are: enough for silhouettes.

    Maps 3-channel images to 256 features (16 channels × 4 × 4).
    """
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2, stride=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(4),
        nn.Flatten(),
    )


def tiny_classifier(**params: Any) -> ClothingClassifier:
    """A classifier on :func:`tiny_features` at 32 px, 2 epochs of AdamW, quiet, on the CPU;
    ``params`` replace any of these settings or add others."""
    settings: dict[str, Any] = {
        "backbone": tiny_features(),
        "weights": None,
        "recipe": "seed",
        "image_size": 32,
        "epochs": 2,
        "batch_size": 16,
        "optimizer": "adamw",
        "lr": 3e-3,
        "progress": False,
        "num_workers": 0,
        "device": "cpu",
    }
    settings.update(params)
    return ClothingClassifier(**settings)


def resnet_classifier(**params: Any) -> ClothingClassifier:
    """The study's ResNet-18 from random weights at 32 px, one epoch of batch 16, quiet;
    ``params`` replace any of these settings or add others."""
    settings: dict[str, Any] = {
        "backbone": "resnet18",
        "weights": None,
        "recipe": "seed",
        "image_size": 32,
        "epochs": 1,
        "batch_size": 16,
        "progress": False,
        "num_workers": 0,
    }
    settings.update(params)
    return ClothingClassifier(**settings)
