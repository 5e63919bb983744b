"""EfficientNet-Lite0/1/2 in plain torch: the network of timm's ``tf_efficientnet_lite<n>``.

EfficientNet-Lite (Tan and Le, 2019; the TensorFlow "lite" variants) drops squeeze-and-
excitation and swish for ReLU6 and keeps the stem (32 channels) and the head (1280 features)
fixed as the network is scaled. This module builds the same layers as timm's port of the
TensorFlow weights, under the same parameter names, so the model files of 0.2 (written
with timm) and timm's state dicts load here unchanged, and a bare ``pip install
clothingclf`` runs every Lite model without timm:

* TensorFlow's "same" padding: a stride-2 convolution pads the bottom and right more than
  the top and left when the padding is odd (computed from the input size), a stride-1
  convolution pads ``k // 2`` on every side;
* BatchNorm with ``eps=1e-3`` (TensorFlow's default), no dropout;
* the channel and depth scaling of timm's ``round_channels`` and ``decode_arch_def``
  (depth rounded up, the first and last stages not scaled).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LITE_SCALES", "EfficientNetLite"]

#: (channel multiplier, depth multiplier) of each Lite variant.
LITE_SCALES: dict[int, tuple[float, float]] = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}

# Stages of the base network: (block, repeats, kernel, stride, expansion, channels).
_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
_STEM, _FEATURES, _BN_EPS = 32, 1280, 1e-3


def _divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never below 90 % of it (timm's and
    TensorFlow's ``make_divisible``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class _SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding, computed from each input's size
    (asymmetric when odd, as a stride-2 convolution needs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding: list[int] = []
        for size, kernel, stride in zip(
            x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            padding += [total // 2, total - total // 2]
        x = F.pad(x, padding)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A convolution without bias, padded "same" the TensorFlow way."""
    if stride == 1:
        return nn.Conv2d(inputs, outputs, kernel, 1, kernel // 2, groups=groups, bias=False)
    return _SameConv2d(inputs, outputs, kernel, stride, 0, groups=groups, bias=False)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class _DepthwiseSeparable(nn.Module):
    """Depthwise convolution, then pointwise projection (the first stage)."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _conv(inputs, inputs, kernel, stride, groups=inputs)
        self.bn1 = _norm(inputs)
        self.conv_pw = _conv(inputs, outputs, 1)
        self.bn2 = _norm(outputs)
        self.skip = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
        return x + y if self.skip else y


class _InvertedResidual(nn.Module):
    """Pointwise expansion, depthwise convolution, linear pointwise projection (MBConv
    without squeeze-and-excitation); a residual where the shape allows."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        middle = _divisible(inputs * expand)
        self.conv_pw = _conv(inputs, middle, 1)
        self.bn1 = _norm(middle)
        self.conv_dw = _conv(middle, middle, kernel, stride, groups=middle)
        self.bn2 = _norm(middle)
        self.conv_pwl = _conv(middle, outputs, 1)
        self.bn3 = _norm(outputs)
        self.skip = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_pw(x)))
        y = F.relu6(self.bn2(self.conv_dw(y)))
        y = cast(torch.Tensor, self.bn3(self.conv_pwl(y)))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite ``variant`` (0, 1 or 2) with random weights.

    Args:
        variant: 0, 1 or 2 (:data:`LITE_SCALES`).
        num_classes: Outputs of a linear ``classifier`` after the pooled features; 0 (the
            default) for none: the 1280 pooled features come out.

    Example:
        >>> net = EfficientNetLite(0)
        >>> net(torch.zeros(1, 3, 224, 224)).shape, net.num_features
        (torch.Size([1, 1280]), 1280)
    """

    def __init__(self, variant: int, *, num_classes: int = 0) -> None:
        super().__init__()
        width, depth = LITE_SCALES[variant]
        self.num_features = _FEATURES
        self.conv_stem = _conv(3, _STEM, 3, stride=2)
        self.bn1 = _norm(_STEM)
        stages: list[nn.Sequential] = []
        channels = _STEM
        for index, (block, repeats, kernel, stride, expand, base) in enumerate(_STAGES):
            fixed = index in (0, len(_STAGES) - 1)  # the first and last stages keep depth
            count = repeats if fixed else math.ceil(repeats * depth)
            outputs = _divisible(base * width)
            layers: list[nn.Module] = []
            for repeat in range(count):
                step = stride if repeat == 0 else 1
                if block == "ds":
                    layers.append(_DepthwiseSeparable(channels, outputs, kernel, step))
                else:
                    layers.append(_InvertedResidual(channels, outputs, kernel, step, expand))
                channels = outputs
            stages.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(channels, _FEATURES, 1)
        self.bn2 = _norm(_FEATURES)
        self.classifier: nn.Module = (
            nn.Linear(_FEATURES, num_classes) if num_classes else nn.Identity()
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N × 1280), or class scores with a classifier."""
        x = F.relu6(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = F.relu6(self.bn2(self.conv_head(x)))
        return cast(torch.Tensor, self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def _init_weights(module: nn.Module) -> None:
    """TensorFlow's EfficientNet initialisation (as timm's ``_init_weight_goog``): He normal
    on each convolution's fan-out, BatchNorm as identity, the classifier uniform."""
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / (fan_out // module.groups)))
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.out_features)
        nn.init.uniform_(module.weight, -bound, bound)
        nn.init.zeros_(module.bias)
