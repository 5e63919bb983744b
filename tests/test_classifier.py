"""clothingclf.ClothingClassifier: fit (square or portrait), predict every input, evaluate,
save/load, manners."""

from __future__ import annotations

import io
import math
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from torch import nn

from _guards import forbid_unpickling
from _nets import resnet_classifier, tiny_classifier, tiny_features
from clothingclf import ClothingClassifier, DatasetSplits, Prediction, open_image, prepare_dataset
from clothingclf.checkpoint import FORMAT_VERSION, atomic_save, safe_load
from clothingclf.data.synthetic import make_synthetic
from clothingclf.exceptions import (
    DatasetError,
    ImageNotFoundError,
    InvalidImageError,
    InvalidParameterError,
    MissingColumnsError,
    ModelFileError,
    NotFittedError,
    TrainingDivergedError,
    UnsupportedFormatError,
)
from clothingclf.settings import all_settings, resolve_config

PORTRAIT = 4 / 3


class Tripwire(nn.Sequential):
    """tiny_features that raises KeyboardInterrupt (Ctrl-C) in its ``trip_at``-th training
    step (counting from 1) when ``trip_at`` is set."""

    trip_at: ClassVar[int | None] = None
    steps: ClassVar[int] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and Tripwire.trip_at is not None:
            Tripwire.steps += 1
            if Tripwire.steps == Tripwire.trip_at:
                Tripwire.trip_at = None
                raise KeyboardInterrupt
        return super().forward(x)


class Diverging(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * float("nan")


def _tiny(**params: Any) -> ClothingClassifier:
    params.setdefault("min_scale", 1.0)
    params.setdefault("flip", False)
    return tiny_classifier(**params)


@pytest.fixture(scope="module")
def fitted(synthetic_splits: DatasetSplits) -> ClothingClassifier:
    """The default backbone (ResNet-18, random weights) at 32 px, one epoch."""
    return resnet_classifier().fit(synthetic_splits)


@pytest.fixture(scope="module")
def saved(fitted: ClothingClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    fitted.save(path)
    return path


def test_learning_happens(tmp_path: Path) -> None:
    """Four garments: from chance (0.25) to far above it on photos of another seed."""
    classes = ("Dress", "Pants", "Shoes", "T-Shirt")
    train = prepare_dataset(
        make_synthetic(tmp_path / "a", classes=classes, n_per_class=40, image_size=32, seed=1),
        test_size=0,
        verify_images=False,
    )
    test = prepare_dataset(
        make_synthetic(tmp_path / "b", classes=classes, n_per_class=10, image_size=32, seed=2),
        test_size=0,
        val_size=0,
        verify_images=False,
    )
    clf = _tiny(epochs=12).fit(train.train[["path", "label"]], train.val[["path", "label"]])
    assert clf.classes_ == list(classes)
    assert len(clf.history_) == 12 and 1 <= clf.best_epoch_ <= 12
    report = clf.evaluate(test.train)
    assert report.accuracy > 0.6, str(report)  # 0.72-0.80 over three seeds


def test_fitted_attributes(fitted: ClothingClassifier, synthetic_splits: DatasetSplits) -> None:
    assert fitted.classes_ == synthetic_splits.classes
    assert fitted.kept_ == "best" and fitted.config_.epochs == 1 and fitted.config_.lr == 0.005
    assert set(fitted.history_[-1]) >= {"epoch", "train_loss", "val_loss", "val_accuracy"}
    assert fitted.best_val_accuracy_ is not None and not fitted.model_.training
    assert fitted.preprocessing_.image_size == 32 and fitted.device_ == torch.device("cpu")


def test_every_input_type_gives_the_same_probabilities(
    fitted: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    path = synthetic_splits.test["path"].iloc[0]
    image = open_image(path)
    array = np.array(image)
    reference = fitted.predict_proba(path)
    assert reference.shape == (1, len(fitted.classes_))
    assert reference.sum() == pytest.approx(1.0, abs=1e-12)
    same = [
        Path(path),
        Path(path).read_bytes(),
        image,
        array,
        torch.from_numpy(array).permute(2, 0, 1),
        torch.from_numpy(array).permute(2, 0, 1).float() / 255,
    ]
    for x in same:
        np.testing.assert_allclose(fitted.predict_proba(x), reference, atol=1e-6)
    label = fitted.classes_[int(reference.argmax())]
    assert fitted.predict(path) == label and fitted.predict(image) == label
    assert isinstance(fitted.predict(array[:, :, 0]), str)  # greyscale H×W

    several = fitted.predict_proba([path, image, array])
    np.testing.assert_allclose(several, np.repeat(reference, 3, axis=0), atol=1e-6)
    assert fitted.predict([path, array]) == [label, label]
    assert fitted.predict(np.stack([array, array])) == [label, label]  # N×H×W×3
    assert fitted.predict(torch.from_numpy(array).permute(2, 0, 1)[None]) == [label]
    assert fitted.predict([]) == [] and fitted.predict_proba([]).shape == (0, 4)


def test_split_table_streams_in_batches(
    fitted: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    table = synthetic_splits.test
    by_table = fitted.predict_proba(table, batch_size=3)
    one_by_one = np.concatenate([fitted.predict_proba(p) for p in table["path"]])
    np.testing.assert_allclose(by_table, one_by_one, atol=1e-6)
    np.testing.assert_allclose(by_table.sum(axis=1), 1.0, atol=1e-12)
    assert fitted.predict(table) == [fitted.classes_[i] for i in by_table.argmax(1)]


def test_predict_top(fitted: ClothingClassifier, synthetic_splits: DatasetSplits) -> None:
    path = synthetic_splits.test["path"].iloc[0]
    top = fitted.predict_top(path, k=2)
    assert isinstance(top, Prediction) and len(top.top_k) == 2
    probabilities = fitted.predict_proba(path)[0]
    assert top.label == fitted.predict(path) and top.score == pytest.approx(probabilities.max())
    assert top.top_k[0] == (top.label, top.score) and top.top_k[1][1] <= top.score
    assert len(fitted.predict_top(path, k=99).top_k) == 4
    assert [p.label for p in fitted.predict_top([path, path])] == [top.label] * 2
    with pytest.raises(InvalidParameterError, match="k must be a positive int"):
        fitted.predict_top(path, k=0)


def test_bad_inputs_name_the_file(fitted: ClothingClassifier, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(ImageNotFoundError, match=r"missing\.jpg"):
        fitted.predict(missing)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InvalidImageError, match=r"broken\.jpg"):
        fitted.predict([str(broken), str(broken)])
    with pytest.raises(InvalidImageError, match=r"Input 1: The array has shape \(2, 2, 5\)"):
        fitted.predict([np.zeros((4, 4, 3), np.uint8), np.zeros((2, 2, 5), np.uint8)])
    with pytest.raises(InvalidImageError, match="Cannot read images from a int"):
        fitted.predict(3)
    with pytest.raises(MissingColumnsError, match="lacks column 'path'"):
        fitted.predict(pd.DataFrame({"file": ["a.jpg"]}))


def test_save_then_load_gives_identical_probabilities(
    fitted: ClothingClassifier,
    saved: Path,
    synthetic_splits: DatasetSplits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as guarded:
        forbid_unpickling(guarded)  # load reads the file without pickle
        loaded = ClothingClassifier.load(saved, device="cpu")
    table = synthetic_splits.test
    np.testing.assert_allclose(loaded.predict_proba(table), fitted.predict_proba(table), atol=1e-6)
    assert loaded.classes_ == fitted.classes_ and loaded.history_ == fitted.history_
    assert loaded.preprocessing_ == fitted.preprocessing_ and loaded.config_ == fitted.config_
    assert loaded.best_epoch_ == fitted.best_epoch_ and loaded.kept_ == "best"
    assert loaded.best_val_accuracy_ == fitted.best_val_accuracy_
    # How the fit ran (workers, progress, ...) is not the model's: it is not saved.
    run_options = {s.name: None for s in all_settings() if s.runtime}
    assert loaded.get_params() == {**fitted.get_params(), "device": "cpu", **run_options}
    assert not set(run_options) & set(safe_load(saved)["config"])
    payload = safe_load(saved)
    assert payload["holds"] == "best" and payload["format_version"] == FORMAT_VERSION == 3
    assert payload["weights_dtype"] == "float32" and loaded.model_card_ is None
    assert set(payload["metrics"]) == {"best_val_accuracy", "final_val_accuracy", "best_epoch"}


def test_image_size_is_the_recipes_and_old_files_take_it_from_their_preprocessing(
    fitted: ClothingClassifier, saved: Path, tmp_path: Path
) -> None:
    assert fitted.config_.image_size == fitted.preprocessing_.image_size == 32
    assert resolve_config("seed").image_size == 224
    # A file written before image_size was a training setting lacks it in its config.
    payload = safe_load(saved)
    del payload["config"]["image_size"]
    old = tmp_path / "old.pt"
    atomic_save(payload, old)
    loaded = ClothingClassifier.load(old, device="cpu")
    assert loaded.config_.image_size == 32 and loaded.config_ == fitted.config_
    with pytest.raises(
        InvalidParameterError, match="image_size must be an int from 8 to 2048; found 4"
    ):
        resolve_config("fast", image_size=4)


def test_a_portrait_network_trains_predicts_saves_and_exports(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf = tiny_classifier(aspect=PORTRAIT).fit(synthetic_splits)
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
    clf = tiny_classifier(epochs=1).fit(synthetic_splits)
    clf.save(tmp_path / "square.safetensors")
    payload = safe_load(tmp_path / "square.safetensors")
    assert payload["format_version"] == FORMAT_VERSION and payload["preprocessing"]["aspect"] == 1


def test_predict_from_four_threads_matches_sequential(
    saved: Path, synthetic_splits: DatasetSplits
) -> None:
    clf = ClothingClassifier.load(saved, device="cpu")
    paths = list(synthetic_splits.test["path"])
    expected = clf.predict_proba(paths)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(clf.predict_proba(paths, batch_size=4))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 12
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_evaluate(fitted: ClothingClassifier, synthetic_splits: DatasetSplits) -> None:
    report = fitted.evaluate(synthetic_splits.test)
    predictions = fitted.predict(synthetic_splits.test)
    truth = list(synthetic_splits.test["label"])
    assert report.accuracy == pytest.approx(
        np.mean([p == t for p, t in zip(predictions, truth, strict=True)])
    )
    assert report.confusion_matrix.sum() == len(truth) and report.classes == tuple(fitted.classes_)
    assert fitted.evaluate(synthetic_splits).n_samples == len(synthetic_splits.test)
    strange = synthetic_splits.test.assign(label="Ball gown")
    with pytest.raises(DatasetError, match="Ball gown"):
        fitted.evaluate(strange)


@pytest.mark.parametrize("content", [b"random bytes \x00\x01", b""], ids=["random", "empty"])
def test_load_refuses_what_is_not_a_model(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=r"model\.pt"):
        ClothingClassifier.load(path)


def test_load_refuses_unsafe_newer_truncated_and_foreign_files(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "clothingclf", "format_version": 1, "x": Evil()}, evil)
    with pytest.raises(ModelFileError, match=r"torch.save archive.*never unpickles"):
        ClothingClassifier.load(evil)
    assert not marker.exists()

    payload = safe_load(saved)
    atomic_save({**payload, "format_version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(UnsupportedFormatError, match="Upgrade"):
        ClothingClassifier.load(tmp_path / "newer.pt")
    without_format = {k: v for k, v in payload.items() if k != "format"}
    atomic_save(without_format, tmp_path / "bare.pt")
    with pytest.raises(ModelFileError, match="not a clothingclf model file"):
        ClothingClassifier.load(tmp_path / "bare.pt")
    (tmp_path / "half.pt").write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="damaged"):
        ClothingClassifier.load(tmp_path / "half.pt")
    wrong = dict(payload)
    first = next(iter(payload["state_dict"]))
    wrong["state_dict"] = {**payload["state_dict"], first: torch.zeros(4, 3)}
    atomic_save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        ClothingClassifier.load(tmp_path / "wrong.pt")


def test_unfitted_use_raises_not_fitted(tmp_path: Path) -> None:
    clf = ClothingClassifier()
    for call in (
        lambda: clf.predict("x.jpg"),
        lambda: clf.predict_proba("x.jpg"),
        lambda: clf.evaluate(pd.DataFrame({"path": [], "label": []})),
        lambda: clf.save(tmp_path / "m.pt"),
    ):
        with pytest.raises(NotFittedError, match="call fit"):
            call()
    assert isinstance(NotFittedError("x"), AttributeError)


def test_sklearn_manners() -> None:
    features = tiny_features()
    clf = ClothingClassifier(backbone=features, epochs=3, lr=0.01)
    assert clf.backbone is features and clf.image_size is None  # stored unchanged
    params = clf.get_params()
    assert params["epochs"] == 3 and params["recipe"] == "fast" and params["weights"] == "DEFAULT"
    twin = clone(clf)
    assert twin is not clf and twin.epochs == 3 and twin.backbone is not features
    assert clf.set_params(epochs=5, keep="final") is clf and clf.epochs == 5
    assert "epochs=5" in repr(clf)


def test_resume_reproduces_an_uninterrupted_run(
    tmp_path: Path, synthetic_splits: DatasetSplits
) -> None:
    def make() -> ClothingClassifier:
        torch.manual_seed(0)  # the same initial weights of the module, as a user would have
        return _tiny(backbone=Tripwire(*tiny_features()), keep="final", seed=3)

    whole = make().fit(synthetic_splits)

    # The first step of epoch 2: epoch 1 has ceil(77 / 16) = 5 steps.
    Tripwire.trip_at, Tripwire.steps = math.ceil(len(synthetic_splits.train) / 16) + 1, 0
    stopped = make().fit(synthetic_splits, checkpoint=tmp_path / "ckpt.pt")
    assert stopped.interrupted_ and len(stopped.history_) == 1  # Ctrl-C kept epoch 1
    assert stopped.best_epoch_ == 1 and Tripwire.trip_at is None

    resumed = make().fit(synthetic_splits, resume=tmp_path / "ckpt.pt")
    assert not resumed.interrupted_ and len(resumed.history_) == 2
    for key, value in whole.model_.state_dict().items():
        assert torch.equal(resumed.model_.state_dict()[key], value), key

    whole.save(tmp_path / "final.pt")
    assert safe_load(tmp_path / "final.pt")["holds"] == "final"
    with pytest.raises(ModelFileError, match="backbone=MyFeatures"):
        ClothingClassifier.load(tmp_path / "final.pt")
    again = ClothingClassifier.load(tmp_path / "final.pt", backbone=Tripwire(*tiny_features()))
    table = synthetic_splits.test
    np.testing.assert_allclose(again.predict_proba(table), whole.predict_proba(table), atol=1e-6)


def test_nan_loss_stops_with_a_clear_error(synthetic_splits: DatasetSplits) -> None:
    with pytest.raises(TrainingDivergedError, match=r"(?i)learning rate"):
        _tiny(backbone=Diverging(), epochs=1).fit(synthetic_splits)


def test_fit_validates_its_input(synthetic_splits: DatasetSplits) -> None:
    train = synthetic_splits.train[["path", "label"]]
    with pytest.raises(MissingColumnsError, match="lacks column 'label'"):
        _tiny().fit(train[["path"]])
    with pytest.raises(DatasetError, match="Ball gown"):
        _tiny().fit(train, train.assign(label="Ball gown"))
    with pytest.raises(InvalidParameterError, match="do not pass val_df too"):
        _tiny().fit(synthetic_splits, train)
    with pytest.raises(InvalidParameterError, match="device"):
        _tiny(device="tpu").fit(train)
    with pytest.raises(InvalidParameterError, match="keep"):
        _tiny(keep="last").fit(train)
    with pytest.raises(InvalidParameterError, match="Did you mean resnet18"):
        _tiny(backbone="resnet81").fit(train)
    with pytest.raises(InvalidParameterError, match="has no parameter 'training_options'"):
        _tiny(training_options={"epochs": 3}).fit(train)


def test_fit_on_tables_without_validation(synthetic_splits: DatasetSplits) -> None:
    train = synthetic_splits.train[["path", "label"]].iloc[:24]
    clf = _tiny(epochs=1).fit(train)
    assert clf.best_val_accuracy_ is None and len(clf.history_) == 1
    assert clf.classes_ == sorted(set(train["label"]))
    image = Image.new("RGB", (50, 40), (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert clf.predict(buffer.getvalue()) in clf.classes_


def test_unknown_parameters_and_devices_are_clothingclf_errors(
    fitted: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    with pytest.raises(
        InvalidParameterError, match=r"no parameter 'epoch'\. Did you mean 'epochs'"
    ):
        ClothingClassifier().set_params(epoch=3)
    assert ClothingClassifier().set_params(epochs=3).epochs == 3
    if not torch.backends.mps.is_available():
        with pytest.raises(InvalidParameterError, match="'mps' is not available on this machine"):
            ClothingClassifier.load(Path("unused"), device="mps")
    for size in (0, -1, True, 2.5):
        with pytest.raises(InvalidParameterError, match="batch_size must be a positive int"):
            fitted.predict(synthetic_splits.test, batch_size=size)  # type: ignore[arg-type]


def test_save_arguments_of_the_wrong_kind_are_refused(
    fitted: ClothingClassifier, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterError, match="weights_dtype must be"):
        fitted.save(tmp_path / "m.safetensors", weights_dtype=["float16"])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="model_card must be a mapping"):
        fitted.save(tmp_path / "m.safetensors", model_card="a fine model")  # type: ignore[arg-type]
    assert not (tmp_path / "m.safetensors").exists()


def test_a_single_class_is_refused(synthetic_splits: DatasetSplits) -> None:
    one = synthetic_splits.train[synthetic_splits.train["label"] == "Dress"]
    with pytest.raises(DatasetError, match=r"one class only \(Dress\)"):
        tiny_classifier(epochs=1).fit(one[["path", "label"]], None)


def test_half_precision_that_overflows_is_refused_before_writing(
    fitted: ClothingClassifier, tmp_path: Path
) -> None:
    with torch.no_grad():
        original = fitted.model_.head.bias.clone()
        fitted.model_.head.bias[0] = 1e6  # beyond float16's 65504
        try:
            with pytest.raises(InvalidParameterError, match=r"head\.bias does not fit in float16"):
                fitted.save(tmp_path / "m.safetensors", weights_dtype="float16")
            assert not (tmp_path / "m.safetensors").exists()
            fitted.save(
                tmp_path / "m.safetensors", weights_dtype="bfloat16"
            )  # its range is float32's
        finally:
            fitted.model_.head.bias.copy_(original)


def test_learned_attributes_are_read_from_the_fitted_model(
    fitted: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    import copy
    import pickle

    assert fitted.classes_ is fitted.fitted_.classes
    assert fitted.model_ is fitted.networks_[0][0]
    with pytest.raises(AttributeError, match="set networks_ instead"):
        fitted.model_ = fitted.model_
    # a shallow copy's attributes are set apart from the original's
    other = copy.copy(fitted)
    other.history_ = []
    assert fitted.history_ and other.fitted_ is not fitted.fitted_
    # a classifier pickled by 0.2 kept each attribute apart: it comes back fitted
    old = {k: v for k, v in vars(fitted).items() if k != "fitted_"}
    model = fitted.fitted_
    old.update(
        networks_=model.networks,
        model_=model.networks[0][0],
        preprocessing_=model.networks[0][1],
        config_=model.config,
        model_spec_=model.spec,
        classes_=model.classes,
        history_=model.history,
        best_epoch_=fitted.best_epoch_,
        best_val_accuracy_=fitted.best_val_accuracy_,
        final_val_accuracy_=fitted.final_val_accuracy_,
        kept_=model.holds,
        teacher_image_passes_=None,
        model_card_=None,
        calibration_=model.calibration,
        precision_checks_={},
    )
    restored = ClothingClassifier.__new__(ClothingClassifier)
    restored.__setstate__(pickle.loads(pickle.dumps(old)))
    assert restored.__sklearn_is_fitted__() and "model_" not in vars(restored)
    assert (restored.best_epoch_, restored.kept_) == (fitted.best_epoch_, fitted.kept_)
    paths = list(synthetic_splits.test["path"][:4])
    np.testing.assert_array_equal(restored.predict_proba(paths), fitted.predict_proba(paths))
