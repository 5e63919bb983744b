"""clothingclf.cli.report: the report command on a dataset root, and the folders it will not
overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clothingclf import ClothingClassifier, DatasetSplits
from clothingclf.cli import main


@pytest.fixture(scope="module")
def clf(tiny_model_file: Path) -> ClothingClassifier:
    return ClothingClassifier.load(tiny_model_file, device="cpu")


def test_cli_report_on_a_dataset_root(
    tiny_model_file: Path,
    synthetic_root: Path,
    synthetic_splits: DatasetSplits,
    clf: ClothingClassifier,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report"
    code = main(["report", str(tiny_model_file), str(synthetic_root), "-o", str(out)])
    printed = capsys.readouterr().out
    accuracy = clf.evaluate(synthetic_splits.test).accuracy
    assert code == 0
    assert f"10 images: accuracy {accuracy:.4f}" in printed
    assert (out / "report.html").is_file() and (out / "confusion_matrix.png").is_file()


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
