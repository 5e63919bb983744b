"""The one PyTorch dataset of the library: images decoded one by one for a ``DataLoader``.

:class:`ClothingDataset` serves a split of :func:`~clothingclf.prepare_dataset` (paths and
label ids) or any list of images (paths, bytes, Pillow images, arrays, tensors). The image
cache decodes the training photos through it and ``predict`` the photos it labels, each
with the transform of its network's view.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch.utils.data

from ..exceptions import InvalidImageError, MissingColumnsError
from ..images import open_image

__all__ = ["ClothingDataset"]


class ClothingDataset(torch.utils.data.Dataset[tuple[Any, int]]):
    """Decoded RGB images and their label ids, one split (or list of images) at a time.

    Images are decoded by :func:`~clothingclf.open_image` (EXIF orientation applied;
    greyscale, 16-bit, CMYK, palette and transparent images converted to RGB).

    Args:
        split: A DataFrame with a ``path`` column and, for labelled data, ``label_id``
            (e.g. ``splits.train``); or a sequence of images of any kind
            :func:`~clothingclf.open_image` reads (their label id is -1).
        transform: Applied to each Pillow image (e.g. a torchvision transform, or
            :meth:`Preprocessing.eval_transform
            <clothingclf.backbones.Preprocessing.eval_transform>`); the image itself is
            returned when ``None``.
        draft_size: Passed to :func:`~clothingclf.open_image`: JPEGs may be decoded at a
            reduced size no smaller than this (width, height), which is much faster.

    Raises:
        MissingColumnsError: ``split`` is a table without a ``path`` column.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=5, image_size=16)
        >>> data = ClothingDataset(clothingclf.prepare_dataset(root).train)
        >>> image, label = data[0]
        >>> image.mode, image.size, type(label)
        ('RGB', (16, 16), <class 'int'>)
    """

    def __init__(
        self,
        split: pd.DataFrame | Sequence[Any],
        transform: Callable[[Any], Any] | None = None,
        *,
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        self.items: Sequence[Any]
        if isinstance(split, pd.DataFrame):
            if "path" not in split.columns:
                raise MissingColumnsError(
                    f"The split lacks column 'path' (found: "
                    f"{', '.join(map(str, split.columns))}). Expected a split of "
                    "prepare_dataset(), e.g. splits.train."
                )
            self.items = [str(p) for p in split["path"]]
            labelled = "label_id" in split.columns
            self.labels = [int(i) for i in split["label_id"]] if labelled else None
        else:
            self.items, self.labels = split, None
        self.transform = transform
        self.draft_size = draft_size

    @property
    def paths(self) -> list[str]:
        """The items as strings (the file paths of a split)."""
        return [str(item) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        item = self.items[index]
        try:
            image = open_image(item, draft_size=self.draft_size)
        except InvalidImageError as error:
            if isinstance(item, (str, os.PathLike)) or len(self.items) == 1:
                raise  # the message names the file
            raise InvalidImageError(f"Input {index}: {error}") from None
        label = -1 if self.labels is None else self.labels[index]
        return (image if self.transform is None else self.transform(image)), label
