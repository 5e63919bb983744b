"""Synthetic clothing photos in the on-disk layout of the real dataset.

:func:`make_synthetic` draws simple garment silhouettes (T-shirt, trousers, dress, shoe,
hat, skirt, ...) that vary in colour, position, scale, rotation and background, and
writes them as JPEG files beside an ``images.csv``, exactly like the clothing-dataset
release. Tests, examples and demos read real files through the real code path, and the
classes are easy enough that a small CNN separates them within a minute on a CPU.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .._paths import write_atomically

__all__ = ["SHAPES", "make_synthetic"]

_Polygon = tuple[tuple[float, float], ...]

#: The silhouettes :func:`make_synthetic` can draw, by label name (the real dataset's names
#: where they match). Coordinates are in [-1, 1], y pointing down; a class is one or more
#: polygons. Labels not listed here get a random polygon derived from the name.
SHAPES: dict[str, tuple[_Polygon, ...]] = {
    "T-Shirt": (
        (
            (-0.35, -0.7),
            (-0.15, -0.75),
            (0.0, -0.62),
            (0.15, -0.75),
            (0.35, -0.7),
            (0.78, -0.38),
            (0.6, -0.12),
            (0.4, -0.28),
            (0.4, 0.75),
            (-0.4, 0.75),
            (-0.4, -0.28),
            (-0.6, -0.12),
            (-0.78, -0.38),
        ),
    ),
    "Longsleeve": (
        (
            (-0.35, -0.7),
            (-0.15, -0.75),
            (0.0, -0.62),
            (0.15, -0.75),
            (0.35, -0.7),
            (0.82, 0.6),
            (0.62, 0.7),
            (0.4, 0.0),
            (0.4, 0.75),
            (-0.4, 0.75),
            (-0.4, 0.0),
            (-0.62, 0.7),
            (-0.82, 0.6),
        ),
    ),
    "Pants": (
        (
            (-0.4, -0.85),
            (0.4, -0.85),
            (0.5, 0.88),
            (0.12, 0.88),
            (0.0, -0.2),
            (-0.12, 0.88),
            (-0.5, 0.88),
        ),
    ),
    "Shorts": (
        (
            (-0.55, -0.4),
            (0.55, -0.4),
            (0.68, 0.38),
            (0.1, 0.42),
            (0.0, 0.0),
            (-0.1, 0.42),
            (-0.68, 0.38),
        ),
    ),
    "Dress": (
        (
            (-0.22, -0.88),
            (-0.12, -0.88),
            (-0.08, -0.6),
            (0.08, -0.6),
            (0.12, -0.88),
            (0.22, -0.88),
            (0.26, -0.15),
            (0.7, 0.88),
            (-0.7, 0.88),
            (-0.26, -0.15),
        ),
    ),
    "Skirt": (((-0.32, -0.5), (0.32, -0.5), (0.75, 0.55), (-0.75, 0.55)),),
    "Shoes": (
        (
            (-0.85, 0.32),
            (-0.85, -0.25),
            (-0.5, -0.3),
            (-0.42, -0.05),
            (0.2, 0.05),
            (0.78, 0.14),
            (0.85, 0.32),
        ),
    ),
    "Hat": (
        ((-0.88, 0.18), (0.88, 0.18), (0.8, 0.34), (-0.8, 0.34)),
        ((-0.45, 0.2), (-0.4, -0.35), (0.0, -0.46), (0.4, -0.35), (0.45, 0.2)),
    ),
}

_DEFAULT_CLASSES = ("Dress", "Hat", "Pants", "Shoes", "Skirt", "T-Shirt")


def _shape_for(label: str) -> tuple[_Polygon, ...]:
    if label in SHAPES:
        return SHAPES[label]
    # A star-like polygon whose radii are fixed by the name, so the class is learnable.
    rng = random.Random(zlib.crc32(label.encode("utf-8")))
    n = rng.randint(5, 9)
    points = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        radius = rng.uniform(0.35, 0.9)
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return (tuple(points),)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    a = rng.uniform(0, 255, size=3)
    b = np.clip(a + rng.uniform(-80, 80, size=3), 0, 255)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    if rng.random() < 0.5:
        t = t.transpose(1, 0, 2)
    image = a + (b - a) * t
    image = np.broadcast_to(image, (size, size, 3)) + rng.normal(0.0, 6.0, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _garment_colour(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    ends = background[[0, -1, 0, -1], [0, 0, -1, -1]].astype(np.float64)
    best, colour = -1.0, np.zeros(3)
    for _ in range(20):
        candidate = rng.uniform(0, 255, size=3)
        contrast = float(np.abs(candidate - ends).sum(axis=1).min())
        if contrast > best:
            best, colour = contrast, candidate
        if contrast > 180:
            break
    return (int(colour[0]), int(colour[1]), int(colour[2]))


def _draw(label: str, rng: np.random.Generator, size: int) -> Image.Image:
    background = _background(rng, size)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    colour = _garment_colour(rng, background)
    scale = rng.uniform(0.34, 0.46) * size
    angle = math.radians(rng.uniform(-15.0, 15.0))
    cx = size / 2 + rng.uniform(-0.1, 0.1) * size
    cy = size / 2 + rng.uniform(-0.1, 0.1) * size
    flip = -1.0 if rng.random() < 0.5 else 1.0
    cos, sin = math.cos(angle), math.sin(angle)
    for polygon in _shape_for(label):
        points = [
            (cx + scale * (flip * x * cos - y * sin), cy + scale * (flip * x * sin + y * cos))
            for x, y in polygon
        ]
        draw.polygon(points, fill=colour)
    return image


def make_synthetic(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] = _DEFAULT_CLASSES,
    n_per_class: int = 40,
    image_size: int = 64,
    seed: int = 0,
    senders: int | None = None,
) -> Path:
    """Write a synthetic clothing dataset in the layout of the real one.

    The folder gets ``images.csv`` (columns ``image``, ``sender_id``, ``label``, ``kids``)
    and ``images/<image>.jpg`` (JPEG, quality 90). Each photo is one garment silhouette
    (see :data:`SHAPES`) with a random colour, position, scale, rotation, mirror image and
    gradient background. The same arguments always give the same files.

    Args:
        root: The folder to write into; created if needed. Existing files of the same
            names are overwritten.
        classes: Label names. Names in :data:`SHAPES` get a garment silhouette; any other
            name gets a distinct polygon derived from the name.
        n_per_class: Images per class.
        image_size: Side of the square images, in pixels.
        seed: Seed of everything random.
        senders: How many distinct ``sender_id`` values to spread the photos over;
            default one per 8 photos (at least 2).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``classes`` is empty or has duplicates, or a size is below 1 (or the
            image below 8 pixels).

    Example:
        >>> import tempfile, pandas as pd
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=2, image_size=32)
        >>> table = pd.read_csv(root / "images.csv")
        >>> len(table), sorted(table["label"].unique())[:3]
        (12, ['Dress', 'Hat', 'Pants'])
    """
    labels = [str(c) for c in classes]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"classes must be non-empty and distinct; got {labels!r}.")
    if n_per_class < 1 or image_size < 8:
        raise ValueError(
            f"n_per_class must be >= 1 and image_size >= 8; got {n_per_class} and {image_size}."
        )
    total = n_per_class * len(labels)
    n_senders = senders if senders is not None else max(2, total // 8)
    if n_senders < 1:
        raise ValueError(f"senders must be >= 1; got {n_senders}.")
    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    id_rng = random.Random(seed)
    draw_rng = np.random.default_rng(seed)
    order = [label for label in labels for _ in range(n_per_class)]
    random.Random(seed + 1).shuffle(order)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "sender_id", "label", "kids"])
    for label in order:
        image_id = str(uuid.UUID(int=id_rng.getrandbits(128), version=4))
        sender = 100 + id_rng.randrange(n_senders)
        kids = id_rng.random() < 0.1
        _draw(label, draw_rng, image_size).save(images / f"{image_id}.jpg", quality=90)
        writer.writerow([image_id, sender, label, kids])
    write_atomically(root / "images.csv", buffer.getvalue())
    return root
