"""Decode each photo once: a uint8 tensor cache of resized, centre-cropped images.

Training for many epochs the plain way decodes every JPEG in every epoch; on a 2-core CPU
that costs as much as the network's forward pass at low resolution. :func:`build_image_cache`
decodes and resizes every photo once per run (in parallel DataLoader workers if asked),
keeps the result as one ``N x 3 x S x S`` uint8 tensor (about 0.2 MB per image at
``S = 256``), and lets the training loop augment tensors instead of files.

* In memory by default; with ``cache_dir`` the tensor lives in a memory-mapped ``.npy``
  file, named by a key over every file's path, size and modification time plus the target
  size, so a second run on the same files starts without decoding anything, and any change
  to a file (or to the list of files) gives a new key.
* JPEG draft mode: when the photo is at least twice the target on both sides, the decoder
  itself shrinks it by a power of two, which is several times faster than decoding it whole.
* Each image becomes the canvas of its view (:func:`~clothingclf.backbones.resize_to_canvas`,
  the first step of :meth:`Preprocessing.canvas <clothingclf.backbones.Preprocessing.canvas>`):
  its shorter side resized to ``size`` and the centre square kept, or with ``aspect``
  (height / width) other than 1 resized to cover a ``size`` × ``round(size * aspect)``
  canvas. Validation crops the centre of these tensors exactly as ``predict`` does, so a
  model is scored on the pixels it will see.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from .._paths import path_kind, replacing, write_atomically
from ..backbones import resize_to_canvas, scaled_height
from ..exceptions import InvalidParameterError, SaveError
from ..images import open_image
from .dataset import ClothingDataset

__all__ = ["build_image_cache", "cache_key", "decode_square", "decode_view"]

#: Bump when the way images are decoded or resized changes, so old disk caches are not reused.
_CACHE_VERSION = 1

Interpolation = Literal["bilinear", "bicubic"]


def decode_square(
    path: str | os.PathLike[str] | Image.Image,
    size: int,
    *,
    interpolation: Interpolation = "bilinear",
) -> torch.Tensor:
    """Decode one image, resize its shorter side to ``size`` and crop the centre square.

    Args:
        path: An image file (or an already decoded Pillow image).
        size: Side of the square result, in pixels.
        interpolation: Resampling filter of the resize (antialiased).

    Returns:
        A ``3 x size x size`` uint8 tensor.

    Raises:
        InvalidImageError: The file cannot be decoded (from :func:`clothingclf.open_image`).
        ImageNotFoundError: The file does not exist.

    Example:
        >>> from PIL import Image
        >>> decode_square(Image.new("RGB", (60, 40), (255, 0, 0)), 32)[:, 0, 0].tolist()
        [255, 0, 0]
    """
    return decode_view(path, size, interpolation=interpolation)


def decode_view(
    path: str | os.PathLike[str] | Image.Image,
    size: int,
    *,
    interpolation: Interpolation = "bilinear",
    aspect: float = 1.0,
) -> torch.Tensor:
    """Decode one image into the canvas of a view ``size`` wide and ``aspect`` times as tall.

    With ``aspect`` 1 this is :func:`decode_square`. Otherwise the image is resized to cover
    ``size`` × ``round(size * aspect)`` px (width × height) and centre-cropped to it, as the
    evaluation transform of a :class:`~clothingclf.backbones.Preprocessing` with that
    ``aspect`` does.

    Args:
        path: An image file (or an already decoded Pillow image).
        size: Width of the result, in pixels.
        interpolation: Resampling filter of the resize (antialiased).
        aspect: Height / width of the result.

    Returns:
        A ``3 x round(size * aspect) x size`` uint8 tensor.

    Raises:
        InvalidImageError: The file cannot be decoded (from :func:`clothingclf.open_image`).
        ImageNotFoundError: The file does not exist.

    Example:
        >>> from PIL import Image
        >>> decode_view(Image.new("RGB", (60, 40)), 30, aspect=4 / 3).shape
        torch.Size([3, 40, 30])
    """
    image = open_image(path, draft_size=(size, scaled_height(size, aspect)))
    return resize_to_canvas(image, size, aspect=aspect, interpolation=interpolation)


def cache_key(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    *,
    interpolation: Interpolation,
    aspect: float = 1.0,
) -> str:
    """A key that changes when any file, the list of files or the target size changes.

    Built from each file's absolute path, byte size and modification time (nanoseconds),
    not from its contents, so computing it costs one ``stat`` per file.

    Args:
        paths: The image files, in cache order.
        size: Side of the cached squares (their width, with ``aspect``).
        interpolation: Resampling filter.
        aspect: Height / width of the cached images.

    Returns:
        A 24-character hexadecimal string.

    Example:
        >>> key = cache_key([], 32, interpolation="bilinear")
        >>> key == cache_key([], 32, interpolation="bilinear"), len(key)
        (True, 24)
    """
    shape = f"{size}" if aspect == 1.0 else f"{size}|aspect={float(aspect)!r}"
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{shape}|{interpolation}".encode())
    for path in paths:
        absolute = os.path.abspath(os.fspath(path))
        try:
            stat = os.stat(absolute)
            stamp = f"{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"\n{absolute}|{stamp}".encode())
    return digest.hexdigest()[:24]


def _fill(
    target: np.ndarray | torch.Tensor,
    paths: Sequence[str],
    size: int,
    interpolation: Interpolation,
    num_workers: int,
    progress: bool,
    aspect: float = 1.0,
) -> None:
    canvas = functools.partial(
        resize_to_canvas, width=size, aspect=aspect, interpolation=interpolation
    )
    draft = (size, scaled_height(size, aspect))
    dataset = ClothingDataset(paths, canvas, draft_size=draft)
    batch = 32
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=False, num_workers=num_workers
    )
    done = 0
    show = progress and sys.stderr.isatty()
    for images, _ in loader:
        chunk = images.numpy() if isinstance(target, np.ndarray) else images
        target[done : done + len(images)] = chunk
        done += len(images)
        if show:
            print(f"\rdecoding images {done}/{len(paths)}", end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)


def build_image_cache(
    paths: Sequence[str | os.PathLike[str]],
    *,
    size: int,
    interpolation: Interpolation = "bilinear",
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int = 0,
    progress: bool = False,
    aspect: float = 1.0,
) -> torch.Tensor:
    """Decode every image once into an ``N x 3 x size x size`` uint8 tensor.

    Args:
        paths: The image files; row ``i`` of the result is ``paths[i]``.
        size: Side of each cached square (the shorter side is resized to it, then the
            centre square is kept). Use the preprocessing's ``resize_size``.
        interpolation: Resampling filter of the resize.
        aspect: Height / width of the cached images (see :func:`decode_view`): the tensor
            is ``N x 3 x round(size * aspect) x size``. Use the preprocessing's ``aspect``.
        cache_dir: If given, keep the tensor in a memory-mapped file
            ``<cache_dir>/images-<key>.npy`` (written once, atomically; reused while no file
            changes) instead of in memory. For sets that do not fit in memory.
        num_workers: DataLoader worker processes that decode in parallel (0: in this process).
        progress: Print a counter to stderr while decoding (only when it is a terminal).

    Returns:
        A uint8 tensor; memory-mapped (copy-on-write) when ``cache_dir`` is given.

    Raises:
        InvalidImageError: A file cannot be decoded; the message names it.
        ImageNotFoundError: A file does not exist.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.new("RGB", (40, 30), (0, 128, 255)).save(f"{folder}/a.jpg")
        >>> build_image_cache([f"{folder}/a.jpg"], size=16).shape
        torch.Size([1, 3, 16, 16])
    """
    names = [os.fspath(path) for path in paths]
    shape = (len(names), 3, scaled_height(size, aspect), size)
    if cache_dir is None:
        tensor = torch.empty(shape, dtype=torch.uint8)
        _fill(tensor, names, size, interpolation, num_workers, progress, aspect)
        return tensor
    folder = Path(cache_dir)
    key = cache_key(names, size, interpolation=interpolation, aspect=aspect)
    final, meta_file = folder / f"images-{key}.npy", folder / f"images-{key}.json"
    meta = {
        "version": _CACHE_VERSION,
        "size": size,
        "aspect": float(aspect),
        "count": len(names),
        "files": names,
    }
    try:
        mapped = _cached(final, meta_file, meta, shape)
        if mapped is None:
            folder.mkdir(parents=True, exist_ok=True)
            # The description goes first: a cache file is only used beside a matching one.
            write_atomically(meta_file, json.dumps(meta))
            with replacing(final) as temporary:
                array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
                _fill(array, names, size, interpolation, num_workers, progress, aspect)
                array.flush()
                del array
            mapped = np.load(final, mmap_mode="c")
    except (SaveError, OSError) as error:
        message = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise InvalidParameterError(
            f"cache_dir {str(folder)!r} cannot hold the image cache ({message}). Give a "
            "writable folder, or cache_dir=None to keep the images in memory."
        ) from None
    # Copy-on-write: pages are read lazily from disk and the tensor is writable (no warning),
    # but writes never reach the file.
    return torch.from_numpy(mapped)


def _cached(
    final: Path, meta_file: Path, meta: dict[str, object], shape: tuple[int, ...]
) -> np.ndarray | None:
    """The cache file mapped copy-on-write, or ``None`` when it must be (re)built: missing,
    truncated, of another shape or dtype, or without the matching description beside it
    (a file copied in from elsewhere, or left by a run cut short)."""
    kinds = {path_kind(final), path_kind(meta_file)}
    if kinds - {"missing", "regular"}:
        raise SaveError(f"{str(final)!r} or its .json is not a regular file; it was left alone")
    if kinds == {"missing"}:
        return None
    mapped: np.ndarray | None = None
    try:
        described = json.loads(meta_file.read_text(encoding="utf-8"))
        mapped = np.load(final, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):  # unreadable, truncated, not .npy
        described = None
    if (
        mapped is not None
        and described == meta
        and mapped.shape == shape
        and mapped.dtype == np.dtype(np.uint8)
    ):
        return mapped
    warnings.warn(
        f"The image cache {str(final)!r} is damaged or does not belong to these images; "
        "decoding them again.",
        stacklevel=3,
    )
    return None
