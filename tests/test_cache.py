"""The decoded-image cache: same pixels as the evaluation transform, decoded once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _image_zoo import striped
from clothingclf.backbones import Preprocessing
from clothingclf.data import cache
from clothingclf.data.cache import build_image_cache, cache_key, decode_square, decode_view
from clothingclf.exceptions import ImageNotFoundError, InvalidImageError
from clothingclf.images import open_image
from clothingclf.training.augment import Views

PORTRAIT = 4 / 3


def _photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    # Smooth content (a gradient plus a few blocks) so JPEG and resizing behave like a photo.
    width, height = size
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    array = np.broadcast_to((x + y) / 2, (height, width, 3)).copy()
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        array[top : top + height // 4, left : left + width // 4] = rng.integers(0, 255, 3)
    Image.fromarray(array.astype(np.uint8)).save(path, quality=95)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    return [_photo(tmp_path / f"p{i}.jpg", (48 + 8 * i, 40), i) for i in range(3)]


def test_cache_rows_are_the_decoded_squares(photos: list[Path]) -> None:
    images = build_image_cache(photos, size=32)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    for row, path in zip(images, photos, strict=True):
        assert torch.equal(row, decode_square(path, 32))


@pytest.mark.parametrize("aspect", [1.0, 4 / 3, 0.8])
@pytest.mark.parametrize("resize_size", [32, 31])  # even and odd margins around the crop
def test_centre_of_the_cache_is_the_evaluation_view(
    photos: list[Path], aspect: float, resize_size: int
) -> None:
    """Validation (the cache's centre) and predict (eval_transform) see the same pixels,
    bit for bit: one view, not two kept equal to rounding."""
    prep = Preprocessing(image_size=24, resize_size=resize_size, aspect=aspect)
    images = build_image_cache(
        photos, size=prep.resize_size, interpolation=prep.interpolation, aspect=aspect
    )
    assert images.shape[-2:] == prep.resize_shape
    validation = prep.network_input(images)
    for row, path in zip(validation, photos, strict=True):
        expected = prep.eval_transform()(open_image(path, draft_size=prep.draft_size))
        assert expected.shape == (3, *prep.input_shape)
        assert torch.equal(row, expected)


def test_disk_cache_is_reused_and_keyed_by_mtime(
    photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    first = build_image_cache(photos, size=16, cache_dir=folder)
    files = sorted(p.name for p in folder.glob("images-*.npy"))
    assert len(files) == 1 and not list(folder.glob(".images-*"))

    def no_decoding(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(cache, "resize_to_canvas", no_decoding)
    again = build_image_cache(photos, size=16, cache_dir=folder)
    assert torch.equal(first, again)
    again[0].zero_()  # copy-on-write: the file is not changed
    assert torch.equal(build_image_cache(photos, size=16, cache_dir=folder), first)
    monkeypatch.undo()

    stat = photos[0].stat()
    os.utime(photos[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    build_image_cache(photos, size=16, cache_dir=folder)
    assert len(list(folder.glob("images-*.npy"))) == 2


def test_cache_key_changes_with_files_size_and_order(photos: list[Path]) -> None:
    key = cache_key(photos, 32, interpolation="bilinear")
    assert key == cache_key([str(p) for p in photos], 32, interpolation="bilinear")
    assert key != cache_key(photos[::-1], 32, interpolation="bilinear")
    assert key != cache_key(photos, 33, interpolation="bilinear")
    assert key != cache_key(photos, 32, interpolation="bicubic")
    assert key != cache_key(photos[:2], 32, interpolation="bilinear")


def test_draft_mode_matches_a_full_decode(tmp_path: Path) -> None:
    big = _photo(tmp_path / "big.jpg", (400, 320), 7)
    drafted = decode_square(big, 64).float()
    full = Image.open(big).convert("RGB")
    prep = Preprocessing(image_size=64, resize_size=64, mean=(0, 0, 0), std=(1, 1, 1))
    reference = prep.eval_transform()(full) * 255
    assert (drafted - reference).abs().mean() < 3.0


def test_bad_files_are_named(tmp_path: Path, photos: list[Path]) -> None:
    with pytest.raises(ImageNotFoundError, match=r"missing\.jpg"):
        build_image_cache([*photos, tmp_path / "missing.jpg"], size=16)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(InvalidImageError, match=r"broken\.jpg"):
        build_image_cache([broken], size=16)
    folder = tmp_path / "cache"
    with pytest.raises(InvalidImageError):
        build_image_cache([broken], size=16, cache_dir=folder)
    assert not list(folder.glob("*.npy*")), "a failed build must leave no cache file"


def test_empty_list_gives_an_empty_tensor() -> None:
    assert build_image_cache([], size=8).shape == (0, 3, 8, 8)


def _damage_truncate(npy: Path, other: Path) -> None:
    npy.write_bytes(npy.read_bytes()[:-100])


def _damage_misplace(npy: Path, other: Path) -> None:
    other.replace(npy)  # another set's cache under this set's name: another shape


def _damage_no_description(npy: Path, other: Path) -> None:
    npy.with_suffix(".json").unlink()  # as a run cut short between the two files leaves it


def _damage_pickle(npy: Path, other: Path) -> None:
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _damage_dtype(npy: Path, other: Path) -> None:
    np.save(npy, np.zeros((3, 3, 16, 16), dtype=np.float32))


@pytest.mark.parametrize(
    "damage",
    [_damage_truncate, _damage_misplace, _damage_no_description, _damage_pickle, _damage_dtype],
)
def test_a_damaged_or_misplaced_cache_file_is_rebuilt_with_a_warning(
    photos: list[Path], tmp_path: Path, damage: object
) -> None:
    folder = tmp_path / "cache"
    expected = build_image_cache(photos, size=16, cache_dir=folder).clone()  # not the mapping
    (npy,) = folder.glob("images-*.npy")
    build_image_cache(photos[:2], size=16, cache_dir=tmp_path / "other")
    (other,) = (tmp_path / "other").glob("images-*.npy")
    damage(npy, other)  # type: ignore[operator]
    with pytest.warns(UserWarning, match="damaged or does not belong"):
        rebuilt = build_image_cache(photos, size=16, cache_dir=folder)
    assert torch.equal(rebuilt, expected)
    assert torch.equal(build_image_cache(photos, size=16, cache_dir=folder), expected)
    assert not list(folder.glob(".images-*"))  # no temporary left


def test_a_cache_dir_that_cannot_hold_the_cache_is_a_clear_error(
    photos: list[Path], tmp_path: Path
) -> None:
    from clothingclf.exceptions import InvalidParameterError

    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    for folder in (blocker, blocker / "below"):
        with pytest.raises(InvalidParameterError, match="cannot hold the image cache"):
            build_image_cache(photos, size=16, cache_dir=folder)
    assert blocker.read_text() == "mine"
    # A FIFO where the cache file would be is left alone, never opened.
    folder = tmp_path / "cache"
    build_image_cache(photos, size=16, cache_dir=folder)
    (npy,) = folder.glob("images-*.npy")
    npy.unlink()
    os.mkfifo(npy)
    with pytest.raises(InvalidParameterError, match="not a regular file"):
        build_image_cache(photos, size=16, cache_dir=folder)
    assert npy.is_fifo()


def test_the_cache_holds_the_same_view_as_the_evaluation_transform(tmp_path: Path) -> None:
    paths = []
    for number, size in enumerate([(300, 400), (400, 300), (200, 200), (120, 400)]):
        path = tmp_path / f"{number}.png"
        striped(*size).save(path)
        paths.append(str(path))
    prep = Preprocessing(image_size=24, resize_size=28, mean=(0, 0, 0), std=(1, 1, 1))
    tall = prep.with_aspect(PORTRAIT)
    cached = build_image_cache(paths, size=28, aspect=PORTRAIT)
    assert cached.shape == (4, 3, 37, 28)
    assert torch.equal(cached[0], decode_view(paths[0], 28, aspect=PORTRAIT))
    assert torch.equal(decode_view(paths[0], 28), decode_square(paths[0], 28))
    # The evaluation view of the cache is the evaluation transform's, to rounding.
    views = Views(tall, torch.device("cpu"), channels_last=False)
    centre = views.center(cached)
    assert centre.shape == (4, 3, 32, 24)
    expected = torch.stack([tall.eval_transform()(Image.open(p).convert("RGB")) for p in paths])
    assert float((centre - expected).abs().max()) <= 1 / 255 + 1e-6
    # Training crops come out portrait as well.
    crops = views.augmented(cached, 16, torch.Generator().manual_seed(0), min_scale=0.5, flip=True)
    assert crops.shape == (4, 3, 21, 16)
    # A disk cache of another aspect is another file; the square's key is as before.
    square_key = cache_key(paths, 28, interpolation="bilinear")
    assert cache_key(paths, 28, interpolation="bilinear", aspect=1.0) == square_key
    assert cache_key(paths, 28, interpolation="bilinear", aspect=PORTRAIT) != square_key
    on_disk = build_image_cache(paths, size=28, aspect=PORTRAIT, cache_dir=tmp_path / "c")
    assert torch.equal(on_disk, cached)
    meta = json.loads(next((tmp_path / "c").glob("images-*.json")).read_text())
    assert meta["aspect"] == PORTRAIT
