"""The train, evaluate, predict and demo commands: thin shells, clear errors, no tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clothingclf import ClothingClassifier
from clothingclf.cli import main


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("cli") / "model.safetensors"
    status = main(
        [
            "train",
            str(synthetic_root),
            "--output",
            str(model),
            "--recipe",
            "seed",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--workers",
            "0",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    return model


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


def test_predict_text_and_json(
    trained: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sorted((synthetic_root / "images").glob("*.jpg"))[:3]
    assert main(["predict", "--model", str(trained), *map(str, images), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(str(images[0]))
    assert len(lines[0].split("\t")[1].split("  ")) == 2

    assert (
        main(["predict", "--model", str(trained), *map(str, images), "--json", "--batch-size", "2"])
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == list(map(str, images))
    clf = ClothingClassifier.load(trained)
    assert [r["label"] for r in results] == clf.predict(list(images))
    assert set(results[0]) == {"image", "label", "score", "top_k"} and len(results[0]["top_k"]) == 1


def test_predict_bad_image_is_one_line_and_nonzero_exit(
    trained: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = sorted((synthetic_root / "images").glob("*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    status = main(["predict", "--model", str(trained), str(good), str(bad), str(missing), "--json"])
    captured = capsys.readouterr()
    assert status == 1
    assert [r["image"] for r in json.loads(captured.out)] == [str(good)]
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith(f"clothingclf predict: {bad}: error: ")
    assert errors[1].startswith(f"clothingclf predict: {missing}: error: ")
    assert errors[2] == "clothingclf predict: 2 of 3 images failed"
    assert "Traceback" not in captured.err


def test_errors_are_one_line_with_status_2(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"garbage")
    assert main(["predict", "--model", str(garbage), "x.jpg"]) == 2
    assert capsys.readouterr().err.startswith("clothingclf predict: error: The model file")
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "m.pt")]) == 2
    assert "neither images.csv" in capsys.readouterr().err
    status = main(["train", str(synthetic_root), "-o", "m.pt", "--backbone", "resnet81"])
    assert status == 2 and "Did you mean resnet18" in capsys.readouterr().err


def test_demo_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--n-per-class", "5", "--epochs", "1", "--image-size", "16", "--no-progress"]
    assert main(["demo", "--output", str(tmp_path / "demo"), *args]) == 0
    out = capsys.readouterr().out
    assert "a synthetic dataset" in out and "accuracy" in out and "of 18 right" in out
    clf = ClothingClassifier.load(tmp_path / "demo" / "model.safetensors")
    assert len(clf.classes_) == 6


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "resnet18", "--num-classes", "-1"],
        ["analyze", "resnet18", "--input-size", "0"],
        ["analyze", "resnet18", "--network", "0"],
        ["predict", "x.jpg", "--batch-size", "0"],
        ["predict", "x.jpg", "--top-k", "zero"],
        ["train", "data", "-o", "m.safetensors", "--epochs", "0"],
        ["train", "data", "-o", "m.safetensors", "--image-size", "4"],
        ["prepare", "data", "--workers", "0"],
        ["demo", "--n-per-class", "0"],
        ["demo", "--epochs", "-3"],
        ["demo", "--image-size", "100000"],
        ["export", "m.safetensors", "-o", "m.onnx", "--opset", "2"],
        ["report", "m.safetensors", "data", "-o", "r", "--mistakes", "-1"],
        ["evaluate", "m.safetensors"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in captured.err


def test_a_bad_value_in_the_library_is_one_line_and_status_2(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", str(synthetic_root), "--test-size", "2"]) == 2
    assert main(["prepare", str(synthetic_root), "-o", str(tmp_path / "f" / "below")]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["prepare", str(synthetic_root), "-o", str(tmp_path / "file" / "below")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(
        line.startswith("clothingclf prepare: error: ") for line in lines
    )
    assert "test_size must be a fraction" in lines[0] and "is a file" in lines[1]


def test_an_unexpected_error_is_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clothingclf import analysis

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(analysis, "meta_model", broken)
    assert main(["analyze", "resnet18"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "clothingclf analyze: error: RuntimeError: a bug (unexpected: set CLOTHINGCLF_DEBUG=1 "
        "to see where, and please report it)"
    ]
    monkeypatch.setenv("CLOTHINGCLF_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["analyze", "resnet18"])


def test_report_does_not_overwrite_a_splits_folder_without_force(
    trained: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    splits = tmp_path / "splits"
    assert main(["prepare", str(synthetic_root), "-o", str(splits)]) == 0
    before = (splits / "report.json").read_bytes()
    assert main(["report", str(trained), str(splits), "-o", str(splits)]) == 2
    assert (splits / "report.json").read_bytes() == before
    assert not (splits / "report.html").exists()
    # Its own earlier output is replaced without asking; another folder with --force.
    out = tmp_path / "report"
    assert main(["report", str(trained), str(splits), "-o", str(out)]) == 0
    assert main(["report", str(trained), str(splits), "-o", str(out)]) == 0
    assert main(["report", str(trained), str(splits), "-o", str(splits), "--force"]) == 0
    assert json.loads((splits / "report.json").read_text())["format"] == "clothingclf-report"


def test_demo_does_not_write_into_a_folder_of_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images.csv").write_text("mine")
    argv = ["demo", "-o", str(tmp_path), "--n-per-class", "5", "--epochs", "1", "--no-progress"]
    assert main(argv) == 2
    assert "already holds files that the demo did not write" in capsys.readouterr().err
    assert (tmp_path / "data" / "images.csv").read_text() == "mine"
