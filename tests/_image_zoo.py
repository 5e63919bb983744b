"""Hand-made good and bad image files, shared by test_images.py, test_data.py, test_cache.py
and test_preprocessing.py."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def striped(width: int, height: int, share: int = 8) -> Image.Image:
    """A photo whose top ``1/share`` is red, bottom ``1/share`` blue, the rest green."""
    image = Image.new("RGB", (width, height), (0, 255, 0))
    band = height // share
    image.paste((255, 0, 0), (0, 0, width, band))
    image.paste((0, 0, 255), (0, height - band, width, height))
    return image


def _jpeg(size: tuple[int, int] = (24, 16), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def rgba_png() -> bytes:
    """Left half opaque red, right half fully transparent."""
    array = np.zeros((8, 8, 4), dtype=np.uint8)
    array[:, :4] = (255, 0, 0, 255)
    return _png(Image.fromarray(array, "RGBA"))


def png16() -> bytes:
    """16-bit greyscale, values 0 and 65535."""
    array = np.zeros((6, 6), dtype=np.uint16)
    array[:, 3:] = 65535
    return _png(Image.fromarray(array))


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def palette_gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 255)).convert("P").save(buffer, format="GIF")
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A 30x10 picture stored with EXIF orientation 6 (display rotated 90° clockwise)."""
    image = Image.new("RGB", (30, 10), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def one_pixel_png() -> bytes:
    return _png(Image.new("RGB", (1, 1), (1, 2, 3)))


def truncated_jpeg() -> bytes:
    data = _jpeg((64, 64))
    return data[: len(data) // 2]


def big_jpeg() -> bytes:
    """64x64: refused once PIL.Image.MAX_IMAGE_PIXELS is set below 2048."""
    return _jpeg((64, 64))


#: name -> (bytes maker, decodes?) ; names carry the extension the content claims.
GOOD: dict[str, Callable[[], bytes]] = {
    "plain.jpg": _jpeg,
    "alpha.png": rgba_png,
    "deep.png": png16,
    "cmyk.jpg": cmyk_jpeg,
    "palette.gif": palette_gif,
    "rotated.jpg": exif_rotated_jpeg,
    "tiny.png": one_pixel_png,
}
BAD: dict[str, Callable[[], bytes]] = {
    "empty.jpg": lambda: b"",
    "truncated.jpg": truncated_jpeg,
    "text.jpg": lambda: b"this is not a picture\n",
}


def write_zoo(folder: Path) -> None:
    """Write every GOOD and BAD file, plus a directory named ``folder.jpg``, into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in {**GOOD, **BAD}.items():
        (folder / name).write_bytes(make())
    (folder / "folder.jpg").mkdir(exist_ok=True)
