"""Small networks shared by the tests (imported as ``from _nets import ...``)."""

from __future__ import annotations

from torch import nn


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
