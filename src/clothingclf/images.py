"""Decoding images: the one place that turns files, bytes and arrays into RGB pictures.

Every reader in clothingclf (dataset verification, training, prediction) goes through
:func:`open_image`, so every bad image gets the same clear error: an
:class:`~clothingclf.exceptions.InvalidImageError` or
:class:`~clothingclf.exceptions.ImageNotFoundError` that names the file and says why.

Outcomes per kind of input:

* JPEG, PNG, GIF, WebP, BMP, TIFF: decoded; EXIF orientation applied.
* Greyscale, 16-bit, CMYK and palette images: converted to 8-bit RGB.
* Images with transparency (RGBA, LA, palette with a transparent colour): composited on white.
* Zero-byte, truncated or non-image files, directories, FIFOs and other special files
  (never opened, so nothing blocks), unreadable paths (permission, a name too long, a
  symlink loop), images over Pillow's decompression-bomb limit, and images more than
  :data:`MAX_ASPECT_RATIO` times longer than wide (resizing their short side to a network's
  input would take gigabytes): :class:`~clothingclf.exceptions.InvalidImageError`.
* A path that does not exist: :class:`~clothingclf.exceptions.ImageNotFoundError`.
"""

from __future__ import annotations

import errno
import io
import os
import struct
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ._paths import checked_path, path_kind
from .exceptions import ImageNotFoundError, InvalidImageError

__all__ = ["MAX_ASPECT_RATIO", "ImageInput", "check_image", "open_image", "to_rgb"]

#: Anything that :func:`open_image` accepts as one image.
ImageInput = Union[str, "os.PathLike[str]", bytes, Image.Image, np.ndarray, torch.Tensor]

_WHITE = (255, 255, 255)

#: The longest side an image may have, in multiples of its shortest (a 3:4 photo is 1.33).
MAX_ASPECT_RATIO = 20.0

# What Pillow's decoders raise for corrupt data (found by fuzzing): a damaged TIFF tag gives
# TypeError ("'float' object cannot be interpreted as an integer"), a DDS header with unknown
# pixel-format flags NotImplementedError, even from Image.open.
_CORRUPT = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    TypeError,
    IndexError,
    struct.error,
    NotImplementedError,
)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded Pillow image of any mode to 8-bit RGB.

    Transparent pixels are composited on white (not on black, which is what a plain
    ``convert("RGB")`` gives); 16-bit and 32-bit greyscale is scaled to 8 bits.

    Args:
        image: A decoded Pillow image.

    Returns:
        An image in mode ``"RGB"``.

    Example:
        >>> from PIL import Image
        >>> to_rgb(Image.new("RGBA", (2, 2), (255, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            array = array / 257.0
        else:
            high = float(array.max()) if array.size else 0.0
            array = array * (255.0 / high) if high > 255.0 else array
        grey = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray, what: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(
            f"{what} has shape {tuple(array.shape)}; expected H×W×3 (RGB), H×W×4 (RGBA) "
            "or H×W (greyscale). Convert the array to one of these layouts."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidImageError(f"{what} has shape {tuple(array.shape)}: it holds no pixels.")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            if not np.isfinite(array).all():
                raise InvalidImageError(f"{what} contains NaN or infinite values.")
            if array.min() < 0.0 or array.max() > 1.0:
                raise InvalidImageError(
                    f"{what} is a float array with values outside [0, 1] "
                    f"(found {array.min():.3g} to {array.max():.3g}); expected uint8 in "
                    "[0, 255] or floats in [0, 1]."
                )
            array = np.rint(array * 255.0).astype(np.uint8)
        elif np.issubdtype(array.dtype, np.integer):
            if array.min() < 0 or array.max() > 255:
                raise InvalidImageError(
                    f"{what} is an integer array of dtype {array.dtype} with values outside "
                    "[0, 255]; expected uint8 pixel values."
                )
            array = array.astype(np.uint8)
        else:
            raise InvalidImageError(
                f"{what} has dtype {array.dtype}; expected uint8 or float pixel values."
            )
    return to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def _decode(opener: str | io.BytesIO, what: str, draft_size: tuple[int, int] | None) -> Image.Image:
    try:
        # Photos between Pillow's warning and error limits decode, with Pillow's own
        # DecompressionBombWarning (silencing it here with warnings.catch_warnings would not
        # be thread-safe); only the DecompressionBombError above twice the limit is refused.
        with Image.open(opener) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise InvalidImageError(
            f"{what} is refused as a possible decompression bomb ({error}). "
            "If you trust it, raise PIL.Image.MAX_IMAGE_PIXELS or shrink the image."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"{what} is not an image Pillow can read (expected JPEG, PNG, GIF, WebP, BMP or "
            "TIFF). Remove it or replace it with a valid image."
        ) from None
    except _CORRUPT as error:
        raise InvalidImageError(
            f"{what} could not be decoded ({type(error).__name__}: {error}); the file is "
            "probably truncated or corrupt. Re-export or remove it."
        ) from None


def open_image(source: ImageInput, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode one image into an 8-bit RGB Pillow image.

    Args:
        source: A file path, the encoded bytes of an image file, a Pillow image, a NumPy
            array (H×W×3 or H×W×4 ``uint8``, H×W greyscale, or floats in [0, 1]), or a
            tensor (3×H×W or 1×H×W, ``uint8`` or floats in [0, 1]).
        draft_size: For JPEG files, let the decoder shrink the image by a power of two
            while it decodes, as long as the result stays at least this (width, height).
            Much faster when the target is far smaller than the photo.

    Returns:
        The image in mode ``"RGB"`` with EXIF orientation applied.

    Raises:
        ImageNotFoundError: ``source`` is a path that does not exist.
        InvalidImageError: ``source`` is not a decodable image; the message names the file
            and the reason.

    Example:
        >>> import numpy as np
        >>> open_image(np.zeros((4, 6), dtype=np.uint8)).size
        (6, 4)
    """
    image, what = _open(source, draft_size)
    width, height = image.size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(
            f"{what} is {width} x {height} pixels, more than {MAX_ASPECT_RATIO:g} times longer "
            "than wide: not a photo of a garment, and resizing it for a network would take "
            "gigabytes. Crop it or remove it."
        )
    return image


def _open(source: ImageInput, draft_size: tuple[int, int] | None) -> tuple[Image.Image, str]:
    """The RGB image of ``source`` and how to name it in an error."""
    if isinstance(source, Image.Image):
        try:
            return to_rgb(ImageOps.exif_transpose(source)), "The Pillow image"
        except (OSError, ValueError) as error:
            raise InvalidImageError(f"The Pillow image could not be converted: {error}") from None
    if isinstance(source, torch.Tensor):
        return _from_tensor(source), "The tensor"
    if isinstance(source, np.ndarray):
        return _from_array(source, "The array"), "The array"
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InvalidImageError("The byte string is empty; expected an encoded image file.")
        what = "The byte string"
        return _decode(io.BytesIO(bytes(source)), what, draft_size), what
    if isinstance(source, (str, os.PathLike)):
        path = checked_path(source, "Image file", InvalidImageError)
        what = f"Image file {str(path)!r}"
        _check_path(path)
        return _decode(str(path), what, draft_size), what
    raise InvalidImageError(
        f"Cannot read an image from a {type(source).__name__}; expected a path, bytes, a "
        "PIL.Image, a NumPy array or a torch tensor."
    )


def _from_tensor(source: torch.Tensor) -> Image.Image:
    if source.layout != torch.strided:
        raise InvalidImageError(
            f"The tensor is {source.layout} (sparse); expected a dense 3×H×W image: pass "
            "tensor.to_dense()."
        )
    if source.device.type == "meta":
        raise InvalidImageError(
            "The tensor is on the meta device, which holds shapes but no pixel values; pass a "
            "tensor with data."
        )
    tensor = source.detach().cpu()
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise InvalidImageError(
            f"The tensor has shape {tuple(tensor.shape)}; expected 3×H×W (RGB) or 1×H×W."
        )
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise InvalidImageError(
            f"The tensor has dtype {tensor.dtype}; expected uint8 or float pixel values."
        )
    if tensor.dtype == torch.bfloat16 or tensor.dtype == torch.float16:
        tensor = tensor.float()
    return _from_array(tensor.permute(1, 2, 0).numpy(), "The tensor")


def _check_path(path: Path) -> None:
    """Refuse, with a clear error, a path that is not a readable regular file, without
    opening it (a FIFO would block)."""
    name = str(path)
    try:
        kind = path_kind(path)
    except OSError as error:
        reason = {
            errno.ELOOP: "it is a symbolic link that leads back to itself",
            errno.ENAMETOOLONG: "its name is longer than the file system allows",
        }.get(error.errno or 0, error.strerror or str(error))
        raise InvalidImageError(f"Image file {name!r} cannot be read: {reason}.") from None
    if kind == "missing":
        raise ImageNotFoundError(
            f"Image file {name!r} does not exist. Check the path, or remove the row that names it."
        )
    if kind == "directory":
        raise InvalidImageError(
            f"{name!r} is a directory, not an image file. Point to an image inside it."
        )
    if kind == "special":
        raise InvalidImageError(
            f"Image file {name!r} is not a regular file (a FIFO, socket or device); it was "
            "not opened. Point to an image file."
        )
    if not os.access(path, os.R_OK):
        raise InvalidImageError(
            f"Image file {name!r} is not readable (permission denied). Fix its permissions "
            "or remove it."
        )
    try:
        empty = path.stat().st_size == 0
    except OSError as error:  # removed or changed since the check above
        raise InvalidImageError(f"Image file {name!r} cannot be read: {error.strerror}.") from None
    if empty:
        raise InvalidImageError(f"Image file {name!r} is empty (0 bytes). Re-export or remove it.")


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Fully decode an image file and say what is wrong with it, if anything.

    Args:
        path: The image file.

    Returns:
        ``None`` if the file decodes to an image, otherwise the reason it does not.

    Example:
        >>> check_image("no-such-file.jpg")[:40]
        "Image file 'no-such-file.jpg' does not e"
    """
    try:
        open_image(path)
    except (InvalidImageError, ImageNotFoundError) as error:
        return str(error)
    return None
