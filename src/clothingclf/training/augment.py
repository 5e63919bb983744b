"""Training batches on the device: augmented and evaluation views of the image cache.

:class:`Views` turns rows of the uint8 image cache into normalised float batches, with
random resized crops, flips and colour jitter done for a whole batch at once; :func:`mix`
applies Mixup/CutMix; :func:`image_size` is the progressive-resizing schedule.

Crops, flips, jitter and mixing draw from the epoch's own generator (seeded by ``seed`` and
the epoch), not from torch's global one as torchvision's ``v2.RandomResizedCrop``,
``v2.MixUp`` and ``v2.CutMix`` do: that is what makes a resumed fit bit for bit the same as
an uninterrupted one, and a whole batch is cropped in one ``grid_sample`` call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import Preprocessing, scaled_height
from ..settings import TrainConfig

__all__: list[str] = []


class Views:
    """Turns rows of the uint8 cache into normalised float batches on the device."""

    def __init__(
        self,
        preprocessing: Preprocessing,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.preprocessing = preprocessing
        self.device = device
        self.channels_last = channels_last

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return images.pin_memory().to(self.device, non_blocking=True)
        return images.to(self.device)

    def _finish(self, images: torch.Tensor) -> torch.Tensor:
        images = self.preprocessing.normalize(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def center(self, images: torch.Tensor) -> torch.Tensor:
        """The evaluation view, as ``predict`` sees it: the centre of the cached canvases
        (:meth:`~clothingclf.backbones.Preprocessing.network_input`), moved to the device
        as uint8 first."""
        crop = self._to_device(self.preprocessing.center_crop(images))
        batch = self.preprocessing.network_input(crop)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def augmented(
        self,
        images: torch.Tensor,
        size: int,
        generator: torch.Generator,
        *,
        min_scale: float,
        flip: bool,
        color_jitter: float = 0.0,
    ) -> torch.Tensor:
        """Random resized crops (area ``min_scale``-1, aspect 3/4-4/3), flips and jitter.

        One :func:`~torch.nn.functional.grid_sample` call crops, resizes and mirrors the
        whole batch (bilinear), which costs a fraction of a per-image loop. Crops are drawn
        as fractions of the cached canvas's width and height and come out ``size`` wide
        and ``size`` times the preprocessing's ``aspect`` tall. With
        ``color_jitter`` > 0 (see :func:`_jitter`) the factors are drawn after the crops, so
        runs without it keep their exact crops.
        """
        count = images.shape[0]
        area = torch.empty(count).uniform_(min_scale, 1.0, generator=generator)
        log_ratio = torch.empty(count).uniform_(
            math.log(3 / 4), math.log(4 / 3), generator=generator
        )
        ratio = torch.exp(log_ratio)
        # Width and height as fractions of the cached canvas's width and height.
        width = torch.sqrt(area * ratio).clamp(max=1.0)
        height = torch.sqrt(area / ratio).clamp(max=1.0)
        left = torch.rand(count, generator=generator) * (1.0 - width)
        top = torch.rand(count, generator=generator) * (1.0 - height)
        mirror = torch.rand(count, generator=generator) < 0.5
        sign = torch.where(mirror & flip, -1.0, 1.0)
        theta = torch.zeros(count, 2, 3)
        theta[:, 0, 0] = width * sign
        theta[:, 0, 2] = (left + width / 2) * 2 - 1
        theta[:, 1, 1] = height
        theta[:, 1, 2] = (top + height / 2) * 2 - 1
        batch = self._to_device(images).float()
        tall = scaled_height(size, self.preprocessing.aspect)
        grid = F.affine_grid(theta.to(self.device), [count, 3, tall, size], align_corners=False)
        crops = F.grid_sample(
            batch, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        crops = crops.div_(255.0)
        if color_jitter > 0:
            crops = _jitter(crops, color_jitter, generator)
        return self._finish(crops)


#: The grey-level weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601 luma).
_LUMA = (0.2989, 0.587, 0.114)


def _jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation of each image scaled by its own random factors.

    ``images`` is a float batch in [0, 1]. Each factor is drawn uniformly from
    ``[1 - strength, 1 + strength]``, one per image and property, and applied in that
    order as torchvision's ``adjust_brightness``/``adjust_contrast``/``adjust_saturation``
    do: brightness scales the pixels, contrast blends with the image's mean grey level,
    saturation with each pixel's grey value; the result is clipped to [0, 1] after each.
    """
    count = images.shape[0]
    factors = torch.empty(3, count).uniform_(1.0 - strength, 1.0 + strength, generator=generator)
    factors = factors.to(images.device).view(3, count, 1, 1, 1)
    luma = torch.tensor(_LUMA, device=images.device).view(1, 3, 1, 1)
    images = (images * factors[0]).clamp_(0.0, 1.0)
    grey = (images * luma).sum(1, keepdim=True)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    images = (mean + factors[1] * (images - mean)).clamp_(0.0, 1.0)
    grey = (images * luma).sum(1, keepdim=True)
    return (grey + factors[2] * (images - grey)).clamp_(0.0, 1.0)


def mix(
    inputs: torch.Tensor,
    generator: torch.Generator,
    *,
    mixup_alpha: float,
    cutmix_alpha: float,
) -> tuple[torch.Tensor, float]:
    """Mixup or CutMix of a batch with its own reverse; returns it and the first share.

    Image ``i`` is mixed with image ``n - 1 - i`` (the batch order is already random), so
    the loss is ``lam * loss(target) + (1 - lam) * loss(target.flip(0))``. ``lam`` is drawn
    from Beta(alpha, alpha). With both alphas set, each batch takes one of the two, with
    equal chance. CutMix pastes one box of the partner (area ``1 - lam``, clipped at the
    border) and returns the share the box really left. With both alphas 0 nothing is
    drawn from ``generator``, so runs without mixing keep their exact augmentations.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return inputs, 1.0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    partner = inputs.flip(0)
    if not use_cutmix:
        return inputs * lam + partner * (1.0 - lam), lam
    height, width = inputs.shape[-2:]
    cut_h, cut_w = round(height * math.sqrt(1.0 - lam)), round(width * math.sqrt(1.0 - lam))
    center_y, center_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(center_y - cut_h // 2, 0), min(center_y + cut_h - cut_h // 2, height)
    left, right = max(center_x - cut_w // 2, 0), min(center_x + cut_w - cut_w // 2, width)
    mixed = inputs.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)


def batches(indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches; a last batch of one image joins the one before (BatchNorm)."""
    starts = list(range(0, len(indices), batch_size))
    if len(starts) > 1 and len(indices) - starts[-1] == 1:
        starts.pop()
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(indices)
        yield indices[start:end]


def image_size(config: TrainConfig, epoch: int, final: int) -> int:
    """Training image side of (1-based) ``epoch`` under the progressive-resizing schedule."""
    if not config.size_schedule:
        return final
    phases = len(config.size_schedule)
    phase = min(phases - 1, (epoch - 1) * phases // config.epochs)
    size = round(final * config.size_schedule[phase] / 16) * 16
    return max(min(final, 32), min(final, size))
