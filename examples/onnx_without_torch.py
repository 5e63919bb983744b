"""Label photos with an exported ONNX model, without torch or clothingclf installed.

Needs only ``onnxruntime``, ``numpy`` and ``pillow``. Export the model first, then copy
``model.onnx`` and ``model.onnx.json`` wherever they are needed::

    clothingclf export model.safetensors --format onnx --output model.onnx
    python examples/onnx_without_torch.py model.onnx photo1.jpg photo2.jpg

The preprocessing below reproduces clothingclf's to the last bit: resize (Pillow's
antialiased filter) so the shorter side fits, or, for a model trained on a non-square view
(``aspect`` in the JSON), so the photo covers the view's canvas; centre crop; scale to
[0, 1]; normalise per channel. A model of several networks (the ``fast`` recipe's: one on
the centre square, one on the whole photo) has one input per network, listed under
``inputs`` in the JSON, each prepared its own way from the same photo; the graph averages
their probabilities.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def open_photo(path: str | Path, inputs: list[dict[str, Any]]) -> Image.Image:
    """Decode a photo as clothingclf does: EXIF orientation applied, RGB."""
    with Image.open(path) as raw:
        # clothingclf lets the JPEG decoder shrink big photos first (a power of two, never
        # below what the largest canvas needs): faster, and it keeps the probabilities
        # identical to predict().
        if raw.format == "JPEG":
            width = max(item["resize_size"] for item in inputs)
            height = max(round(item["resize_size"] * item.get("aspect", 1.0)) for item in inputs)
            raw.draft("RGB", (width, height))
        return ImageOps.exif_transpose(raw).convert("RGB")


def preprocess(image: Image.Image, meta: dict[str, Any]) -> np.ndarray:
    """One photo -> float32 array 3 x H x W for one input, exactly as clothingclf does."""
    resample = Image.Resampling.BICUBIC
    if meta["interpolation"] == "bilinear":
        resample = Image.Resampling.BILINEAR
    width, height = image.size
    size = meta["resize_size"]
    aspect = meta.get("aspect", 1.0)
    if aspect == 1.0:  # the shorter side to resize_size, keep the centre square (the canvas)
        if width <= height:
            new_size = (size, int(size * height / width))
        else:
            new_size = (int(size * width / height), size)
        image = _centre(image.resize(new_size, resample), (size, size))
    else:  # cover a resize_size x round(resize_size * aspect) canvas, keep its centre
        canvas = (size, round(size * aspect))
        scale = max(canvas[0] / width, canvas[1] / height)
        new_size = (max(canvas[0], round(width * scale)), max(canvas[1], round(height * scale)))
        image = _centre(image.resize(new_size, resample), canvas)
    crop = (meta["input_shape"][3], meta["input_shape"][2])  # width, height
    image = _centre(image, crop)  # the network's input, from the canvas
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(meta["mean"], dtype=np.float32)
    std = np.asarray(meta["std"], dtype=np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1)


def _centre(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The centre ``size`` (width, height) of ``image``, as torchvision's ``center_crop``
    places it (offsets rounded half to even)."""
    left = round((image.size[0] - size[0]) / 2.0)
    top = round((image.size[1] - size[1]) / 2.0)
    return image.crop((left, top, left + size[0], top + size[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .onnx file (its .onnx.json must lie beside it)")
    parser.add_argument("images", nargs="+", help="photos to label")
    parser.add_argument("--top-k", type=int, default=1, help="labels per photo (1)")
    args = parser.parse_args(argv)

    meta = json.loads(Path(args.model + ".json").read_text(encoding="utf-8"))
    assert meta["output"] == "probabilities"  # the softmax is part of the graph
    inputs = meta.get("inputs") or [meta]  # older exports: one input, described at the top
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    photos = [open_photo(p, inputs) for p in args.images]
    feed = {
        item["input_name"]: np.stack([preprocess(photo, item) for photo in photos])
        for item in inputs
    }
    (probabilities,) = session.run([meta["output_name"]], feed)
    for path, row in zip(args.images, probabilities, strict=True):
        best = np.argsort(-row, kind="stable")[: args.top_k]
        ranked = "  ".join(f"{meta['classes'][i]} {row[i]:.4f}" for i in best)
        print(f"{path}\t{ranked}")


if __name__ == "__main__":
    main()
