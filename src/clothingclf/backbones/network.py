"""The network type: :class:`ClothingNet`, a feature extractor and a linear head.

Every backbone source builds one, and returns it as a :data:`Built` with its
preprocessing and the spec that rebuilds its architecture.
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

import torch
from torch import nn

from .preprocessing import Preprocessing


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


#: What every source's builder returns: the network, its preprocessing, and the JSON-able
#: spec from which :func:`~clothingclf.backbones.rebuild_model` makes the architecture.
Built: TypeAlias = tuple[ClothingNet, Preprocessing, dict[str, Any]]
