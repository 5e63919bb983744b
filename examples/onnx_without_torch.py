"""Label photos with an exported ONNX model, without torch or clothingclf installed.

Needs only ``onnxruntime``, ``numpy`` and ``pillow``. Export the model first, then copy
``model.onnx`` and ``model.onnx.json`` wherever they are needed::

    clothingclf export model.pt --format onnx --output model.onnx
    python examples/onnx_without_torch.py model.onnx photo1.jpg photo2.jpg

The preprocessing below reproduces clothingclf's to the last bit: resize the shorter side
(Pillow's antialiased filter), centre crop, scale to [0, 1], normalise per channel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def preprocess(path: str | Path, meta: dict[str, Any]) -> np.ndarray:
    """One photo -> float32 array 3 x S x S, exactly as clothingclf prepares it."""
    with Image.open(path) as raw:
        # clothingclf lets the JPEG decoder shrink big photos first (a power of two, never
        # below resize_size): faster, and it keeps the probabilities identical to predict().
        if raw.format == "JPEG":
            raw.draft("RGB", (meta["resize_size"], meta["resize_size"]))
        image = ImageOps.exif_transpose(raw).convert("RGB")
    width, height = image.size
    size = meta["resize_size"]
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    resample = Image.Resampling.BICUBIC
    if meta["interpolation"] == "bilinear":
        resample = Image.Resampling.BILINEAR
    image = image.resize(new_size, resample)
    crop = meta["input_size"]
    left = round((new_size[0] - crop) / 2.0)
    top = round((new_size[1] - crop) / 2.0)
    image = image.crop((left, top, left + crop, top + crop))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(meta["mean"], dtype=np.float32)
    std = np.asarray(meta["std"], dtype=np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .onnx file (its .onnx.json must lie beside it)")
    parser.add_argument("images", nargs="+", help="photos to label")
    parser.add_argument("--top-k", type=int, default=1, help="labels per photo (1)")
    args = parser.parse_args(argv)

    meta = json.loads(Path(args.model + ".json").read_text(encoding="utf-8"))
    assert meta["output"] == "probabilities"  # the softmax is part of the graph
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    batch = np.stack([preprocess(p, meta) for p in args.images])
    (probabilities,) = session.run([meta["output_name"]], {meta["input_name"]: batch})
    for path, row in zip(args.images, probabilities, strict=True):
        best = np.argsort(-row, kind="stable")[: args.top_k]
        ranked = "  ".join(f"{meta['classes'][i]} {row[i]:.4f}" for i in best)
        print(f"{path}\t{ranked}")


if __name__ == "__main__":
    main()
