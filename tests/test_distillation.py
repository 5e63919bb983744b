"""Distillation and the class balance: fit(teacher=...), the training objective
(clothingclf.training.steps.Objective), logit adjustment in training and the balance of
prediction (Calibration's prior, predict(balance=...), clothingclf predict --balance)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from _nets import resnet_classifier, tiny_classifier, tiny_features
from clothingclf import ClothingClassifier
from clothingclf.backbones import build_model
from clothingclf.calibration import BALANCES, Calibration, class_prior
from clothingclf.checkpoint import atomic_save, safe_load
from clothingclf.cli import main
from clothingclf.data import DatasetSplits
from clothingclf.exceptions import InvalidParameterError, ModelFileError, NotFittedError
from clothingclf.settings import resolve_config, resolve_options
from clothingclf.training import train_model
from clothingclf.training.steps import Objective, _loss

# ---------------------------------------------------------------------- the objective


def test_without_teacher_or_adjustment_the_objective_is_the_label_loss() -> None:
    config = resolve_config("fast")
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    objective = Objective(config, None, torch.full((4,), 0.25))
    assert torch.equal(objective(logits, target), _loss(logits, target, None, 0.1))


def test_the_distillation_term_is_hintons_kl_at_the_temperature() -> None:
    config = resolve_config("fast", distill_weight=0.7, distill_temperature=2.0)
    logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    teacher = torch.softmax(torch.randn(5, 3), dim=1)
    got = Objective(config, None, None)(logits, target, teacher)
    softened = torch.softmax(teacher.log() / 2.0, dim=1)
    kl = (softened * (softened.log() - F.log_softmax(logits / 2.0, dim=1))).sum(1).mean()
    expected = 0.7 * 4.0 * kl + 0.3 * _loss(logits, target, None, 0.1)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # matching the teacher exactly leaves only the label term
    same = Objective(
        resolve_config("fast", distill_weight=1.0, distill_temperature=1.0), None, None
    )
    assert float(same(teacher.log(), target, teacher)) == pytest.approx(0.0, abs=1e-6)


def test_logit_adjustment_adds_tau_log_prior_in_both_terms() -> None:
    prior = torch.tensor([0.7, 0.2, 0.1])
    config = resolve_config("fast", logit_adjustment=1.5, distill_weight=0.5)
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    teacher = torch.softmax(torch.randn(4, 3), dim=1)
    shifted = logits + 1.5 * prior.log()
    plain = Objective(resolve_config("fast", distill_weight=0.5), None, None)
    adjusted = Objective(config, None, prior)
    assert float(adjusted(logits, target, teacher)) == pytest.approx(
        float(plain(shifted, target, teacher)), rel=1e-6
    )


# ---------------------------------------------------------------------- fit(teacher=)


def _images(folder: Path, count: int) -> pd.DataFrame:
    """``count`` photos of two kinds (dark and light) with labels that ignore the kind."""
    from PIL import Image

    rows = []
    for i in range(count):
        shade = 30 if i % 2 else 220
        Image.new("RGB", (40, 40), (shade, shade, shade)).save(folder / f"{i}.png")
        rows.append({"path": str(folder / f"{i}.png"), "label_id": (i // 2) % 2})
    return pd.DataFrame(rows)


def test_a_network_taught_only_by_the_teacher_learns_the_teachers_labels(tmp_path: Path) -> None:
    """With ``distill_weight=1`` the labels play no part: the teacher, which labels by
    shade, is what the network learns (the labels would need memorising, shades not)."""
    table = _images(tmp_path, 16)
    by_shade = np.array([[0.95, 0.05] if i % 2 else [0.05, 0.95] for i in range(16)])
    net, prep, _ = build_model(tiny_features(), weights=None, num_classes=2, image_size=32)
    config = resolve_config(
        "seed", epochs=30, head_epochs=0, optimizer="adamw", lr=1e-2, batch_size=16,
        distill_weight=1.0, flip=False, min_scale=1.0,
    )  # fmt: skip
    result = train_model(
        net, table, table, class_weights=None, preprocessing=prep, config=config,
        device=torch.device("cpu"), options=resolve_options(progress=False, num_workers=0),
        teacher_probabilities=by_shade,
    )  # fmt: skip
    probabilities = result.final_val_probabilities
    assert probabilities is not None
    agrees = (probabilities.argmax(1) == by_shade.argmax(1)).mean()
    assert agrees == 1.0, probabilities.round(2)


def test_teacher_probabilities_must_fit_the_training_table(tmp_path: Path) -> None:
    table = _images(tmp_path, 4)
    net, prep, _ = build_model("resnet18", weights=None, num_classes=2, image_size=32)
    with pytest.raises(InvalidParameterError, match=r"one row of 2 class probabilities per"):
        train_model(
            net, table, None, class_weights=None, preprocessing=prep,
            config=resolve_config("seed", epochs=1), device=torch.device("cpu"),
            options=resolve_options(progress=False, num_workers=0),
            teacher_probabilities=np.full((3, 2), 0.5),
        )  # fmt: skip


@pytest.fixture(scope="module")
def teacher(synthetic_splits: DatasetSplits) -> ClothingClassifier:
    return tiny_classifier(epochs=2).fit(synthetic_splits)


@pytest.fixture(scope="module")
def student(synthetic_splits: DatasetSplits, teacher: ClothingClassifier) -> ClothingClassifier:
    return tiny_classifier(epochs=2, logit_adjustment=1.0).fit(synthetic_splits, teacher=teacher)


def test_fit_with_a_teacher_records_its_cost_and_keeps_the_prior(
    student: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    train = len(synthetic_splits.train)
    assert student.teacher_image_passes_ == train  # one network, no mirror pass
    calibration = student.calibration_
    counts = synthetic_splits.train["label"].value_counts()
    expected = [counts[name] / train for name in student.classes_]
    assert calibration.adjustable and calibration.logit_adjustment == 1.0
    assert np.allclose(calibration.prior, expected) and calibration.balance == 0.0
    path = tmp_path / "student.safetensors"
    student.save(path)
    loaded = ClothingClassifier.load(path, device="cpu", backbone=tiny_features())
    assert loaded.teacher_image_passes_ == train and loaded.calibration_ == calibration
    assert loaded.config_.logit_adjustment == 1.0


def test_a_teacher_file_is_read_and_its_classes_matched_by_name(
    synthetic_splits: DatasetSplits, teacher: ClothingClassifier, tmp_path: Path
) -> None:
    from clothingclf.fitting import teacher_probabilities

    path = tmp_path / "teacher.safetensors"
    teacher.save(path)
    train = synthetic_splits.train
    expected = teacher.predict_proba(train, calibrated=False)
    shuffled = list(reversed(teacher.classes_))
    got, passes = teacher_probabilities(teacher, train, shuffled)
    assert np.allclose(got, expected[:, ::-1], atol=1e-9) and passes == len(train)
    with pytest.raises(InvalidParameterError, match=r"does not know the classes \['Hat'\]"):
        teacher_probabilities(teacher, train, [*teacher.classes_, "Hat"])
    with pytest.raises(NotFittedError):
        ClothingClassifier().fit(synthetic_splits, teacher=ClothingClassifier())
    with pytest.raises(InvalidParameterError, match="teacher must be a fitted"):
        ClothingClassifier().fit(synthetic_splits, teacher=42)  # type: ignore[arg-type]
    with pytest.raises(ModelFileError):
        ClothingClassifier().fit(synthetic_splits, teacher=tmp_path / "missing.safetensors")


# ---------------------------------------------------------------------- the balance


def test_the_balance_moves_between_the_prior_and_none_of_it() -> None:
    prior = (0.8, 0.15, 0.05)
    raw = np.array([[0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])
    calibration = Calibration(temperature=1.5, prior=prior, logit_adjustment=2.0)
    for name, value in BALANCES.items():
        at = calibration.at(name)
        assert at.balance == value and at.temperature == 1.5
        shift = (1 - value) * 2.0 * np.log(prior)
        logits = (np.log(raw) + shift) / 1.5
        expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        assert np.allclose(at.apply(raw), expected, atol=1e-12)
        tensor = at.apply_tensor(torch.tensor(raw, dtype=torch.float32)).numpy()
        assert np.allclose(tensor, expected, atol=1e-6)
    assert calibration.apply(raw)[:, 0].mean() > calibration.at(1.0).apply(raw)[:, 0].mean()
    assert Calibration.from_dict(calibration.at(0.25).to_dict()) == calibration.at(0.25)
    assert Calibration(1.2).to_dict() == {"method": "temperature", "temperature": 1.2}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prior": (0.5, 0.6)}, "sum to 1"),
        ({"prior": (1.0,)}, "two or more"),
        ({"prior": (0.5, math.nan, 0.5)}, "in \\(0, 1\\]"),
        ({"prior": (1.0, 0.0)}, "in \\(0, 1\\]"),
        ({"prior": "ab"}, "class frequencies"),
        ({"prior": (0.5,) * 20_002}, "class frequencies"),
        ({"logit_adjustment": -1.0}, "logit_adjustment must be"),
        ({"logit_adjustment": math.inf}, "logit_adjustment must be"),
        ({"balance": 1.5}, "balance must be"),
        ({"balance": "fair"}, "balance must be 'accuracy', 'middle', 'balanced'"),
        ({"balance": [0.5]}, "balance must be"),
    ],
)
def test_malformed_calibrations_are_refused(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"prior": (0.5, 0.5), "logit_adjustment": 1.0, **fields}
    with pytest.raises(InvalidParameterError, match=message):
        Calibration(**values)  # type: ignore[arg-type]


def test_a_model_trained_without_adjustment_has_no_balance(
    teacher: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    with pytest.raises(InvalidParameterError, match="needs a model trained with logit_adj"):
        teacher.predict_proba(synthetic_splits.test, balance="balanced")
    with pytest.raises(InvalidParameterError, match="needs a model trained with logit_adj"):
        teacher.calibrate(synthetic_splits.val, balance=0.5)


def test_predict_and_evaluate_take_a_balance(
    student: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    test = synthetic_splits.test
    raw = student.predict_proba(test, calibrated=False)
    for balance in ("accuracy", 0.3, "balanced"):
        expected = student.calibration_.at(balance).apply(raw)
        assert np.allclose(student.predict_proba(test, balance=balance), expected, atol=1e-12)
    report = student.evaluate(test, balance="balanced")
    truth = student.predictor().label_ids(test, "test")
    assert report.accuracy == pytest.approx((raw.argmax(1) == truth).mean())
    with pytest.raises(InvalidParameterError, match="balance must be"):
        student.predict(test, balance=2)


def test_calibrate_at_a_balance_makes_it_the_default(
    student: ClothingClassifier, synthetic_splits: DatasetSplits
) -> None:
    import copy

    clf = copy.deepcopy(student)
    with pytest.warns(UserWarning, match="Calibrating on 9 photos"):
        clf.calibrate(synthetic_splits.val, balance="middle")
    assert clf.calibration_.balance == 0.5 and clf.calibration_.prior == student.calibration_.prior
    val = synthetic_splits.val
    raw = clf.predict_proba(val, calibrated=False)
    truth = clf.predictor().label_ids(val, "val")
    again = Calibration.fit(raw, truth, base=student.calibration_.at("middle"))
    assert clf.calibration_.temperature == pytest.approx(again.temperature, rel=1e-6)


def test_a_prior_that_does_not_fit_the_classes_is_a_damaged_file(
    student: ClothingClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "student.safetensors"
    student.save(path)
    payload = safe_load(path)
    payload["calibration"]["prior"] = [0.5, 0.5]
    atomic_save(payload, tmp_path / "damaged.safetensors")
    with pytest.raises(ModelFileError, match="a prior of 2 classes for 4 classes"):
        ClothingClassifier.load(tmp_path / "damaged.safetensors", backbone=tiny_features())


def test_class_prior_counts_each_class_once_at_least() -> None:
    assert class_prior([0, 0, 1, 0], 3) == pytest.approx((3 / 5, 1 / 5, 1 / 5))


def test_cli_predict_takes_a_balance(
    synthetic_splits: DatasetSplits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clf = resnet_classifier(logit_adjustment=1.0).fit(synthetic_splits)
    path = tmp_path / "adjusted.safetensors"
    clf.save(path)
    photos = [str(p) for p in synthetic_splits.test["path"]]
    for balance in ("balanced", "0.25"):
        capsys.readouterr()
        assert main(["predict", *photos, "--model", str(path), "--balance", balance]) == 0
        printed = [line.split("\t")[1].split()[0] for line in capsys.readouterr().out.splitlines()]
        value = float(balance) if balance[0].isdigit() else balance
        assert printed == clf.predict(photos, balance=value)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", photos[0], "--balance", "fair"])
    assert exit_.value.code == 2
    assert "expected accuracy, middle, balanced or a number" in capsys.readouterr().err


def test_cli_train_distils_a_teacher_file(
    synthetic_root: Path,
    synthetic_splits: DatasetSplits,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--recipe", "seed", "--weights", "none", "--epochs", "1", "--image-size", "16"]
    common += ["--workers", "0", "--no-progress"]
    teacher = tmp_path / "teacher.safetensors"
    assert main(["train", str(synthetic_root), "-o", str(teacher), *common]) == 0
    student = tmp_path / "student.safetensors"
    args = ["--teacher", str(teacher), "--distill-weight", "0.5", "--logit-adjustment", "1"]
    assert main(["train", str(synthetic_root), "-o", str(student), *common, *args]) == 0
    clf = ClothingClassifier.load(student)
    assert clf.teacher_image_passes_ == len(synthetic_splits.train)
    assert clf.config_.distill_weight == 0.5 and clf.calibration_.adjustable
    missing = ["--teacher", str(tmp_path / "nothing.safetensors")]
    assert (
        main(["train", str(synthetic_root), "-o", str(tmp_path / "x.st"), *common, *missing]) == 2
    )
    assert "nothing.safetensors" in capsys.readouterr().err
