"""Fit a small network on a synthetic set through the public API, and report accuracy.

Run by ``tests/test_distributed.py`` twice: under
``python -m torch.distributed.run --nproc_per_node=2`` and as one plain process. Rank 0
writes ``{"world": ..., "val_accuracy": ..., "test_accuracy": ...}`` as JSON to the output
path; the other ranks write nothing.

    python tests/distributed_fit.py DATA_ROOT OUTPUT.json
"""

from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn

from clothingclf import ClothingClassifier, prepare_dataset


def backbone() -> nn.Module:
    """Three strided convolutions with BatchNorm: learns the shapes in a few epochs."""
    layers: list[nn.Module] = []
    for cin, cout in ((3, 16), (16, 32), (32, 32)):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def main(root: str, output: str) -> dict[str, float]:
    torch.manual_seed(0)
    splits = prepare_dataset(root, test_size=0.2, val_size=0.2, verify_images=False)
    clf = ClothingClassifier(
        backbone=backbone(),
        weights=None,
        image_size=32,
        recipe="fast",
        epochs=20,
        batch_size=16,  # the global batch: 8 per process under two processes
        optimizer="nesterov",
        lr=0.01,
        keep="final",  # 32 validation images are too few to pick an epoch by
        num_workers=0,
        device="cpu",
        progress=bool(os.environ.get("FIT_PROGRESS")),
        amp="off",
        size_schedule=(),
        min_scale=0.8,
        head_epochs=2,
        freeze_bn=False,
        tta=False,
        label_smoothing=0.0,
    )
    clf.fit(splits)
    train = clf.evaluate(splits.train)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    result = {
        "world": float(world),
        "val_accuracy": float(clf.best_val_accuracy_ or 0.0),
        "train_accuracy": float(train.accuracy),
        "n_train": float(train.n_samples),
        "networks": float(len(clf.networks_)),
    }
    if int(os.environ.get("RANK", "0")) == 0:
        with open(output, "w", encoding="utf-8") as stream:
            json.dump(result, stream)
    return result


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
