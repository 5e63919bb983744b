"""The preprocessing types: how an image becomes the tensor a network was trained on.

:class:`Preprocessing` (resize, crop, normalisation; square or any height / width within
:data:`ASPECT_RANGE`), the :class:`CoverResize` it uses for rectangular views, and the
ImageNet defaults that every backbone source falls back on.

There is one evaluation view, in two steps that validation, ``predict`` and the export's
description share: :meth:`Preprocessing.canvas` resizes a decoded photo into a uint8
canvas (what the image cache stores), and :meth:`Preprocessing.network_input` crops the
centre of a batch of canvases and normalises it. :meth:`Preprocessing.eval_transform` is
the two applied to one image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import numpy as np
import torch
from PIL import Image

from ..exceptions import InvalidParameterError, ModelFileError

#: The channel means of ImageNet, used when the weights do not say otherwise.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: The channel standard deviations of ImageNet.
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# torchvision's reference evaluation crops 224 px out of 256 px: crop / resize = 0.875.
CROP_FRACTION = 0.875
#: The heights / widths a :class:`Preprocessing` accepts.
ASPECT_RANGE = (0.25, 4.0)


def mirrored(batch: torch.Tensor) -> torch.Tensor:
    """The mirror images (left to right) of a batch ``N x C x H x W``: the one flip of
    test-time augmentation, for canvases and network inputs alike.

    Example:
        >>> mirrored(torch.arange(3.0).reshape(1, 1, 1, 3)).tolist()
        [[[[2.0, 1.0, 0.0]]]]
    """
    return batch.flip(-1)


def valid_aspect(value: Any) -> bool:
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


def resize_to_canvas(
    image: Image.Image,
    width: int,
    *,
    aspect: float = 1.0,
    interpolation: Literal["bilinear", "bicubic"] = "bilinear",
) -> torch.Tensor:
    """Resize a decoded RGB image into the canvas of a view ``width`` wide and ``aspect``
    times as tall: a ``3 x round(width * aspect) x width`` uint8 tensor.

    Square (``aspect`` 1): the shorter side is resized to ``width`` (antialiased) and the
    centre square is kept, as torchvision's ``Resize`` then ``CenterCrop`` do. Otherwise
    the image is resized to cover the canvas and cropped to it about its centre
    (:class:`CoverResize`).

    Example:
        >>> from PIL import Image
        >>> resize_to_canvas(Image.new("RGB", (60, 40), (255, 0, 0)), 32)[:, 0, 0].tolist()
        [255, 0, 0]
        >>> resize_to_canvas(Image.new("RGB", (60, 40)), 30, aspect=4 / 3).shape
        torch.Size([3, 40, 30])
    """
    if aspect == 1.0:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        mode = InterpolationMode(interpolation)
        image = TF.resize(image, width, interpolation=mode, antialias=True)
        image = TF.center_crop(image, [width, width])
    else:
        image = CoverResize(width, scaled_height(width, aspect), interpolation)(image)
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class _EvalTransform:
    """:meth:`Preprocessing.canvas` then :meth:`Preprocessing.network_input` on one image
    (a class, not a closure, so that DataLoader workers can pickle it)."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, image: Image.Image) -> torch.Tensor:
        canvas = self.preprocessing.canvas(image).unsqueeze(0)
        return self.preprocessing.network_input(canvas)[0]

    def __repr__(self) -> str:
        return f"EvalTransform({self.preprocessing!r})"


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the tensor a network was trained on.

    With ``aspect`` 1 (the default) the shorter side is resized to ``resize_size`` pixels,
    the centre ``image_size`` × ``image_size`` square is cropped, and each channel is
    normalised with ``mean`` and ``std`` (after scaling the pixels to [0, 1]). This is
    what torchvision's ``weights.transforms()`` does for evaluation (exactly, when
    ``resize_size - image_size`` is even; otherwise the crop may sit one pixel away along
    the longer side, as it is taken from the square canvas, see :meth:`canvas`).

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
        if not valid_aspect(aspect):
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

    @property
    def draft_size(self) -> tuple[int, int]:
        """``(width, height)`` of the canvas: how far JPEG draft mode may shrink a photo
        while it decodes (:func:`~clothingclf.open_image`)."""
        return self.resize_shape[1], self.resize_shape[0]

    def canvas(self, image: Image.Image) -> torch.Tensor:
        """The first step of the evaluation view: a decoded RGB image resized into the
        uint8 canvas of :attr:`resize_shape` (:func:`resize_to_canvas`). The image cache
        stores these; training crops them at random, evaluation at the centre.

        Example:
            >>> from PIL import Image
            >>> prep = Preprocessing(image_size=24, resize_size=28)
            >>> prep.canvas(Image.new("RGB", (50, 40))).shape
            torch.Size([3, 28, 28])
        """
        return resize_to_canvas(
            image, self.resize_size, aspect=self.aspect, interpolation=self.interpolation
        )

    def center_crop(self, canvases: torch.Tensor) -> torch.Tensor:
        """The centre :attr:`input_shape` of canvases (``... x H x W``), placed as
        torchvision's ``center_crop`` places it: ``round((H - height) / 2)`` from the top
        and ``round((W - width) / 2)`` from the left, halves rounded to even."""
        height, width = self.input_shape
        top = round((canvases.shape[-2] - height) / 2)
        left = round((canvases.shape[-1] - width) / 2)
        return canvases[..., top : top + height, left : left + width]

    def network_input(self, canvases: torch.Tensor, *, flip: bool = False) -> torch.Tensor:
        """The second step of the evaluation view: the centre of a batch of uint8 canvases
        (N × 3 × H × W) as the float32 batch the network takes (pixels scaled to [0, 1],
        then :meth:`normalize`), mirrored left to right if ``flip``.

        Example:
            >>> prep = Preprocessing(image_size=2, resize_size=4, mean=(0, 0, 0), std=(1, 1, 1))
            >>> prep.network_input(torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)).shape
            torch.Size([1, 3, 2, 2])
        """
        batch = self.center_crop(canvases).float().div_(255.0)
        return self.normalize(mirrored(batch) if flip else batch)

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """The evaluation view of one image: :meth:`canvas`, then :meth:`network_input`.

        Returns:
            A picklable callable that turns an RGB :class:`PIL.Image.Image` into a float
            tensor of shape 3 × height × width (:attr:`input_shape`), normalised.

        Example:
            >>> from PIL import Image
            >>> t = Preprocessing(image_size=8, resize_size=8, mean=(0, 0, 0), std=(1, 1, 1))
            >>> float(t.eval_transform()(Image.new("RGB", (8, 8), (255, 0, 0)))[0].mean())
            1.0
        """
        return _EvalTransform(self)

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


def default_preprocessing(image_size: int) -> Preprocessing:
    """The ImageNet view at ``image_size`` (torchvision's crop fraction), for weights
    that do not bring their own."""
    return Preprocessing(image_size=image_size, resize_size=round(image_size / CROP_FRACTION))


def triple(values: Any) -> tuple[float, float, float]:
    """The first three of ``values`` as floats (a channel mean or standard deviation)."""
    items = [float(v) for v in values]
    return (items[0], items[1], items[2])
