"""clothingclf.data.synthetic: the synthetic dataset is real files, deterministic and learnable."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from _nets import tiny_features
from clothingclf import prepare_dataset
from clothingclf.data.synthetic import SHAPES, make_synthetic


def test_layout_matches_the_real_dataset(tmp_path: Path) -> None:
    root = make_synthetic(tmp_path, n_per_class=3, image_size=40, seed=1)
    assert root == tmp_path
    table = pd.read_csv(root / "images.csv")
    assert list(table.columns) == ["image", "sender_id", "label", "kids"]
    assert len(table) == 18 and table["image"].is_unique
    assert table["label"].value_counts().to_dict() == {
        c: 3 for c in ("Dress", "Hat", "Pants", "Shoes", "Skirt", "T-Shirt")
    }
    assert table["kids"].dtype == bool and table["sender_id"].dtype == np.int64
    for image in table["image"]:
        with Image.open(root / "images" / f"{image}.jpg") as picture:
            assert picture.format == "JPEG" and picture.size == (40, 40)
    assert set(table["label"]) <= set(SHAPES)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = make_synthetic(tmp_path / "a", n_per_class=2, image_size=32, seed=5)
    b = make_synthetic(tmp_path / "b", n_per_class=2, image_size=32, seed=5)
    c = make_synthetic(tmp_path / "c", n_per_class=2, image_size=32, seed=6)
    assert (a / "images.csv").read_bytes() == (b / "images.csv").read_bytes()
    first = pd.read_csv(a / "images.csv")["image"][0]
    assert (a / "images" / f"{first}.jpg").read_bytes() == (
        b / "images" / f"{first}.jpg"
    ).read_bytes()
    assert (a / "images.csv").read_bytes() != (c / "images.csv").read_bytes()


def test_small_sets_are_quick(tmp_path: Path) -> None:
    start = time.perf_counter()
    make_synthetic(tmp_path, n_per_class=20, image_size=64)
    assert time.perf_counter() - start < 2.0


def test_unknown_class_names_get_their_own_shape(tmp_path: Path) -> None:
    root = make_synthetic(tmp_path, classes=["Blazer", "Body, with comma"], n_per_class=2)
    table = pd.read_csv(root / "images.csv")
    assert sorted(set(table["label"])) == ["Blazer", "Body, with comma"]
    splits = prepare_dataset(root, test_size=0, val_size=0)
    assert len(splits.train) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": []}, "non-empty and distinct"),
        ({"classes": ["Hat", "Hat"]}, "non-empty and distinct"),
        ({"n_per_class": 0}, "n_per_class must be >= 1"),
        ({"image_size": 4}, "image_size >= 8"),
        ({"senders": 0}, "senders must be >= 1"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_synthetic(tmp_path, **kwargs)  # type: ignore[arg-type]


def _tensors(split: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in split["path"]])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.25, torch.tensor(split["label_id"].tolist())


def test_a_small_cnn_learns_the_classes(tmp_path: Path) -> None:
    """Six garments at 32 px: a three-layer CNN goes from 1/6 to well above chance in
    10 epochs over 360 images (about 5 s of CPU), tested on photos of another seed."""
    train_root = make_synthetic(tmp_path / "train", n_per_class=60, image_size=32, seed=1)
    test_root = make_synthetic(tmp_path / "test", n_per_class=15, image_size=32, seed=2)
    train = prepare_dataset(train_root, test_size=0, val_size=0, verify_images=False)
    test = prepare_dataset(test_root, test_size=0, val_size=0, verify_images=False)
    assert train.classes == test.classes
    x, y = _tensors(train.train)
    x_test, y_test = _tensors(test.train)
    torch.manual_seed(0)
    model = nn.Sequential(tiny_features(), nn.Linear(256, len(train.classes)))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(32):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.6, accuracy  # chance: 0.17
