"""Experiment: ``bench_accuracy.py`` on the whole photo at 3:4 instead of its centre square.

Not a library feature (yet). For one run this script replaces the four places of the
library that assume a square: the decoded-image cache, the training crops, the evaluation
view and ``predict``'s transform. Each photo is resized to cover a W x round(W * ASPECT)
canvas and centre-cropped to it (a 3:4 photo is kept whole, a 9:16 one loses an eighth at
each end, a square one an eighth at each side); random resized crops are drawn as fractions
of the canvas's sides; evaluation takes the centre W x round(W * ASPECT) after the same
margin as the square view (``resize_size`` against ``image_size``). W is the preprocessing's
``image_size``, so ``--image-size 192`` gives 192 x 256 px in the last epochs, the pixels of
a 222 px square. The cache stays in memory (``--cache-dir`` is ignored). The model files
it saves (``--save-models``) do not record the view: a plain ``ClothingClassifier.load``
would predict on the centre square, so predict inside ``whole_photo_view()``, as
``average_models.py --whole`` does. It patches private functions, so it is tied to this
version of the library. docs/performance.rst ("How the recipe was found") has its results.

Usage (every option is ``bench_accuracy.py``'s)::

    python benchmarks/experiments/whole_photo.py --weights lite0.pth --recipes fast \\
        --image-size 192 --save-models runs/whole

Environment: ``ASPECT``, height / width of the view (default 4/3).
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

import clothingclf._views as views
import clothingclf.cache as cache
import clothingclf.training as training
from clothingclf.backbones import Preprocessing
from clothingclf.images import open_image

BENCH = Path(__file__).resolve().parent.parent / "bench_accuracy.py"


def _cover(image: Image.Image, width: int, height: int, mode: InterpolationMode) -> Image.Image:
    """Resize ``image`` to cover ``width`` x ``height``, then crop the centre of that size."""
    old_width, old_height = image.size
    scale = max(width / old_width, height / old_height)
    size = [max(height, round(old_height * scale)), max(width, round(old_width * scale))]
    image = TF.resize(image, size, interpolation=mode, antialias=True)
    return TF.center_crop(image, [height, width])


class _EvalTransform:
    """``predict``'s transform for the portrait view."""

    def __init__(self, prep: Preprocessing, aspect: float) -> None:
        self.prep = prep
        self.aspect = aspect
        self.mode = InterpolationMode(prep.interpolation)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        prep = self.prep
        image = _cover(image, prep.resize_size, round(prep.resize_size * self.aspect), self.mode)
        image = TF.center_crop(image, [round(prep.image_size * self.aspect), prep.image_size])
        tensor = TF.pil_to_tensor(image).float().div(255.0)
        return TF.normalize(tensor, list(prep.mean), list(prep.std))


class _PortraitGrids:
    """``torch.nn.functional`` as the library's crop code sees it, with portrait grids.

    The training crops (``_Views.augmented``) ask ``affine_grid`` for ``size x size``
    outputs; this answers with ``size`` wide and ``round(size * aspect)`` tall, so each
    random resized crop (drawn as fractions of the canvas's width and height) comes out
    portrait. Everything else is ``torch.nn.functional`` itself.
    """

    def __init__(self, aspect: float) -> None:
        self.aspect = aspect

    def __getattr__(self, name: str) -> Any:
        return getattr(F, name)

    def affine_grid(self, theta: torch.Tensor, size: list[int], **kwargs: Any) -> torch.Tensor:
        count, channels, _, width = size
        shape = [count, channels, round(width * self.aspect), width]
        return F.affine_grid(theta, shape, **kwargs)


@contextlib.contextmanager
def whole_photo_view(aspect: float = 4 / 3) -> Iterator[None]:
    """Patch the library to train and predict on a ``1 x aspect`` (width x height) view."""

    def tall(width: int) -> int:
        return round(width * aspect)

    def decode(path: Any, size: int, *, interpolation: str = "bilinear") -> torch.Tensor:
        image = open_image(path, draft_size=(size, tall(size)))
        mode = InterpolationMode(interpolation)
        image = _cover(image, size, tall(size), mode)
        array = np.asarray(image, dtype=np.uint8).copy()
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def build_image_cache(
        paths: Sequence[Any],
        *,
        size: int,
        interpolation: Any = "bilinear",
        cache_dir: Any = None,
        num_workers: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        names = [os.fspath(path) for path in paths]
        tensor = torch.empty((len(names), 3, tall(size), size), dtype=torch.uint8)
        cache._fill(tensor, names, size, interpolation, num_workers, progress)
        return tensor

    def center(self: Any, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
        width = self.preprocessing.image_size
        height = tall(width)
        top = (images.shape[-2] - height) // 2
        left = (images.shape[-1] - width) // 2
        crop = self._to_device(images[:, :, top : top + height, left : left + width])
        batch = crop.float().div_(255.0)
        return self._finish(batch.flip(-1) if flip else batch)

    def eval_transform(self: Preprocessing) -> _EvalTransform:
        return _EvalTransform(self, aspect)

    patches = [
        (cache, "decode_square", decode),
        (training, "build_image_cache", build_image_cache),
        (views._Views, "center", center),
        (views, "F", _PortraitGrids(aspect)),
        (Preprocessing, "eval_transform", eval_transform),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def main() -> None:
    aspect = float(os.environ.get("ASPECT", 4 / 3))
    print(f"[whole_photo] training and evaluating on a 1 x {aspect:.4g} view", file=sys.stderr)
    sys.argv = [str(BENCH), *sys.argv[1:]]
    with whole_photo_view(aspect):
        runpy.run_path(str(BENCH), run_name="__main__")


if __name__ == "__main__":
    main()
