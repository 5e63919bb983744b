"""Data: from the files on disk to the splits a model trains on.

Data flows one way through these modules; each imports only those listed before it and
clothingclf's lower layers (images, backbones, exceptions, path helpers):

* ``tables``: finding and reading ``images.csv`` and the images folder;
* ``splitting``: which row goes to train, validation or test;
* ``report``: :class:`~clothingclf.DatasetReport`, what was dropped and why;
* ``splits``: :class:`~clothingclf.DatasetSplits`, saved and read back by
  :func:`~clothingclf.load_splits`;
* ``dataset``: :class:`~clothingclf.ClothingDataset`, a split (or any list of images) for
  PyTorch: the one dataset the image cache and ``predict`` decode through;
* ``prepare``: :func:`~clothingclf.prepare_dataset`, the steps from folder to splits;
* :mod:`clothingclf.data.cache`: each photo decoded once into a uint8 tensor for training;
* :mod:`clothingclf.data.synthetic`: a small drawn dataset in the real one's layout.
"""

from __future__ import annotations

from .cache import build_image_cache
from .dataset import ClothingDataset
from .prepare import balanced_class_weights, prepare_dataset
from .report import DatasetReport
from .sources import open_splits
from .splits import DatasetSplits, is_splits, load_splits
from .tables import IMAGE_FOLDERS, label_ids

__all__ = [
    "IMAGE_FOLDERS",
    "ClothingDataset",
    "DatasetReport",
    "DatasetSplits",
    "balanced_class_weights",
    "build_image_cache",
    "is_splits",
    "label_ids",
    "load_splits",
    "open_splits",
    "prepare_dataset",
]
