"""clothingclf.backbones.preprocessing: the evaluation view, square or not, as the weights
and torchvision define it, and as a model file records it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from _image_zoo import striped
from clothingclf.backbones import CoverResize, Preprocessing
from clothingclf.data.cache import decode_square
from clothingclf.exceptions import InvalidParameterError, ModelFileError

PORTRAIT = 4 / 3


def test_cover_resize_keeps_a_portrait_photo_whole_and_crops_the_rest() -> None:
    # A 3:4 photo fills a 3:4 canvas exactly: nothing is cut, the stripes stay.
    out = np.asarray(CoverResize(30, 40)(striped(300, 400, share=16)))
    assert out.shape == (40, 30, 3)
    assert out[0, 15].tolist() == [255, 0, 0] and out[-1, 15].tolist() == [0, 0, 255]
    # The centre square of the same photo loses both stripes (its top and bottom eighths).
    square = decode_square(striped(300, 400, share=16), 30).permute(1, 2, 0).numpy()
    assert square[0, 15].tolist() == [0, 255, 0] and square[-1, 15].tolist() == [0, 255, 0]
    # A landscape photo is scaled to the canvas height and loses its sides.
    assert CoverResize(30, 40)(Image.new("RGB", (90, 60))).size == (30, 40)
    assert "width=30, height=40" in repr(CoverResize(30, 40))


def test_preprocessing_with_an_aspect() -> None:
    prep = Preprocessing(image_size=30, resize_size=36, mean=(0, 0, 0), std=(1, 1, 1))
    tall = prep.with_aspect(PORTRAIT)
    assert prep.aspect == 1.0 and prep.input_shape == (30, 30) and prep.resize_shape == (36, 36)
    assert tall.input_shape == (40, 30) and tall.resize_shape == (48, 36)
    assert tall.with_image_size(60).input_shape == (80, 60)  # the aspect stays
    tensor = tall.eval_transform()(striped(300, 400))
    assert tensor.shape == (3, 40, 30)
    # Only the margin between the canvas (48 px tall) and the crop (40 px) is cut: the
    # crop starts 4 px into the canvas, which the 6 px red band still covers.
    assert tensor[:, 0, 15].tolist() == [1.0, 0.0, 0.0]
    # The square preprocessing is unchanged by the new field.
    assert prep.eval_transform()(striped(300, 400)).shape == (3, 30, 30)
    assert Preprocessing.from_dict(tall.to_dict()) == tall
    old = {"image_size": 30, "resize_size": 36}  # a record written before the field
    assert Preprocessing.from_dict(old).aspect == 1.0
    for bad in (0.1, 5, "tall", True, math.nan):
        with pytest.raises(InvalidParameterError, match="aspect"):
            Preprocessing(image_size=30, resize_size=36, aspect=bad)
    with pytest.raises(ModelFileError, match="aspect"):
        Preprocessing.from_dict({**old, "aspect": 9})


def test_preprocessing_matches_torchvision_weights_transforms() -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    from clothingclf.backbones.torchvision import _preprocessing_from_enum

    prep = _preprocessing_from_enum(weights, 224)
    assert prep == Preprocessing(image_size=224, resize_size=256)
    image = Image.effect_mandelbrot((300, 260), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    ours = prep.eval_transform()(image)
    theirs = weights.transforms()(image)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # Another crop size scales the resize with it: 256/224 * 112 = 128.
    assert _preprocessing_from_enum(weights, 112).resize_size == 128


def test_preprocessing_round_trips_and_validates() -> None:
    prep = Preprocessing(image_size=40, resize_size=46, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(InvalidParameterError, match="resize_size"):
        Preprocessing(image_size=40, resize_size=30)
    with pytest.raises(ModelFileError, match="image_size"):
        Preprocessing.from_dict({"resize_size": 3})
