"""The evaluation report: HTML, Markdown, PNG figures and tables from a fitted model."""

from __future__ import annotations

import copy
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clothingclf import (
    ClothingClassifier,
    DatasetSplits,
    ReportFiles,
    load_evaluation_data,
    write_report,
)
from clothingclf.exceptions import (
    DatasetError,
    DatasetNotFoundError,
    EmptyDatasetError,
    MissingColumnsError,
    MissingDependencyError,
)
from clothingclf.metrics import evaluation_report
from clothingclf.report.figures import confusion_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def clf(tiny_model_file: Path) -> ClothingClassifier:
    return ClothingClassifier.load(tiny_model_file, device="cpu")


@pytest.fixture(scope="module")
def report(
    clf: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    tmp_path_factory: pytest.TempPathFactory,
) -> ReportFiles:
    return write_report(clf, synthetic_splits, tmp_path_factory.mktemp("report"), max_mistakes=4)


def test_report_writes_every_file(report: ReportFiles) -> None:
    names = sorted(p.name for p in report.output_dir.iterdir())
    expected = {
        "confusion_matrix.png",
        "coverage.png",
        "reliability.png",
        "per_class.csv",
        "predictions.csv",
        "report.html",
        "report.json",
        "report.md",
        "training_curves.png",
    }
    if len(report.mistakes):
        expected.add("mistakes.png")
    assert names == sorted(expected)  # no temporary files left over
    for png in report.figures.values():
        assert png.read_bytes().startswith(PNG_MAGIC)


def test_report_scores_are_those_of_evaluate(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, report: ReportFiles
) -> None:
    expected = clf.evaluate(synthetic_splits.test)
    assert report.evaluation.to_dict() == expected.to_dict()
    per_class = pd.read_csv(report.tables["per_class"], index_col="class")
    pd.testing.assert_frame_equal(per_class, expected.per_class, check_dtype=False)
    saved = json.loads(report.json.read_text(encoding="utf-8"))
    assert saved["evaluation"] == expected.to_dict()
    assert saved["classes"] == ["Dress", "Pants", "Shoes", "T-Shirt"]
    assert len(saved["history"]) == 2


def test_the_confidence_section_shows_calibration_and_coverage(
    clf: ClothingClassifier, report: ReportFiles
) -> None:
    evaluation = report.evaluation
    assert evaluation.expected_calibration_error is not None
    assert evaluation.coverage is not None
    page = report.html.read_text(encoding="utf-8")
    text = report.markdown.read_text(encoding="utf-8")
    ece = f"{evaluation.expected_calibration_error:.2%}"
    for shown in (page, text):
        assert "Confidence" in shown and ece in shown
        assert f"{evaluation.coverage.iloc[0]['accuracy']:.1%}" in shown  # min_score 0: all
    saved = json.loads(report.json.read_text(encoding="utf-8"))
    assert saved["expected_calibration_error"] == evaluation.expected_calibration_error
    assert saved["temperature"] == clf.calibration_.temperature
    assert len(saved["evaluation"]["coverage"]) == len(evaluation.coverage)


def test_predictions_and_mistakes_are_consistent(
    synthetic_splits: DatasetSplits, report: ReportFiles
) -> None:
    predictions = pd.read_csv(report.tables["predictions"])
    assert predictions["path"].tolist() == synthetic_splits.test["path"].tolist()
    assert predictions["label"].tolist() == synthetic_splits.test["label"].tolist()
    wrong = predictions[~predictions["correct"]]
    assert len(report.mistakes) == len(wrong) == round((1 - report.evaluation.accuracy) * 10)
    assert (report.mistakes["label"] != report.mistakes["predicted"]).all()
    scores = report.mistakes["score"].to_numpy()
    assert (np.diff(scores) <= 0).all()  # most confident first
    assert (report.mistakes["true_score"] < report.mistakes["score"]).all()


def test_html_is_self_contained_and_lists_every_class(report: ReportFiles) -> None:
    page = report.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('src="data:image/png;base64,') == len(report.figures)
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    for name in ("Dress", "Pants", "Shoes", "T-Shirt"):
        assert f"<td>{name}</td>" in page
    assert f"{report.evaluation.accuracy:.2%}" in page


def test_markdown_links_the_png_files_beside_it(report: ReportFiles) -> None:
    text = report.markdown.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(p.name for p in report.figures.values())
    assert "| class | precision | recall | F1 | support |" in text


def test_confusion_matrix_figure_grows_with_the_number_of_classes() -> None:
    from matplotlib.figure import Figure

    def size(n: int) -> tuple[int, int]:
        ids = np.arange(3 * n) % n
        names = [f"Class name {i}" for i in range(n)]
        png = confusion_png(Figure, evaluation_report(ids, ids[::-1], classes=names))
        return Image.open(io.BytesIO(png)).size

    small, large = size(4), size(18)
    assert large[0] > 1.8 * small[0] and large[1] > 1.8 * small[1]
    assert large[0] < 2000  # 18 classes still fit a screen


def test_without_history_or_mistakes_the_sections_say_so(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    bare = copy.copy(clf)
    bare.history_ = []
    files = write_report(bare, synthetic_splits.test, tmp_path, max_mistakes=0)
    assert sorted(files.figures) == ["confusion_matrix", "coverage", "reliability"]
    assert "The model file holds no training history." in files.markdown.read_text("utf-8")


def test_missing_matplotlib_names_the_plot_extra(
    clf: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "clothingclf\[plot\]"'):
        write_report(clf, synthetic_splits, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_labels_the_model_does_not_know_are_refused(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    table = synthetic_splits.test.assign(label="Hat")
    with pytest.raises(DatasetError, match="labels the model was not trained on: Hat"):
        write_report(clf, table, tmp_path)


def test_load_evaluation_data_reads_csv_and_prepared_folders(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    csv = tmp_path / "test.csv"
    synthetic_splits.test[["path", "label"]].to_csv(csv, index=False)
    assert load_evaluation_data(csv)["path"].tolist() == synthetic_splits.test["path"].tolist()
    assert len(load_evaluation_data(synthetic_splits, split="all")) == 96
    with pytest.raises(DatasetNotFoundError, match="neither a CSV file"):
        load_evaluation_data(tmp_path / "nowhere")
    pd.DataFrame({"image": ["a"], "label": ["Hat"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(MissingColumnsError, match=r"lacks column 'path' \(found: image, label\)"):
        load_evaluation_data(tmp_path / "bad.csv")
    with pytest.raises(EmptyDatasetError, match="no rows"):
        load_evaluation_data(synthetic_splits.test.iloc[:0])


def test_report_json_is_strict_json_when_a_stage_has_no_training_loss(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    staged = copy.copy(clf)
    staged.history_ = [
        {"epoch": 0.0, "train_loss": float("nan"), "val_loss": 1.4, "val_accuracy": 0.2},
        *clf.history_,
    ]
    files = write_report(staged, synthetic_splits.test, tmp_path, max_mistakes=0)

    def refuse(constant: str) -> None:
        raise ValueError(f"report.json holds {constant}")

    saved = json.loads(files.json.read_text(encoding="utf-8"), parse_constant=refuse)
    assert saved["history"][0]["train_loss"] is None and saved["history"][0]["epoch"] == 0
    assert "training_curves" in files.figures


def test_names_with_dollar_signs_are_drawn_as_written_not_as_mathtext() -> None:
    """``$...$`` in a class or file name would reach matplotlib's mathtext (a ValueError
    for ``$\\frac{$``, a restyled label otherwise): the text is drawn as it is."""
    from matplotlib.figure import Figure

    from clothingclf.report.figures import draw_figures

    names = ["$\\frac{a$", "T$-$Shirt", "$x^{"]
    ids = np.arange(6) % 3
    evaluation = evaluation_report(ids, ids[::-1], classes=names)
    gallery = pd.DataFrame(
        {"path": ["/no/$\\sqrt{$.jpg"], "label": [names[0]], "predicted": [names[2]],
         "score": [0.9], "true_score": [0.05]}
    )  # fmt: skip
    pngs = draw_figures(Figure, evaluation, [], None, gallery)
    assert sorted(pngs) == ["confusion_matrix", "mistakes"]
    assert all(png.startswith(PNG_MAGIC) for png in pngs.values())


def test_a_report_is_written_completely_or_not_at_all(
    clf: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clothingclf import report as report_module
    from clothingclf.exceptions import SaveError
    from clothingclf.report import files as report_files

    def no_figures(*args: object) -> dict[str, bytes]:
        raise ValueError("a figure could not be drawn")

    with monkeypatch.context() as patch:
        patch.setattr(report_module, "draw_figures", no_figures)
        with pytest.raises(ValueError, match="could not be drawn"):
            write_report(clf, synthetic_splits, tmp_path / "new")
    assert not (tmp_path / "new").exists()

    out = tmp_path / "earlier"
    write_report(clf, synthetic_splits, out, max_mistakes=2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, calls = report_files.write_atomically, []

    def disk_full(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise SaveError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(report_files, "write_atomically", disk_full)
    with pytest.raises(SaveError, match="Cannot write the report"):
        write_report(clf, synthetic_splits, out, max_mistakes=0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left
