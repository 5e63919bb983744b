"""clothingclf.cli.train: the train and evaluate commands, thin shells over fit and evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clothingclf import ClothingClassifier
from clothingclf.cli import main


def test_train_prints_evaluation_and_saves(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clf = ClothingClassifier.load(trained)
    assert clf.config_.epochs == 1 and clf.preprocessing_.image_size == 32
    assert clf.get_params()["weights"] is None and clf.model_spec_["name"] == "resnet18"
    assert clf.get_params()["backbone"] is None  # the recipe's (seed: resnet18)


def test_train_output_and_prepared_folder(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", str(synthetic_root), "--output", str(tmp_path / "splits")]) == 0
    capsys.readouterr()
    args = ["--weights", "none", "--epochs", "1", "--image-size", "16", "--no-progress"]
    mixing = ["--ema-decay", "0.9", "--mixup-alpha", "0.2", "--cutmix-alpha", "1"]
    mixing += ["--color-jitter", "0.3"]
    status = main(["train", str(tmp_path / "splits"), "-o", str(tmp_path / "m.pt"), *args, *mixing])
    out = capsys.readouterr().out
    assert status == 0 and "4 classes" in out and "accuracy" in out and "Saved" in out
    config = ClothingClassifier.load(tmp_path / "m.pt").config_
    assert (config.ema_decay, config.mixup_alpha, config.cutmix_alpha) == (0.9, 0.2, 1.0)
    assert config.color_jitter == 0.3
    bad = ["--ema-decay", "1"]
    status = main(["train", str(tmp_path / "splits"), "-o", str(tmp_path / "x.pt"), *args, *bad])
    assert status == 2
    assert "ema_decay must be a number in [0, 1)" in capsys.readouterr().err


def test_evaluate(trained: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(trained), str(synthetic_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == 10 and len(report["confusion_matrix"]) == 4
    assert main(["evaluate", str(trained), str(synthetic_root), "--split", "val"]) == 0
    assert "balanced accuracy" in capsys.readouterr().out


def test_evaluate_json_is_json_when_preparing_dropped_rows(
    trained: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What preparing a root dropped goes to stderr: stdout stays one JSON document."""
    root = tmp_path / "root"
    shutil.copytree(synthetic_root, root)
    with (root / "images.csv").open("a", encoding="utf-8") as table:
        table.write("00000000-missing,0,Dress,False\n")
    assert main(["evaluate", str(trained), str(root), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_samples"] == 10
    assert "Missing files: 1 (00000000-missing)" in captured.err


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
