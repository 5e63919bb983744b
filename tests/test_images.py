"""clothingclf.images: every kind of input, every kind of bad file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _image_zoo import BAD, GOOD, big_jpeg, write_zoo
from clothingclf.exceptions import ImageNotFoundError, InvalidImageError
from clothingclf.images import check_image, open_image, to_rgb


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    write_zoo(folder)
    return folder


@pytest.mark.parametrize(
    ("name", "size", "first", "last"),
    [
        ("plain.jpg", (24, 16), (200, 30, 30), (200, 30, 30)),
        ("alpha.png", (8, 8), (255, 0, 0), (255, 255, 255)),  # transparent -> white
        ("deep.png", (6, 6), (0, 0, 0), (255, 255, 255)),  # 16-bit scaled to 8-bit
        ("cmyk.jpg", (10, 10), (255, 0, 0), (255, 0, 0)),
        ("palette.gif", (10, 10), (0, 0, 255), (0, 0, 255)),
        ("rotated.jpg", (10, 30), (0, 200, 0), (0, 200, 0)),  # EXIF orientation applied
        ("tiny.png", (1, 1), (1, 2, 3), (1, 2, 3)),
    ],
)
def test_good_files_decode_to_rgb(
    zoo: Path, name: str, size: tuple[int, int], first: tuple[int, ...], last: tuple[int, ...]
) -> None:
    image = open_image(zoo / name)
    assert image.mode == "RGB"
    assert image.size == size
    assert np.abs(np.subtract(image.getpixel((0, 0)), first)).max() <= 3
    assert np.abs(np.subtract(image.getpixel((size[0] - 1, 0)), last)).max() <= 3
    assert check_image(zoo / name) is None


def test_good_files_decode_from_bytes_too(zoo: Path) -> None:
    for name in GOOD:
        assert open_image((zoo / name).read_bytes()).mode == "RGB"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.jpg", "is empty (0 bytes)"),
        ("truncated.jpg", "truncated or corrupt"),
        ("text.jpg", "not an image Pillow can read"),
        ("folder.jpg", "is a directory"),
    ],
)
def test_bad_files_raise_invalid_image_naming_the_file(zoo: Path, name: str, reason: str) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(reason)) as info:
        open_image(zoo / name)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)
    message = check_image(zoo / name)
    assert message is not None and reason in message


def test_every_bad_file_of_the_zoo_is_rejected(zoo: Path) -> None:
    assert all(check_image(zoo / name) for name in BAD)


def test_missing_file_raises_image_not_found(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="does not exist") as info:
        open_image(tmp_path / "nope.jpg")
    assert isinstance(info.value, FileNotFoundError)
    assert "nope.jpg" in str(info.value)


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.jpg"
    path.write_bytes(big_jpeg())  # 64 x 64 = 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        open_image(path)


def test_image_between_warning_and_error_limits_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "large.jpg"
    path.write_bytes(big_jpeg())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 < 2 * 3000: only a warning
    with pytest.warns(Image.DecompressionBombWarning):
        assert open_image(path).size == (64, 64)


def test_unreadable_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(big_jpeg())
    real_access = os.access
    monkeypatch.setattr(
        "clothingclf.images.os.access",
        lambda p, mode: False if Path(p) == path else real_access(p, mode),
    )
    with pytest.raises(InvalidImageError, match="not readable"):
        open_image(path)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads files whatever their permissions; the monkeypatched test covers it",
)
def test_chmod_000_file_is_reported(tmp_path: Path) -> None:  # pragma: no cover - not as root
    path = tmp_path / "locked.jpg"
    path.write_bytes(big_jpeg())
    path.chmod(0)
    try:
        assert "not readable" in (check_image(path) or "")
    finally:
        path.chmod(0o644)


def test_draft_size_shrinks_large_jpegs(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (400, 300), (9, 9, 9)).save(path, quality=90)
    assert open_image(path, draft_size=(100, 75)).size == (100, 75)
    assert open_image(path).size == (400, 300)


@pytest.mark.parametrize(
    ("array", "size"),
    [
        (np.zeros((4, 6, 3), dtype=np.uint8), (6, 4)),
        (np.zeros((4, 6, 4), dtype=np.uint8), (6, 4)),
        (np.zeros((4, 6), dtype=np.uint8), (6, 4)),
        (np.zeros((4, 6, 1), dtype=np.uint8), (6, 4)),
        (np.ones((4, 6, 3), dtype=np.float32), (6, 4)),
        (np.full((4, 6, 3), 7, dtype=np.int64), (6, 4)),
    ],
)
def test_arrays_decode(array: np.ndarray, size: tuple[int, int]) -> None:
    image = open_image(array)
    assert image.mode == "RGB" and image.size == size


def test_float_array_is_scaled_to_bytes() -> None:
    assert open_image(np.full((2, 2, 3), 0.5, dtype=np.float64)).getpixel((0, 0)) == (128,) * 3


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 2, 2), dtype=np.uint8), "expected H×W×3"),
        (np.zeros((0, 2, 3), dtype=np.uint8), "holds no pixels"),
        (np.full((2, 2, 3), np.nan, dtype=np.float32), "NaN"),
        (np.full((2, 2, 3), 2.0, dtype=np.float32), "outside \\[0, 1\\]"),
        (np.full((2, 2, 3), 300, dtype=np.int32), "outside \\[0, 255\\]"),
        (np.zeros((2, 2, 3), dtype=np.complex64), "dtype complex64"),
    ],
)
def test_bad_arrays_raise(array: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidImageError, match=match):
        open_image(array)


def test_tensors_decode() -> None:
    assert open_image(torch.zeros(3, 5, 7)).size == (7, 5)
    assert open_image(torch.zeros(1, 5, 7, dtype=torch.float16)).size == (7, 5)
    assert open_image(torch.full((3, 2, 2), 255, dtype=torch.uint8)).getpixel((0, 0)) == (
        255,
        255,
        255,
    )
    with pytest.raises(InvalidImageError, match="3×H×W"):
        open_image(torch.zeros(2, 5, 7))


def test_pil_images_of_any_mode_become_rgb() -> None:
    for mode in ("L", "LA", "P", "RGBA", "CMYK", "I", "F", "1"):
        assert open_image(Image.new(mode, (3, 2))).mode == "RGB"
    palette = Image.new("P", (2, 2), 0)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_empty_bytes_and_unknown_types_raise() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        open_image(b"")
    with pytest.raises(InvalidImageError, match="Cannot read an image from a int"):
        open_image(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="not an image"):
        open_image(b"GIF89a but not really")


def test_a_needle_thin_image_is_refused_before_any_resize(tmp_path: Path) -> None:
    """A 1 x 200000 PNG is under a kilobyte and decodes cheaply, but resizing its short side
    to 256 px would allocate gigabytes."""
    path = tmp_path / "needle.png"
    Image.new("RGB", (1, 200_000)).save(path)
    assert path.stat().st_size < 2048
    with pytest.raises(InvalidImageError, match=r"1 x 200000 pixels, more than 20 times longer"):
        open_image(path)
    with pytest.raises(InvalidImageError, match="The array is 3 x 90 pixels"):
        open_image(np.zeros((90, 3, 3), dtype=np.uint8))
    assert open_image(np.zeros((60, 3, 3), dtype=np.uint8)).size == (3, 60)  # 20:1 is fine


@pytest.mark.timeout(20)
def test_special_and_unreachable_paths_are_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.jpg"
    os.symlink(loop, loop)
    long_name = tmp_path / ("x" * 300 + ".jpg")
    cases = {
        fifo: "not a regular file",  # opening it would block forever
        loop: "symbolic link that leads back to itself",
        long_name: "longer than the file system allows",
    }
    for path, reason in cases.items():
        with pytest.raises(InvalidImageError, match=reason) as caught:
            open_image(path)
        assert str(path)[:40] in str(caught.value)
        assert check_image(path) == str(caught.value)


@pytest.mark.parametrize(
    ("tensor", "reason"),
    [
        (torch.zeros(3, 4, 4, device="meta"), "meta device"),
        (torch.zeros(3, 4, 4).to_sparse(), "sparse"),
        (torch.zeros(3, 4, 4, dtype=torch.complex64), "dtype torch.complex64"),
        (torch.zeros(3, 4, 4, dtype=torch.bool), "dtype torch.bool"),
    ],
    ids=["meta", "sparse", "complex", "bool"],
)
def test_tensors_without_pixels_are_refused(tensor: torch.Tensor, reason: str) -> None:
    with pytest.raises(InvalidImageError, match=reason):
        open_image(tensor)
