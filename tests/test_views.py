"""Non-square views (``aspect``) and several networks averaged (``extra_views``).

The ``fast`` recipe trains a network on the centre square of each photo and another on the
whole 3:4 photo and averages their probabilities: these tests hold each piece to what it
promises (shapes, pixels, save/load, export, checkpoints, validation) on tiny networks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _nets import tiny_classifier, tiny_features
from clothingclf import ClothingClassifier, DatasetSplits
from clothingclf.backbones import CoverResize, Preprocessing
from clothingclf.checkpoint import FORMAT_VERSION, atomic_save, safe_load
from clothingclf.cli import main
from clothingclf.data.cache import build_image_cache, cache_key, decode_square, decode_view
from clothingclf.exceptions import InvalidParameterError, ModelFileError
from clothingclf.report import write_report
from clothingclf.training import network_file, train_model
from clothingclf.training.augment import _Views

PORTRAIT = 4 / 3


def _striped(width: int, height: int, share: int = 8) -> Image.Image:
    """A photo whose top ``1/share`` is red, bottom ``1/share`` blue, the rest green."""
    image = Image.new("RGB", (width, height), (0, 255, 0))
    band = height // share
    image.paste((255, 0, 0), (0, 0, width, band))
    image.paste((0, 0, 255), (0, height - band, width, height))
    return image


# ----------------------------------------------------------------- the view itself


def test_cover_resize_keeps_a_portrait_photo_whole_and_crops_the_rest() -> None:
    # A 3:4 photo fills a 3:4 canvas exactly: nothing is cut, the stripes stay.
    out = np.asarray(CoverResize(30, 40)(_striped(300, 400, share=16)))
    assert out.shape == (40, 30, 3)
    assert out[0, 15].tolist() == [255, 0, 0] and out[-1, 15].tolist() == [0, 0, 255]
    # The centre square of the same photo loses both stripes (its top and bottom eighths).
    square = decode_square(_striped(300, 400, share=16), 30).permute(1, 2, 0).numpy()
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
    tensor = tall.eval_transform()(_striped(300, 400))
    assert tensor.shape == (3, 40, 30)
    # Only the margin between the canvas (48 px tall) and the crop (40 px) is cut: the
    # crop starts 4 px into the canvas, which the 6 px red band still covers.
    assert tensor[:, 0, 15].tolist() == [1.0, 0.0, 0.0]
    # The square preprocessing is unchanged by the new field.
    assert prep.eval_transform()(_striped(300, 400)).shape == (3, 30, 30)
    assert Preprocessing.from_dict(tall.to_dict()) == tall
    old = {"image_size": 30, "resize_size": 36}  # a record written before the field
    assert Preprocessing.from_dict(old).aspect == 1.0
    for bad in (0.1, 5, "tall", True, math.nan):
        with pytest.raises(InvalidParameterError, match="aspect"):
            Preprocessing(image_size=30, resize_size=36, aspect=bad)
    with pytest.raises(ModelFileError, match="aspect"):
        Preprocessing.from_dict({**old, "aspect": 9})


def test_the_cache_holds_the_same_view_as_the_evaluation_transform(tmp_path: Path) -> None:
    paths = []
    for number, size in enumerate([(300, 400), (400, 300), (200, 200), (120, 400)]):
        path = tmp_path / f"{number}.png"
        _striped(*size).save(path)
        paths.append(str(path))
    prep = Preprocessing(image_size=24, resize_size=28, mean=(0, 0, 0), std=(1, 1, 1))
    tall = prep.with_aspect(PORTRAIT)
    cached = build_image_cache(paths, size=28, aspect=PORTRAIT)
    assert cached.shape == (4, 3, 37, 28)
    assert torch.equal(cached[0], decode_view(paths[0], 28, aspect=PORTRAIT))
    assert torch.equal(decode_view(paths[0], 28), decode_square(paths[0], 28))
    # The evaluation view of the cache is the evaluation transform's, to rounding.
    views = _Views(tall, torch.device("cpu"), channels_last=False)
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


# ----------------------------------------------------------------- one network, portrait


_tiny = tiny_classifier


def test_a_portrait_network_trains_predicts_saves_and_exports(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf = _tiny(aspect=PORTRAIT).fit(synthetic_splits)
    assert clf.preprocessing_.input_shape == (43, 32) and clf.config_.aspect == PORTRAIT
    assert len(clf.networks_) == 1
    probabilities = clf.predict_proba(synthetic_splits.test)
    assert probabilities.shape == (len(synthetic_splits.test), 4)
    one = clf.predict_proba(synthetic_splits.test["path"].iloc[0])
    np.testing.assert_allclose(one[0], probabilities[0], atol=1e-6)

    path = tmp_path / "tall.pt"
    clf.save(path)
    payload = safe_load(path)
    assert payload["format_version"] == FORMAT_VERSION == 3
    assert payload["preprocessing"]["aspect"] == PORTRAIT
    loaded = ClothingClassifier.load(path, backbone=tiny_features())
    assert loaded.preprocessing_ == clf.preprocessing_ and loaded.config_ == clf.config_
    np.testing.assert_array_equal(loaded.predict_proba(synthetic_splits.test), probabilities)

    exported = clf.export(tmp_path / "tall.ts.pt", format="torchscript")
    assert exported.metadata["input_shape"] == ["batch", 3, 43, 32]
    assert exported.metadata["aspect"] == PORTRAIT
    assert "cover a canvas" in exported.metadata["preprocessing"]
    assert exported.max_abs_diff is not None and exported.max_abs_diff < 1e-4


def test_a_square_model_file_is_the_current_format_too(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf = _tiny(epochs=1).fit(synthetic_splits)
    clf.save(tmp_path / "square.safetensors")
    payload = safe_load(tmp_path / "square.safetensors")
    assert payload["format_version"] == FORMAT_VERSION and payload["preprocessing"]["aspect"] == 1


# ----------------------------------------------------------------- several networks


@pytest.fixture(scope="module")
def pair(synthetic_splits: DatasetSplits, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A square and a portrait network, fitted with checkpoints; (classifier, folder)."""
    folder = tmp_path_factory.mktemp("pair")
    clf = _tiny(extra_views=(PORTRAIT,), val_every=2, tta=True).fit(
        synthetic_splits, checkpoint=folder / "fit.ckpt"
    )
    return clf, folder


def _own_probabilities(model: torch.nn.Module, prep: Preprocessing, paths: list[str]) -> np.ndarray:
    """One network's probabilities computed the plain way (with the mirror image)."""
    batch = torch.stack([prep.eval_transform()(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        model.eval()
        both = model(batch).double().softmax(1) + model(batch.flip(-1)).double().softmax(1)
    return (both / 2).numpy()


def test_two_networks_train_on_their_own_views_and_predict_their_average(
    pair: Any, synthetic_splits: DatasetSplits
) -> None:
    clf, folder = pair
    assert clf.config_.views() == [(32, 1.0), (32, PORTRAIT)]
    assert [prep.input_shape for _, prep in clf.networks_] == [(32, 32), (43, 32)]
    assert clf.model_ is clf.networks_[0][0] and clf.preprocessing_ is clf.networks_[0][1]
    # Both trained: their weights differ, each has its own checkpoint.
    first, second = (model.state_dict() for model, _ in clf.networks_)
    assert any(not torch.equal(first[key], second[key]) for key in first)
    assert (folder / "fit.ckpt").is_file() and (folder / "fit.network2.ckpt").is_file()
    # The history has both networks' epochs; each validated only epoch 2 (val_every=2).
    assert [(row["network"], row["epoch"]) for row in clf.history_] == [
        (net, epoch) for net in (0.0, 1.0) for epoch in (1.0, 2.0)
    ]
    validated = [not math.isnan(row["val_accuracy"]) for row in clf.history_]
    assert validated == [False, True] * 2

    paths = synthetic_splits.test["path"].tolist()
    expected = np.mean([_own_probabilities(m, p, paths) for m, p in clf.networks_], axis=0)
    np.testing.assert_allclose(clf.predict_proba(paths), expected, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(paths[0]), expected[:1], atol=1e-6)
    labels = clf.predict(paths)
    assert labels == [clf.classes_[i] for i in expected.argmax(1)]


def test_the_validation_accuracy_of_two_networks_is_that_of_their_average(
    pair: Any, synthetic_splits: DatasetSplits
) -> None:
    clf, _ = pair
    val = synthetic_splits.val
    truth = np.array([clf.classes_.index(label) for label in val["label"]])
    probabilities = clf.predict_proba(val)
    # The training loop validates from its cache; predict_proba decodes the files again:
    # the same view up to rounding, so the same labels here.
    assert clf.final_val_accuracy_ == pytest.approx(
        float((probabilities.argmax(1) == truth).mean())
    )
    assert clf.best_val_accuracy_ is not None


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_two_networks_save_load_and_export(
    pair: Any, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf, _ = pair
    path = tmp_path / "pair.pt"
    clf.save(path)
    payload = safe_load(path)
    assert payload["format_version"] == FORMAT_VERSION and len(payload["extra_networks"]) == 1
    loaded = ClothingClassifier.load(path, backbone=tiny_features())
    assert [prep for _, prep in loaded.networks_] == [prep for _, prep in clf.networks_]
    np.testing.assert_array_equal(
        loaded.predict_proba(synthetic_splits.test), clf.predict_proba(synthetic_splits.test)
    )
    assert pd.DataFrame(loaded.history_).equals(pd.DataFrame(clf.history_))  # NaN == NaN

    exported = clf.export(tmp_path / "pair.ts.pt", format="torchscript")
    meta = exported.metadata
    assert [item["input_shape"] for item in meta["inputs"]] == [
        ["batch", 3, 32, 32],
        ["batch", 3, 43, 32],
    ]
    assert [item["input_name"] for item in meta["inputs"]] == ["input", "input_2"]
    assert meta["output_averages"] == 2 and exported.max_abs_diff < 1e-4
    # The exported graph scores real photos as predict_proba does.
    graph = torch.jit.load(str(exported.path))
    paths = synthetic_splits.test["path"].tolist()[:3]
    views = [
        torch.stack([prep.eval_transform()(Image.open(p).convert("RGB")) for p in paths])
        for _, prep in clf.networks_
    ]
    with torch.no_grad():
        np.testing.assert_allclose(graph(*views).numpy(), clf.predict_proba(paths), atol=1e-5)

    # A damaged list of networks is a clear error, not a crash.
    atomic_save({**payload, "extra_networks": "two"}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="'extra_networks' must be a list of networks"):
        ClothingClassifier.load(tmp_path / "bad.pt", backbone=tiny_features())
    wrong = dict(payload["extra_networks"][0], state_dict={"x": torch.zeros(1)})
    atomic_save({**payload, "extra_networks": [wrong]}, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        ClothingClassifier.load(tmp_path / "wrong.pt", backbone=tiny_features())


def test_report_names_both_inputs(
    pair: Any, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf, _ = pair
    pytest.importorskip("matplotlib")
    files = write_report(clf, synthetic_splits.test, tmp_path / "report", max_mistakes=2)
    assert "32 px; 32 x 43 px (width x height): 2 networks, averaged" in files.markdown.read_text()
    assert files.figures["training_curves"].stat().st_size > 0


def test_resuming_two_networks_ends_with_the_same_weights(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    # A fit stopped between the networks: the first one's checkpoint is complete, the
    # second's does not exist. Resuming keeps the first and trains the second as the
    # uninterrupted fit did.
    backbone = tiny_features()  # one starting point for both fits (fit copies it)
    options = {"extra_views": (PORTRAIT,), "val_every": 2, "tta": True}
    first = tmp_path / "fit.ckpt"
    whole = _tiny(backbone=backbone, **options)
    whole.fit(synthetic_splits, checkpoint=first)
    assert network_file(first, 1) == tmp_path / "fit.network2.ckpt"
    network_file(first, 1).unlink()  # as if the fit had stopped before network 2
    resumed = _tiny(backbone=backbone, **options)
    resumed.fit(synthetic_splits, resume=first, checkpoint=first)
    for (a, _), (b, _) in zip(resumed.networks_, whole.networks_, strict=True):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), key
    np.testing.assert_array_equal(
        resumed.predict_proba(synthetic_splits.test), whole.predict_proba(synthetic_splits.test)
    )
    assert resumed.final_val_accuracy_ == whole.final_val_accuracy_
    # Resuming the first network from nothing is still a mistake.
    with pytest.raises(ModelFileError):
        _tiny(backbone=backbone, **options).fit(synthetic_splits, resume=tmp_path / "missing.ckpt")


# ----------------------------------------------------------------- validation schedule


def test_val_every_validates_only_the_epochs_it_names(synthetic_splits: DatasetSplits) -> None:
    from clothingclf.backbones import build_model
    from clothingclf.settings import resolve_config, resolve_options

    train = synthetic_splits.train.assign(
        label_id=[synthetic_splits.classes.index(v) for v in synthetic_splits.train["label"]]
    )
    val = synthetic_splits.val.assign(
        label_id=[synthetic_splits.classes.index(v) for v in synthetic_splits.val["label"]]
    )
    config = resolve_config(
        "fast",
        epochs=3,
        val_every=2,
        head_epochs=1,
        batch_size=16,
        image_size=32,
        extra_views=(),
    )
    model, prep, _ = build_model(tiny_features(), weights=None, num_classes=4, image_size=32)
    result = train_model(
        model,
        train,
        val,
        class_weights=None,
        preprocessing=prep,
        config=config,
        device=torch.device("cpu"),
        options=resolve_options(progress=False, num_workers=0, amp="off"),
    )
    seen = [not math.isnan(row["val_accuracy"]) for row in result.history]
    assert seen == [False, False, True, True]  # head stage, 1, 2 (every 2nd), 3 (last)
    assert result.final_val_accuracy == result.history[-1]["val_accuracy"]
    assert result.best_epoch in (2, 3)
    final = result.final_val_probabilities
    assert final is not None and final.shape == (len(val), 4)
    np.testing.assert_allclose(final.sum(1), 1.0, atol=1e-5)
    truth = val["label_id"].to_numpy()
    assert float((final.argmax(1) == truth).mean()) == pytest.approx(result.final_val_accuracy)


def test_cli_train_takes_an_aspect(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    code = main(
        [
            "train",
            str(synthetic_root),
            "--output",
            str(out),
            "--weights",
            "none",
            "--image-size",
            "32",
            "--aspect",
            "1.3333",
            "--epochs",
            "1",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert ClothingClassifier.load(out).preprocessing_.input_shape == (43, 32)
    assert main(["train", str(synthetic_root), "--output", str(out), "--aspect", "9"]) == 2


def test_cli_train_extra_views(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pair.pt"
    common = ["--weights", "none", "--image-size", "32", "--epochs", "1", "--no-progress"]
    assert (
        main(["train", str(synthetic_root), "-o", str(out), *common, "--extra-views", "1.3333"])
        == 0
    )
    assert [p.input_shape for _, p in ClothingClassifier.load(out).networks_] == [
        (32, 32),
        (43, 32),
    ]
    # The fast recipe's second network can be left out.
    args = ["train", str(synthetic_root), "-o", str(out), "--recipe", "fast", *common]
    assert main([*args, "--extra-views"]) == 0
    assert len(ClothingClassifier.load(out).networks_) == 1


def test_an_older_fast_model_file_loads_as_the_one_network_it_is(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    # A file written before aspect, extra_views and val_every existed: its fit trained one
    # network on the square and validated every epoch, whatever "fast" means now.
    clf = _tiny(recipe="fast", extra_views=()).fit(synthetic_splits)
    clf.save(tmp_path / "new.pt")
    payload = safe_load(tmp_path / "new.pt")
    for name in ("aspect", "extra_views", "val_every"):
        del payload["config"][name]
    del payload["preprocessing"]["aspect"]
    atomic_save(payload, tmp_path / "old.pt")
    loaded = ClothingClassifier.load(tmp_path / "old.pt", backbone=tiny_features())
    assert (loaded.config_.extra_views, loaded.config_.val_every) == ((), 1)
    assert loaded.config_.aspect == loaded.preprocessing_.aspect == 1.0
    assert len(loaded.networks_) == 1
    np.testing.assert_array_equal(
        loaded.predict_proba(synthetic_splits.test), clf.predict_proba(synthetic_splits.test)
    )
