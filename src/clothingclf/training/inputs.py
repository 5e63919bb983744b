"""This process's shard of each split, decoded once into the uint8 image cache.

The training loop reads its images from here: :func:`load_data` takes this process's rows
of the training and validation tables (all of them outside ``torchrun``) and decodes each
photo once (:func:`~clothingclf.data.cache.build_image_cache`) at the canvas of the
network's :class:`~clothingclf.backbones.Preprocessing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..backbones import Preprocessing
from ..data import build_image_cache
from ..settings import RunOptions, TrainConfig
from .processes import Processes, shard

__all__: list[str] = []


@dataclass(frozen=True)
class Data:
    """This process's shard of each split, decoded once into the uint8 image cache."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor | None
    val_labels: torch.Tensor | None
    val_real: torch.Tensor | None  # False for the padding rows of a distributed shard
    train_soft: torch.Tensor | None = None  # a teacher's probabilities per training row

    @property
    def has_val(self) -> bool:
        return self.val_images is not None


def _decode(
    table: pd.DataFrame, rows: np.ndarray, prep: Preprocessing, options: RunOptions, bar: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cached images and the labels of ``rows`` of ``table``."""
    images = build_image_cache(
        table["path"].astype(str).to_numpy()[rows].tolist(),
        size=prep.resize_size,
        interpolation=prep.interpolation,
        cache_dir=options.cache_dir,
        num_workers=options.num_workers if len(rows) >= 256 else 0,
        progress=bar,
        aspect=prep.aspect,
    )
    return images, torch.as_tensor(table["label_id"].to_numpy()[rows], dtype=torch.long)


def load_data(
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    prep: Preprocessing,
    config: TrainConfig,
    options: RunOptions,
    processes: Processes,
    bar: bool,
    soft: np.ndarray | None = None,
) -> Data:
    """This process's shard of ``train`` and ``val``, decoded (with ``soft``'s rows, a
    teacher's probabilities, when given)."""
    train_rows, _ = shard(len(train), processes, config.seed)
    train_images, train_labels = _decode(train, train_rows, prep, options, bar)
    train_soft = None if soft is None else torch.as_tensor(soft[train_rows], dtype=torch.float32)
    if val is None or len(val) == 0:
        return Data(train_images, train_labels, None, None, None, train_soft)
    val_rows, val_real = shard(len(val), processes, config.seed + 1)
    val_images, val_labels = _decode(val, val_rows, prep, options, False)
    val_mask = torch.as_tensor(val_real)
    return Data(train_images, train_labels, val_images, val_labels, val_mask, train_soft)
