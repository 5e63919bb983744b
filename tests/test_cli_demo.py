"""clothingclf.cli.demo: the demo command, end to end, and the folders it will not write into."""

from __future__ import annotations

from pathlib import Path

import pytest

from clothingclf import ClothingClassifier
from clothingclf.cli import main


def test_demo_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--n-per-class", "5", "--epochs", "1", "--image-size", "16", "--no-progress"]
    assert main(["demo", "--output", str(tmp_path / "demo"), *args]) == 0
    out = capsys.readouterr().out
    assert "a synthetic dataset" in out and "accuracy" in out and "of 18 right" in out
    clf = ClothingClassifier.load(tmp_path / "demo" / "model.safetensors")
    assert len(clf.classes_) == 6


def test_demo_does_not_write_into_a_folder_of_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images.csv").write_text("mine")
    argv = ["demo", "-o", str(tmp_path), "--n-per-class", "5", "--epochs", "1", "--no-progress"]
    assert main(argv) == 2
    assert "already holds files that the demo did not write" in capsys.readouterr().err
    assert (tmp_path / "data" / "images.csv").read_text() == "mine"
