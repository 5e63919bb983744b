"""Shared fixtures: seeding, small synthetic data made on the fly, and the model files that
several test files load (never overwrite)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from clothingclf import DatasetSplits


@pytest.fixture(autouse=True)
def _seed_everything() -> Iterator[None]:
    """Every test starts from the same random state, so a failure reproduces."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def _float32_training() -> Iterator[None]:
    """Fits train in float32 on every machine, as on CPUs without native bfloat16 (where
    ``amp="auto"`` means float32 anyway). The tests' networks see 32 px images, and on CPUs
    with native bfloat16 the oneDNN bfloat16 convolution of torch 2.14 reads memory it did
    not write when a map of 3 x 2 goes to 2 x 1 (a 32 x 43 portrait view of ResNet-18):
    results differ from run to run, some NaN (benchmarks/RESULTS.md, 2026-12-05). Tests of
    bfloat16 itself ask for it (``amp="bf16"``, ``precision="bfloat16"``) at larger sizes."""
    from clothingclf.training import precision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "_cpu_has_native_bf16", lambda: False)
        yield


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset on disk: 4 classes x 24 images, 64 px (read-only: copy it
    before changing anything)."""
    from clothingclf.data.synthetic import make_synthetic

    return make_synthetic(
        tmp_path_factory.mktemp("synthetic"),
        classes=("Dress", "Pants", "Shoes", "T-Shirt"),
        n_per_class=24,
        image_size=64,
        seed=0,
    )


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_root: Path) -> DatasetSplits:
    """`prepare_dataset(synthetic_root)`: 77 train / 9 val / 10 test images, 4 classes."""
    from clothingclf import prepare_dataset

    return prepare_dataset(synthetic_root)


@pytest.fixture(scope="session")
def tiny_model_file(
    synthetic_splits: DatasetSplits, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A ResNet-18 (random init, 32 px, 2 epochs) fitted on `synthetic_splits` and saved
    (read-only: load it, never overwrite it). Used by the export, report and example tests."""
    from _nets import resnet_classifier

    clf = resnet_classifier(epochs=2).fit(synthetic_splits)
    path = tmp_path_factory.mktemp("tiny_model") / "model.safetensors"
    clf.save(path)
    return path


@pytest.fixture(scope="session")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`clothingclf train synthetic_root` (seed recipe, random init, 32 px, 1 epoch): the
    model file that the CLI tests evaluate, predict with and report on (read-only)."""
    from clothingclf.cli import main

    model = tmp_path_factory.mktemp("cli") / "model.safetensors"
    status = main(
        [
            "train",
            str(synthetic_root),
            "--output",
            str(model),
            "--recipe",
            "seed",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--workers",
            "0",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    return model
