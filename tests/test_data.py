"""clothingclf.data: prepare_dataset, load_splits, ClothingDataset."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

import clothingclf
from _image_zoo import BAD, GOOD, big_jpeg, write_zoo
from clothingclf import ClothingDataset, DatasetSplits, load_splits, open_splits, prepare_dataset
from clothingclf.data.splitting import assign_splits
from clothingclf.exceptions import (
    DatasetError,
    DatasetNotFoundError,
    DuplicateImageError,
    EmptyDatasetError,
    InvalidParameterError,
    MissingColumnsError,
    UnsafePathError,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "clothing-dataset"
SPLITS = ("train", "val", "test")


def _table_dataset(
    root: Path,
    labels: Sequence[str],
    *,
    header: str = "image,sender_id,label,kids",
    senders: Sequence[int] | None = None,
) -> Path:
    """images.csv with one row per label and an (empty) file per row: for tests that
    do not decode (verify_images=False)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = [header]
    for i, label in enumerate(labels):
        sender = senders[i] if senders is not None else i % 7
        lines.append(f"img{i:05d},{sender},{label},False")
        (root / "images" / f"img{i:05d}.jpg").touch()
    (root / "images.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _labels(sizes: dict[str, int]) -> list[str]:
    return [label for label, n in sizes.items() for _ in range(n)]


# --------------------------------------------------------------------------- the splits


def test_synthetic_splits_have_the_documented_shape(synthetic_splits: DatasetSplits) -> None:
    s = synthetic_splits
    assert s.classes == ["Dress", "Pants", "Shoes", "T-Shirt"]
    assert (len(s.train), len(s.val), len(s.test)) == (77, 9, 10)
    for name in SPLITS:
        frame = getattr(s, name)
        assert list(frame.columns) == ["image", "path", "label", "label_id", "sender_id", "kids"]
        assert frame["label_id"].dtype == np.int64
        assert frame["sender_id"].dtype == np.int64 and frame["kids"].dtype == bool
        assert [s.classes[i] for i in frame["label_id"]] == frame["label"].tolist()
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in frame["path"])
    images = [set(getattr(s, name)["image"]) for name in SPLITS]
    assert not (images[0] & images[1] or images[0] & images[2] or images[1] & images[2])
    assert sum(map(len, images)) == 96
    assert s.report.n_dropped == 0 and s.report.unreadable == {}
    assert repr(s) == "DatasetSplits(train=77, val=9, test=10, classes=4)"


def test_class_weights_are_sklearn_balanced_on_train(synthetic_splits: DatasetSplits) -> None:
    y = synthetic_splits.train["label_id"].to_numpy()
    expected = compute_class_weight("balanced", classes=np.arange(4), y=y)
    assert synthetic_splits.class_weights == pytest.approx(expected.tolist(), abs=0)
    assert all(type(w) is float for w in synthetic_splits.class_weights)


def test_same_seed_gives_byte_identical_files(synthetic_root: Path, tmp_path: Path) -> None:
    a = prepare_dataset(synthetic_root, output_dir=tmp_path / "a", verify_images=False)
    b = prepare_dataset(synthetic_root, output_dir=tmp_path / "b", verify_images=False)
    assert a == b
    for name in ("train.csv", "val.csv", "test.csv", "report.json", "report.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = prepare_dataset(synthetic_root, seed=7, verify_images=False)
    assert set(other.test["image"]) != set(a.test["image"])
    assert other != a


@pytest.mark.parametrize(
    ("sizes", "test_size", "val_size"),
    [
        ({"A": 910, "B": 21, "C": 62, "D": 5, "E": 3}, 0.1, 0.1),
        ({"A": 17, "B": 33, "C": 101, "D": 4}, 0.2, 0.25),
        ({"A": 10, "B": 10, "C": 10}, 0.1, 0.1),
        ({"A": 7, "B": 300}, 0.3, 0.0),
        ({"A": 50, "B": 51, "C": 52, "D": 53, "E": 54, "F": 55}, 0.15, 0.05),
    ],
)
def test_every_class_is_within_one_image_of_its_share(
    tmp_path: Path, sizes: dict[str, int], test_size: float, val_size: float
) -> None:
    root = _table_dataset(tmp_path, _labels(sizes))
    s = prepare_dataset(root, test_size=test_size, val_size=val_size, verify_images=False)
    shares = {
        "train": (1 - test_size) * (1 - val_size),
        "val": (1 - test_size) * val_size,
        "test": test_size,
    }
    for label, n in sizes.items():
        for name in SPLITS:
            count = int((getattr(s, name)["label"] == label).sum())
            assert abs(count - n * shares[name]) <= 1, (label, name, count, n * shares[name])
    n = sum(sizes.values())
    assert len(s.test) == round(n * test_size)
    assert len(s.val) == round(n * shares["val"])


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(3, 300), min_size=1, max_size=20),
    test_size=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.25, 0.5, 0.9]),
    val_size=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.33, 0.5]),
    seed=st.integers(0, 3),
)
def test_assign_splits_within_one_image_and_exact_sizes(
    sizes: list[int], test_size: float, val_size: float, seed: int
) -> None:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    fractions = np.array([(1 - test_size) * (1 - val_size), (1 - test_size) * val_size, test_size])
    assignment = assign_splits(labels, fractions, seed=seed)
    for c, n in enumerate(sizes):
        for s in range(3):
            count = int(((labels == c) & (assignment == s)).sum())
            assert abs(count - n * fractions[s]) <= 1 + 1e-9
    assert (assignment == 2).sum() == round(len(labels) * test_size)
    test, val = round(len(labels) * test_size), round(len(labels) * fractions[1])
    if len(labels) - test - val < np.floor(len(labels) * fractions[0] + 1e-9):
        val = round(len(labels) * (fractions[1] + fractions[2])) - test  # both .5 ties
    assert (assignment == 1).sum() == val


@pytest.mark.parametrize(
    ("sizes", "test_size", "val_size", "expected"),
    [
        # The greedy rounding gave the one extra image of the class of 85 to test, and
        # validation ended one short (28, not 29).
        ([3, 3, 85], 0.05, 0.33, [[1, 1, 1], [2, 1, 0], [54, 27, 4]]),
        # Shares 18 / 4.5 / 7.5: rounding validation and test each gave 17 / 5 / 8, which
        # put train below its floor.
        ([30], 0.25, 0.2, [[18, 4, 8]]),
    ],
)
def test_assign_splits_meets_every_target_where_greedy_rounding_did_not(
    sizes: list[int], test_size: float, val_size: float, expected: list[list[int]]
) -> None:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    fractions = np.array([(1 - test_size) * (1 - val_size), (1 - test_size) * val_size, test_size])
    assignment = assign_splits(labels, fractions, seed=0)
    table = [
        [int(((labels == c) & (assignment == s)).sum()) for s in range(3)]
        for c in range(len(sizes))
    ]
    assert table == expected


def test_unstratified_split_has_the_requested_sizes(tmp_path: Path) -> None:
    root = _table_dataset(tmp_path, _labels({"A": 90, "B": 10}))
    s = prepare_dataset(root, stratify=False, verify_images=False, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (81, 9, 10)


def test_tiny_classes_go_to_train_with_a_warning(tmp_path: Path) -> None:
    root = _table_dataset(tmp_path, _labels({"Big": 40, "One": 1, "Two": 2}))
    with pytest.warns(UserWarning, match="fewer images than the 3 splits.*One, Two"):
        s = prepare_dataset(root, verify_images=False)
    assert s.report.small_classes == ("One", "Two")
    assert (s.train["label"] == "One").sum() == 1 and (s.train["label"] == "Two").sum() == 2
    assert "too small to split" in s.report.summary()
    assert s.report.warnings and "One, Two" in s.report.warnings[0]


def test_zero_sized_splits_are_allowed(tmp_path: Path) -> None:
    root = _table_dataset(tmp_path, _labels({"A": 5, "B": 2}))
    s = prepare_dataset(root, test_size=0.0, val_size=0.0, verify_images=False)
    assert (len(s.train), len(s.val), len(s.test)) == (7, 0, 0)
    assert list(s.val.columns) == list(s.train.columns)


@pytest.mark.parametrize("stratify", [True, False])
def test_group_by_keeps_every_group_in_one_split(tmp_path: Path, stratify: bool) -> None:
    rng = np.random.default_rng(0)
    labels = _labels({"A": 120, "B": 60, "C": 30})
    senders = rng.integers(0, 40, size=len(labels)).tolist()
    root = _table_dataset(tmp_path, labels, senders=senders)
    s = prepare_dataset(root, group_by="sender_id", stratify=stratify, verify_images=False)
    owner: dict[int, str] = {}
    for name in SPLITS:
        for sender in getattr(s, name)["sender_id"]:
            assert owner.setdefault(int(sender), name) == name
    assert len(s.train) + len(s.val) + len(s.test) == 210
    assert 10 <= len(s.test) <= 32 and len(s.val) >= 8  # roughly 10% / 9%
    assert s.report.settings["group_by"] == "sender_id"


def test_group_by_treats_empty_group_values_as_singletons(tmp_path: Path) -> None:
    root = tmp_path
    (root / "images").mkdir()
    rows = ["image,sender_id,label"]
    for i in range(30):
        rows.append(f"i{i},{'' if i % 2 else 5},{'AB'[i % 2]}")
        (root / "images" / f"i{i}.jpg").touch()
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    s = prepare_dataset(root, group_by="sender_id", verify_images=False)
    with_group = pd.concat([s.train, s.val, s.test])
    homes = {n for n in SPLITS if (getattr(s, n)["sender_id"] == 5).any()}
    assert len(homes) == 1 and len(with_group) == 30
    assert len(s.train) < 30  # the 15 rows without a sender are spread over splits


def test_group_by_column_must_exist(synthetic_root: Path) -> None:
    with pytest.raises(MissingColumnsError, match="lacks column 'shop'"):
        prepare_dataset(synthetic_root, group_by="shop", verify_images=False)


# --------------------------------------------------------------------------- the table


def test_report_names_excluded_missing_unreferenced_and_stripped(tmp_path: Path) -> None:
    root = _table_dataset(
        tmp_path, ["A", " A", "B ", "Skip", "Not sure", "Not sure", "A", "B", "B", "A"]
    )
    (root / "images" / "img00006.jpg").unlink()
    (root / "images" / "stray.jpg").touch()
    (root / "images" / ".hidden").mkdir()
    s = prepare_dataset(root, verify_images=False)
    r = s.report
    assert r.excluded == {"Not sure": 2, "Skip": 1}
    assert r.missing_files == ("img00006",)
    assert r.unreferenced_files == ("stray.jpg",)
    assert r.stripped_labels == 2
    assert r.n_rows == 10 and r.n_dropped == 4
    assert s.classes == ["A", "B"]
    summary = r.summary()
    assert "Excluded labels: Not sure (2), Skip (1)" in summary
    assert "Missing files: 1 (img00006)" in summary
    assert "Labels with surrounding whitespace (stripped): 2" in summary
    assert "Files no row names: 1 (stray.jpg)" in summary


def test_bom_extra_columns_and_ids_with_extensions(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    text = "image,label,shop,sender_id\npic.png,Hat,x,1\nother,Hat,y,2\nthird,Cap,,3\n"
    (tmp_path / "images.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    for name in ("pic.png", "other.jpg", "third.jpg"):
        (tmp_path / "images" / name).touch()
    s = prepare_dataset(tmp_path, verify_images=False, test_size=0, val_size=0)
    assert list(s.train.columns) == ["image", "path", "label", "label_id", "shop", "sender_id"]
    assert s.train["path"].map(lambda p: Path(p).name).tolist() == [
        "pic.png",
        "other.jpg",
        "third.jpg",
    ]
    assert s.train["shop"].isna().tolist() == [False, False, True]


def test_csv_path_itself_is_accepted(synthetic_root: Path) -> None:
    s = prepare_dataset(synthetic_root / "images.csv", verify_images=False)
    assert len(s.train) == 77


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        (("images_original", "images_compressed"), "images_compressed"),
        (("images_original",), "images_original"),
        (("images", "images_compressed"), "images"),
    ],
)
def test_kaggle_folder_names(tmp_path: Path, present: tuple[str, ...], chosen: str) -> None:
    _table_dataset(tmp_path, ["A"] * 5)
    for name in present:
        if name != "images":
            shutil.copytree(tmp_path / "images", tmp_path / name)
    if "images" not in present:
        shutil.rmtree(tmp_path / "images")
    s = prepare_dataset(tmp_path, verify_images=False)
    assert Path(s.report.images_dir).name == chosen
    assert Path(s.train["path"][0]).parent.name == chosen


def test_images_dir_option_picks_the_folder(tmp_path: Path) -> None:
    _table_dataset(tmp_path, ["A"] * 5)
    shutil.copytree(tmp_path / "images", tmp_path / "images_original")
    s = prepare_dataset(tmp_path, verify_images=False, images_dir="images_original")
    assert Path(s.report.images_dir).name == "images_original"


# --------------------------------------------------------------------------- errors


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        prepare_dataset(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and "nowhere" in str(info.value)


def test_missing_images_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"has no images\.csv"):
        prepare_dataset(tmp_path)


def test_missing_images_folder(tmp_path: Path) -> None:
    (tmp_path / "images.csv").write_text("image,label\na,B\n")
    with pytest.raises(DatasetNotFoundError, match="no images folder"):
        prepare_dataset(tmp_path)


def test_model_file_given_as_root(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, model)
    with pytest.raises(DatasetError, match="is a file, not a dataset folder"):
        prepare_dataset(model)


def test_binary_images_csv(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(3)}, tmp_path / "images.csv")
    with pytest.raises(DatasetError, match="not a text table"):
        prepare_dataset(tmp_path)


def test_non_utf8_images_csv(tmp_path: Path) -> None:
    (tmp_path / "images.csv").write_bytes(b"image,label\nx,\xe9t\xe9\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        prepare_dataset(tmp_path)


def test_missing_columns_message(tmp_path: Path) -> None:
    (tmp_path / "images.csv").write_text("image,sender_id\na,1\n")
    expected = (
        "images.csv lacks column 'label' (found: image, sender_id). Expected the columns of "
        "the clothing-dataset release: image, label."
    )
    with pytest.raises(MissingColumnsError, match=re.escape(expected)):
        prepare_dataset(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [("", "is empty"), ("\n\n", "is empty"), ("image,label\n", "header but no rows")],
)
def test_empty_csv(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "images.csv").write_text(content)
    with pytest.raises(EmptyDatasetError, match=match):
        prepare_dataset(tmp_path)


def test_every_row_excluded(tmp_path: Path) -> None:
    _table_dataset(tmp_path, ["Skip", "Not sure"])
    with pytest.raises(EmptyDatasetError, match="excluded label"):
        prepare_dataset(tmp_path)


def test_every_file_missing(tmp_path: Path) -> None:
    _table_dataset(tmp_path, ["A", "B"])
    for path in (tmp_path / "images").iterdir():
        path.unlink()
    with pytest.raises(EmptyDatasetError, match="2 missing"):
        prepare_dataset(tmp_path)


@pytest.mark.parametrize("label", ["", "   "])
def test_empty_labels(tmp_path: Path, label: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images.csv").write_text(f"image,label\na,Hat\nb,{label}\n")
    with pytest.raises(DatasetError, match="1 row\\(s\\) with an empty label \\(images: b\\)"):
        prepare_dataset(tmp_path)


def test_empty_image_id(tmp_path: Path) -> None:
    (tmp_path / "images.csv").write_text("image,label\na,Hat\n,Hat\n")
    with pytest.raises(DatasetError, match="without an image id \\(lines \\[3\\]\\)"):
        prepare_dataset(tmp_path)


def test_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "images.csv").write_text("image,label\na,Hat\nb,Hat\na,Cap\n")
    with pytest.raises(DuplicateImageError, match="1 image id\\(s\\) in more than one row: a\\."):
        prepare_dataset(tmp_path)


@pytest.mark.parametrize("image", ["../secret", "a/b", "a\\b", "/etc/passwd", "..", "x..y"])
def test_unsafe_ids(tmp_path: Path, image: str) -> None:
    (tmp_path / "images.csv").write_text(f'image,label\nok,Hat\n"{image}",Hat\n')
    with pytest.raises(UnsafePathError, match="line 3: image id") as info:
        prepare_dataset(tmp_path)
    assert isinstance(info.value, ValueError)


def test_symlink_out_of_the_images_folder(tmp_path: Path) -> None:
    root = _table_dataset(tmp_path / "data", ["A", "A"])
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(big_jpeg())
    (root / "images" / "img00001.jpg").unlink()
    (root / "images" / "img00001.jpg").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        prepare_dataset(root, verify_images=False)


@pytest.mark.parametrize(("test_size", "val_size"), [(1.0, 0.1), (-0.1, 0.1), (0.1, 1.5)])
def test_bad_fractions(synthetic_root: Path, test_size: float, val_size: float) -> None:
    with pytest.raises(ValueError, match="must be a fraction in \\[0, 1\\)"):
        prepare_dataset(synthetic_root, test_size=test_size, val_size=val_size)


# --------------------------------------------------------------------------- bad images


def _zoo_dataset(root: Path) -> Path:
    write_zoo(root / "images")
    names = [*GOOD, *BAD, "folder.jpg", "gone.jpg"]
    rows = "".join(f"{name},Hat\n" for name in names)
    (root / "images.csv").write_text("image,label\n" + rows)
    return root


def test_bad_images_are_dropped_and_named(tmp_path: Path) -> None:
    s = prepare_dataset(_zoo_dataset(tmp_path), test_size=0, val_size=0, workers=2)
    assert sorted(s.train["image"]) == sorted(GOOD)
    assert s.report.missing_files == ("gone.jpg",)
    assert set(s.report.unreadable) == {*BAD, "folder.jpg"}
    assert "0 bytes" in s.report.unreadable["empty.jpg"]
    assert "truncated or corrupt" in s.report.unreadable["truncated.jpg"]
    assert "not an image" in s.report.unreadable["text.jpg"]
    assert "directory" in s.report.unreadable["folder.jpg"]
    assert "Unreadable files: 4" in s.report.summary()
    # Every kept image decodes to RGB through the dataset, EXIF rotation applied.
    data = ClothingDataset(s.train)
    sizes = {s.train["image"][i]: data[i][0].size for i in range(len(data))}
    assert all(data[i][0].mode == "RGB" for i in range(len(data)))
    assert sizes["rotated.jpg"] == (10, 30)


def test_without_verification_bad_files_are_kept(tmp_path: Path) -> None:
    s = prepare_dataset(_zoo_dataset(tmp_path), test_size=0, val_size=0, verify_images=False)
    assert len(s.train) == len(GOOD) + len(BAD) + 1
    assert s.report.unreadable == {}


def test_decompression_bomb_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "bomb.jpg").write_bytes(big_jpeg())  # 4096 pixels
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "small.jpg")
    (tmp_path / "images.csv").write_text("image,label\nbomb,Hat\nsmall,Hat\n")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    s = prepare_dataset(tmp_path, test_size=0, val_size=0)
    assert s.train["image"].tolist() == ["small"]
    assert "decompression bomb" in s.report.unreadable["bomb"]


def test_parallel_verification_leaves_warning_filters_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    root = _table_dataset(tmp_path, ["A"] * 60)
    for path in (root / "images").iterdir():
        Image.new("RGB", (8, 8)).save(path)  # 64 pixels: between the warning and error limits
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    before = list(warnings.filters)
    s = prepare_dataset(root, test_size=0, val_size=0, workers=4)
    assert len(s.train) == 60 and s.report.unreadable == {}
    assert warnings.filters == before


def test_unreadable_file_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _table_dataset(tmp_path, ["A", "A"])
    for path in (root / "images").iterdir():
        path.write_bytes(big_jpeg())
    locked = root / "images" / "img00001.jpg"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root reads any file whatever its mode: simulate what other users see.
        real = os.access
        monkeypatch.setattr(
            "clothingclf.images.os.access",
            lambda p, mode: False if Path(p) == locked else real(p, mode),
        )
    locked.chmod(0)
    try:
        s = prepare_dataset(root, test_size=0, val_size=0)
    finally:
        locked.chmod(0o644)
    assert s.train["image"].tolist() == ["img00000"]
    assert "permission denied" in s.report.unreadable["img00001"]


# --------------------------------------------------------------------------- files


def test_output_dir_round_trips(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    (root / "images" / "extra.jpg").write_bytes(b"")
    with open(root / "images.csv", "a", encoding="utf-8") as handle:
        handle.write("ghost,1,Skip,False\n")
    out = tmp_path / "out"
    s = prepare_dataset(root, output_dir=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "report.txt",
        "test.csv",
        "train.csv",
        "val.csv",
    ]
    loaded = load_splits(out)
    assert loaded == s
    for name in SPLITS:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(s, name))
    assert loaded.report.excluded == {"Skip": 1}
    assert "T-Shirt" in (out / "report.txt").read_text()


def test_round_trip_keeps_extra_columns_with_gaps(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    rows = [
        "image,label,shop,kids,score,note",
        "a,Hat,x,True,1,NA",
        "b,Hat,,False,,",
        "c,Cap,y,,2.5,hello",
        'd,Cap,007,True,3,"with, comma"',
    ]
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    for name in "abcd":
        (root / "images" / f"{name}.jpg").touch()
    s = prepare_dataset(root, verify_images=False, output_dir=tmp_path / "out", test_size=0)
    loaded = load_splits(tmp_path / "out")
    assert loaded == s
    assert s.train["note"].tolist()[0] == "NA"  # only empty cells are missing values
    both = pd.concat([loaded.train, loaded.val])
    assert "007" in both["shop"].tolist()
    assert [type(v) for v in both.sort_values("image")["kids"]] == [bool, bool, float, bool]


def test_load_splits_errors(synthetic_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"report\.json' does not exist"):
        load_splits(tmp_path)
    prepare_dataset(synthetic_root, output_dir=tmp_path, verify_images=False)
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(DatasetError, match="not a splits report"):
        load_splits(tmp_path)


def test_output_dir_leaves_no_temporary_files(synthetic_root: Path, tmp_path: Path) -> None:
    prepare_dataset(synthetic_root, output_dir=tmp_path, verify_images=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_open_splits_prepares_a_dataset_root_with_the_seed(
    synthetic_root: Path, synthetic_splits: DatasetSplits
) -> None:
    assert open_splits(synthetic_root) == synthetic_splits  # seed 42, as prepare_dataset
    assert open_splits(str(synthetic_root), seed=0) == prepare_dataset(synthetic_root, seed=0)
    assert open_splits(synthetic_root, seed=0) != synthetic_splits


def test_open_splits_reads_a_prepared_folder_back(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "splits"
    saved = prepare_dataset(synthetic_root, seed=3, output_dir=out)
    assert open_splits(out) == saved
    assert open_splits(out, seed=0) == saved  # the saved split, whatever the seed


def test_open_splits_prefers_images_csv_to_splits_saved_beside_it(
    synthetic_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    saved = prepare_dataset(root, seed=3, output_dir=root)
    assert (root / "report.json").is_file()
    assert open_splits(root) == prepare_dataset(root) != saved


def test_open_splits_lets_the_reader_name_what_is_wrong(
    synthetic_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "splits"
    prepare_dataset(synthetic_root, output_dir=out)
    (out / "report.json").write_text("{}")
    with pytest.raises(DatasetError, match="not a splits report"):
        open_splits(out)
    (out / "val.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"val\.csv' does not exist"):
        open_splits(out)
    (tmp_path / "odd" / "images.csv").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"images\.csv' is not a regular file"):
        open_splits(tmp_path / "odd")


_OPEN_SPLITS_EXPECTS = (
    "Expected a dataset root holding images.csv (split with prepare_dataset), or a folder "
    "written by prepare_dataset(output_dir=...) or 'clothingclf prepare --output' (report.json, "
    "train.csv, val.csv and test.csv). Give the path of one."
)


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda p: p.mkdir(), "holds neither images.csv nor report.json"),
        (lambda p: p.write_text("image,label\n"), "is a file, not a folder"),
        (lambda p: None, "does not exist"),
    ],
    ids=["empty folder", "file", "missing"],
)
def test_open_splits_refuses_anything_else(
    tmp_path: Path, make: Callable[[Path], object], found: str
) -> None:
    path = tmp_path / "data"
    make(path)
    expected = f"{str(path)!r} {found}. {_OPEN_SPLITS_EXPECTS}"
    with pytest.raises(DatasetNotFoundError, match=f"^{re.escape(expected)}$"):
        open_splits(path)


def test_open_splits_refuses_what_is_not_a_path() -> None:
    with pytest.raises(InvalidParameterError, match="needs the path of a folder; found 123"):
        open_splits(123)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- torch


def test_clothing_dataset_feeds_a_dataloader(synthetic_splits: DatasetSplits) -> None:
    def to_tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255

    data = ClothingDataset(synthetic_splits.val, transform=to_tensor)
    assert len(data) == 9
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert images.shape == (4, 3, 64, 64) and labels.dtype == torch.int64
    assert labels.tolist() == synthetic_splits.val["label_id"][:4].tolist()


def test_clothing_dataset_without_labels_and_with_draft(synthetic_splits: DatasetSplits) -> None:
    data = ClothingDataset(synthetic_splits.test[["path"]], draft_size=(16, 16))
    image, label = data[0]
    assert label == -1 and image.size == (16, 16)
    with pytest.raises(MissingColumnsError, match="lacks column 'path'"):
        ClothingDataset(synthetic_splits.test[["image"]])


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent (only on the project machine)")
def test_real_clothing_dataset() -> None:  # pragma: no cover - needs ../shared
    s = clothingclf.prepare_dataset(REAL, verify_images=False)
    assert len(s.classes) == 18
    assert "Skip" not in s.classes and "Not sure" not in s.classes
    assert set(s.report.excluded) == {"Skip", "Not sure"}
    n = len(s.train) + len(s.val) + len(s.test)
    assert n > 4000
    assert len(s.test) == round(0.1 * n)
    assert abs(len(s.val) / (len(s.train) + len(s.val)) - 0.1) < 0.002
    counts = s.counts()
    assert counts.loc["T-Shirt", "total"] > 800 and counts.loc["Blouse", "total"] < 40


# --------------------------------------------------------------------------- CLI


def test_cli_prepare_prints_the_table_and_writes_files(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clothingclf.cli import main

    assert main(["prepare", str(synthetic_root), "--output", str(tmp_path), "--seed", "42"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^T-Shirt\s+\d+\s+\d+\s+\d+\s+24$", out, re.M)
    assert re.search(r"^total\s+77\s+9\s+10\s+96$", out, re.M)
    assert "Excluded labels: none" in out and "Unreadable files: 0" in out
    assert load_splits(tmp_path) == prepare_dataset(synthetic_root)


def test_cli_prepare_options_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clothingclf.cli import main

    root = _table_dataset(tmp_path, _labels({"A": 20, "Skip": 3, "B": 1}))
    code = main(["prepare", str(root), "--no-verify", "--keep-all", "--test-size", "0"])
    captured = capsys.readouterr()
    assert code == 0
    assert re.search(r"^Skip\s+3\s+0\s+0\s+3$", captured.out, re.M)
    assert "Warning: 1 class(es) have fewer images than the 2 splits" in captured.out
    assert captured.err == ""
    assert main(["prepare", str(root), "--no-verify", "--exclude", "A", "--exclude", "B"]) == 0
    assert "Excluded labels: A (20), B (1)" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "absent")]) == 2
    assert "clothingclf prepare: error: Dataset folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"test_size": 1.5}, "test_size must be a fraction in"),
        ({"val_size": -0.1}, "val_size must be a fraction in"),
        ({"test_size": True}, "test_size must be a fraction in"),
        ({"seed": "abc"}, "seed must be an int"),
        ({"seed": 2**40}, "seed must be an int"),
        ({"exclude": 5}, "exclude must be a label or a list of labels"),
        ({"exclude": [None]}, "exclude must be a label or a list"),
        ({"workers": 0}, "workers must be None or a positive int"),
        ({"stratify": "yes"}, "stratify must be True or False"),
        ({"group_by": 3}, "group_by must be None"),
        ({"output_dir": 3}, "output_dir must be None or a folder path"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_read(
    tmp_path: Path, arguments: dict[str, object], message: str
) -> None:
    # The root does not even exist: the arguments are checked first.
    with pytest.raises(InvalidParameterError, match=message):
        prepare_dataset(tmp_path / "nowhere", **arguments)  # type: ignore[arg-type]


def test_output_dir_that_is_a_file_is_refused_before_verification(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")

    def no_verification(*args: object) -> None:
        raise AssertionError("images were verified before output_dir was checked")

    monkeypatch.setattr(clothingclf.data.prepare, "_verify", no_verification)
    for output in (blocker, blocker / "below"):
        with pytest.raises(InvalidParameterError, match="is a file"):
            prepare_dataset(synthetic_root, output_dir=output)
    assert blocker.read_text() == "mine"


def test_exclude_none_keeps_every_label(tmp_path: Path) -> None:
    root = _table_dataset(tmp_path, ["Hat"] * 4 + ["Skip"] * 4)
    splits = prepare_dataset(root, exclude=None, stratify=False, verify_images=False)
    assert set(splits.classes) == {"Hat", "Skip"}


@pytest.mark.timeout(30)
def test_special_files_in_a_dataset(synthetic_root: Path, tmp_path: Path) -> None:
    # images.csv that is a FIFO: named as such, never opened (it would block).
    fifo_root = tmp_path / "fifo"
    shutil.copytree(synthetic_root, fifo_root)
    (fifo_root / "images.csv").unlink()
    os.mkfifo(fifo_root / "images.csv")
    with pytest.raises(DatasetError, match="not a regular file"):
        prepare_dataset(fifo_root)
    # An image that is a link to itself: reported as unreadable, the rest is used.
    loop_root = tmp_path / "loop"
    shutil.copytree(synthetic_root, loop_root)
    victim = sorted((loop_root / "images").iterdir())[0]
    victim.unlink()
    os.symlink(victim, victim)
    splits = prepare_dataset(loop_root)
    assert "leads back to itself" in splits.report.unreadable[victim.stem]
    # An images folder that is a link out of the dataset folder: refused, nothing read.
    outside_root = tmp_path / "outside"
    shutil.copytree(synthetic_root, outside_root)
    shutil.move(str(outside_root / "images"), str(tmp_path / "elsewhere"))
    os.symlink(tmp_path / "elsewhere", outside_root / "images")
    with pytest.raises(UnsafePathError, match="outside the dataset folder"):
        prepare_dataset(outside_root)


def test_utf16_images_csv_is_read(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "utf16"
    shutil.copytree(synthetic_root, root)
    text = (root / "images.csv").read_text(encoding="utf-8")
    (root / "images.csv").write_bytes(text.encode("utf-16"))
    read, original = prepare_dataset(root, seed=0), prepare_dataset(synthetic_root, seed=0)
    assert read.classes == original.classes
    for name in SPLITS:
        assert list(getattr(read, name)["image"]) == list(getattr(original, name)["image"])


def test_load_splits_refuses_what_is_not_a_splits_folder(
    synthetic_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterError, match="found 123"):
        load_splits(123)  # type: ignore[arg-type]
    out = tmp_path / "splits"
    prepare_dataset(synthetic_root, output_dir=out)
    meta = (out / "report.json").read_text(encoding="utf-8")
    # A string where a list belongs would be read as its letters.
    (out / "report.json").write_text(
        meta.replace('"classes": [', '"classes": "DPST", "was": ['), encoding="utf-8"
    )
    with pytest.raises(DatasetError, match="'classes' is a str, expected a list"):
        load_splits(out)
