"""clothingclf.calibration, and calibrated confidence through the estimator: temperature
scaling fitted on validation, stored in the model file and the exports, applied by
predict_proba; the calibration error, reliability table and coverage curve of evaluate;
predict_top(min_score=) abstaining."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _nets import resnet_classifier, tiny_classifier, tiny_features
from clothingclf import ClothingClassifier, calibration, fitting
from clothingclf.calibration import (
    Calibration,
    coverage_curve,
    expected_calibration_error,
    reliability_table,
)
from clothingclf.checkpoint import atomic_save, safe_load
from clothingclf.data import DatasetSplits
from clothingclf.exceptions import InvalidParameterError, ModelFileError


def _over_confident(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), and the probabilities softmax(z * temperature) of a
    model that is over-confident by that factor: ``Calibration.fit`` should find it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, 5))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in truth])
    sharp = np.exp(logits * temperature)
    return sharp / sharp.sum(1, keepdims=True), labels


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_finds_the_temperature_and_lowers_the_error(true_temperature: float) -> None:
    probabilities, labels = _over_confident(4000, true_temperature)
    fitted = Calibration.fit(probabilities, labels)
    assert fitted.temperature == pytest.approx(true_temperature, rel=0.1)
    calibrated = fitted.apply(probabilities)
    assert np.array_equal(calibrated.argmax(1), probabilities.argmax(1))  # labels unchanged
    assert np.allclose(calibrated.sum(1), 1.0)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(calibrated, labels)
    assert after < 0.03 < before


def test_apply_in_numpy_and_in_torch_agree() -> None:
    import torch

    probabilities, _ = _over_confident(50, 2.0)
    cal = Calibration(temperature=1.7)
    tensor = cal.apply_tensor(torch.from_numpy(probabilities)).numpy()
    assert np.abs(tensor - cal.apply(probabilities)).max() < 1e-12
    identity = Calibration()
    assert identity.is_identity
    assert np.array_equal(identity.apply(probabilities), probabilities)


def test_reliability_bins_hold_every_image_once() -> None:
    probabilities = np.array([[1.0, 0.0], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 1])
    table = reliability_table(probabilities, labels, bins=5)
    assert table["images"].sum() == 4 and len(table) == 5
    # bins (low, high]: 0.5 in (0.4, 0.6], 0.7 and 0.8 in (0.6, 0.8], 1.0 in the last
    assert table["images"].tolist() == [0, 0, 1, 2, 1]
    pair = table.iloc[3]
    assert pair["confidence"] == pytest.approx(0.75) and pair["accuracy"] == 0.5
    assert math.isnan(table.iloc[0]["accuracy"])
    # |accuracy - confidence| weighted by images: 0.5 (wrong at 0.5), 0.25 twice, 0
    expected = (0.5 + 2 * 0.25 + 0.0) / 4
    assert expected_calibration_error(probabilities, labels, bins=5) == pytest.approx(expected)


def test_coverage_curve_trades_photos_for_accuracy() -> None:
    probabilities, labels = _over_confident(2000, 1.0, seed=3)
    curve = coverage_curve(probabilities, labels)
    assert curve["threshold"].is_monotonic_increasing
    assert curve["coverage"].is_monotonic_decreasing
    assert curve.iloc[0]["coverage"] == 1.0
    assert curve.iloc[0]["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    assert curve.iloc[-1]["accuracy"] > curve.iloc[0]["accuracy"]  # the sure ones are right
    empty = coverage_curve(probabilities, labels, thresholds=[1.0])
    assert empty.iloc[0]["images"] == 0 and math.isnan(empty.iloc[0]["accuracy"])


@pytest.mark.parametrize(
    ("probabilities", "labels", "message"),
    [
        (np.ones((3,)), [0, 1, 0], "shape"),
        (np.full((2, 2), np.nan), [0, 1], "finite"),
        (np.full((2, 2), 0.5), [0], "2 integer class ids"),
        (np.full((2, 2), 0.5), [0.0, 1.0], "integer"),
        (np.full((2, 2), 0.5), [0, 2], r"expected 0\.\.1"),
    ],
)
def test_bad_inputs_are_named(probabilities: np.ndarray, labels: list[float], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        Calibration.fit(probabilities, labels)
    with pytest.raises(InvalidParameterError, match=message):
        expected_calibration_error(probabilities, labels)


def test_a_split_that_pushes_the_temperature_to_its_limit_is_warned_about() -> None:
    probabilities = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])  # every one right
    with pytest.warns(UserWarning, match="at the limit 0.05"):
        fitted = Calibration.fit(probabilities, [0, 1, 0])
    assert fitted.temperature == pytest.approx(calibration.TEMPERATURE_RANGE[0], rel=1e-3)
    assert Calibration(np.float32(0.5)).temperature == 0.5  # numpy numbers are numbers


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), 1e9, "2", True])
def test_a_temperature_out_of_range_is_refused(temperature: object) -> None:
    with pytest.raises(InvalidParameterError, match="temperature must be a number"):
        Calibration(temperature=temperature)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="Unknown calibration method"):
        Calibration.from_dict({"method": "isotonic"})


# ---------------------------------------------------------------------- the estimator


@pytest.fixture(scope="module")
def calibrated(synthetic_splits: DatasetSplits) -> ClothingClassifier:
    """A small model that fit calibrated on its 9 validation photos (the minimum lowered
    for this fit only)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(fitting, "MIN_CALIBRATION_IMAGES", 5)
        warnings.filterwarnings("ignore", "The fitted temperature is at the limit")
        return tiny_classifier().fit(synthetic_splits)


@pytest.mark.filterwarnings("ignore:The fitted temperature is at the limit")
def test_fit_calibrates_on_validation_and_predict_applies_it(
    calibrated: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    test = synthetic_splits.test
    assert not calibrated.calibration_.is_identity
    raw = calibrated.predict_proba(test, calibrated=False)
    got = calibrated.predict_proba(test)
    assert np.allclose(got, calibrated.calibration_.apply(raw), atol=1e-12)
    assert np.array_equal(got.argmax(1), raw.argmax(1))
    # fitted on the fit's own validation probabilities: those predict_proba gives
    truth = calibrated.predictor().label_ids(synthetic_splits.val, "val")
    val_raw = calibrated.predict_proba(synthetic_splits.val, calibrated=False)
    again = Calibration.fit(val_raw, truth).temperature
    assert calibrated.calibration_.temperature == pytest.approx(again, rel=1e-3)


def test_a_small_validation_split_is_not_calibrated_on(synthetic_splits: DatasetSplits) -> None:
    clf = resnet_classifier().fit(synthetic_splits)  # 9 validation photos < 100
    assert clf.calibration_.is_identity
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.calibrate(synthetic_splits)
    assert any("Calibrating on 9 photos" in str(w.message) for w in caught)
    assert not clf.calibration_.is_identity


def test_the_calibration_is_saved_and_loaded(
    calibrated: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    calibrated.save(path)
    loaded = ClothingClassifier.load(path, device="cpu", backbone=tiny_features())
    assert loaded.calibration_ == calibrated.calibration_
    test = synthetic_splits.test
    assert np.abs(loaded.predict_proba(test) - calibrated.predict_proba(test)).max() < 1e-6


def test_files_without_calibration_load_as_identity_and_bad_ones_are_refused(
    calibrated: ClothingClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    calibrated.save(path)
    payload = safe_load(path, what="model file")
    del payload["calibration"]  # as written before calibration existed
    old = tmp_path / "old.safetensors"
    atomic_save(payload, old)
    loaded = ClothingClassifier.load(old, device="cpu", backbone=tiny_features())
    assert loaded.calibration_.is_identity
    for bad in ({"method": "temperature", "temperature": -3.0}, "hot", {"method": "magic"}):
        payload["calibration"] = bad
        edited = tmp_path / "edited.safetensors"
        atomic_save(payload, edited)
        with pytest.raises(ModelFileError, match=r"edited\.safetensors.*calibration"):
            ClothingClassifier.load(edited, device="cpu", backbone=tiny_features())


def test_evaluate_reports_calibration_and_coverage(
    calibrated: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    report = calibrated.evaluate(synthetic_splits.test)
    probabilities = calibrated.predict_proba(synthetic_splits.test)
    truth = calibrated.predictor().label_ids(synthetic_splits.test, "test")
    assert report.expected_calibration_error == pytest.approx(
        expected_calibration_error(probabilities, truth)
    )
    assert report.reliability is not None and report.reliability["images"].sum() == len(truth)
    assert report.coverage is not None
    assert report.coverage.iloc[0]["accuracy"] == pytest.approx(report.accuracy)
    data = json.loads(json.dumps(report.to_dict()))  # JSON-able, NaN as null
    assert data["expected_calibration_error"] == pytest.approx(report.expected_calibration_error)
    assert len(data["reliability"]) == calibration.CALIBRATION_BINS
    assert "calibration error" in str(report) and "coverage" in str(report)


def test_predict_top_abstains_below_min_score(
    calibrated: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    paths = list(synthetic_splits.test["path"])
    everything = calibrated.predict_top(paths, k=2)
    threshold = float(np.median([p.score for p in everything]))
    sure = calibrated.predict_top(paths, k=2, min_score=threshold)
    for plain, maybe in zip(everything, sure, strict=True):
        assert maybe.top_k == plain.top_k and maybe.score == plain.score
        assert maybe.label == (plain.label if plain.score >= threshold else None)
    assert any(p.label is None for p in sure) and any(p.label is not None for p in sure)
    assert calibrated.predict_top(paths[0], min_score=0.0).label == everything[0].label
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(InvalidParameterError, match="min_score must be"):
            calibrated.predict_top(paths[0], min_score=bad)  # type: ignore[arg-type]
    assert pd.Series([p.flat()["label"] for p in sure]).isna().any()
