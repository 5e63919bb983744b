"""An evaluation report to read in a browser: where does the model go wrong?

:func:`write_report` labels a split with a fitted classifier and writes, into one folder:

* ``report.html``: a self-contained page (the figures are embedded, it can be mailed);
* ``report.md``: the same in Markdown, linking the PNG files beside it;
* ``confusion_matrix.png``: counts and row-normalised shares, class names on both axes;
* ``reliability.png``: the reliability diagram (top score against accuracy, with the
  expected calibration error);
* ``coverage.png``: the share of photos labelled and their accuracy at each ``min_score``;
* ``training_curves.png``: losses and validation accuracy per epoch, from the saved history;
* ``mistakes.png``: the most confidently wrong images with their true and predicted labels;
* ``per_class.csv``: precision, recall, F1 and support per class;
* ``predictions.csv``: every image with its true label, prediction and probability;
* ``report.json``: the scores and the model's details for scripts.

The figures need matplotlib (``pip install "clothingclf[plot]"``); they are drawn with the
Agg renderer on :class:`matplotlib.figure.Figure` objects, so the global backend of a
notebook or application is never changed.

This module holds the public API and the order of the steps; each step has its room:
:mod:`.data` (the images to evaluate, the predictions), :mod:`.figures` (the PNGs),
:mod:`.pages` (HTML and Markdown), :mod:`.summary` (``report.json``) and :mod:`.files`
(the folder and its files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from ..exceptions import InvalidParameterError
from ..metrics import EvaluationReport
from .data import label_images, load_evaluation_data, per_class_table
from .figures import draw_figures, matplotlib_figure
from .files import refuse_to_replace, write_report_files
from .pages import html_page, markdown_page
from .summary import model_info, summary_json

if TYPE_CHECKING:
    from ..classifier import ClothingClassifier
    from ..data import DatasetSplits

__all__ = ["ReportFiles", "load_evaluation_data", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote, and the numbers behind it.

    Attributes:
        output_dir: The report folder.
        html: The self-contained ``report.html``.
        markdown: ``report.md``.
        json: ``report.json``.
        figures: PNG files by name: ``confusion_matrix``, ``reliability``, ``coverage``,
            ``training_curves`` (absent when the model has no training history),
            ``mistakes`` (absent without mistakes).
        tables: CSV files by name: ``per_class``, ``predictions``.
        evaluation: The :class:`~clothingclf.EvaluationReport` of the split.
        mistakes: The wrongly labelled images, most confident first: columns ``path``,
            ``label``, ``predicted``, ``score`` (probability of the prediction) and
            ``true_score`` (probability of the true label).

    Example:
        >>> files = ReportFiles(output_dir=Path("r"), html=Path("r/report.html"),
        ...                     markdown=Path("r/report.md"), json=Path("r/report.json"),
        ...                     figures={}, tables={}, evaluation=None, mistakes=None)
        >>> files.html.name
        'report.html'
    """

    output_dir: Path
    html: Path
    markdown: Path
    json: Path
    figures: dict[str, Path]
    tables: dict[str, Path]
    evaluation: EvaluationReport = field(repr=False)
    mistakes: pd.DataFrame = field(repr=False)


def write_report(
    classifier: ClothingClassifier,
    data: str | os.PathLike[str] | pd.DataFrame | DatasetSplits,
    output_dir: str | os.PathLike[str],
    *,
    split: Literal["train", "val", "test", "all"] = "test",
    max_mistakes: int = 16,
    title: str | None = None,
    batch_size: int | None = None,
    force: bool = False,
) -> ReportFiles:
    """Evaluate ``classifier`` on a split and write the HTML/Markdown report with figures.

    Args:
        classifier: A fitted or loaded :class:`~clothingclf.ClothingClassifier`.
        data: The images to evaluate: anything :func:`load_evaluation_data` accepts.
        output_dir: The report folder (created). An earlier report there is replaced; other
            files of the same names (a splits folder's ``report.json``) only with ``force``.
        split: Which split of a splits object or folder to evaluate.
        max_mistakes: How many of the most confidently wrong images the gallery shows.
        title: The page title (default: "Evaluation report").
        batch_size: Images per forward pass.
        force: Replace files of the report's names that an earlier report did not write.

    Returns:
        A :class:`ReportFiles` naming every file and holding the evaluation.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``plot`` extra).
        NotFittedError: The classifier was not fitted or loaded.
        DatasetError: The split has labels the model was not trained on.
        SaveError: A file could not be written, or one of the report's files exists in
            ``output_dir`` and was not written by a report (nothing is written then).

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), classes=["Hat", "Shoes"],
        ...                       n_per_class=8, image_size=32)
        >>> splits = clothingclf.prepare_dataset(root)
        >>> clf = clothingclf.ClothingClassifier(
        ...     backbone="resnet18", weights=None, image_size=32, epochs=1, progress=False,
        ...     num_workers=0).fit(splits)
        >>> files = write_report(clf, splits, tempfile.mkdtemp())
        >>> sorted(p.name for p in files.output_dir.glob("report.*"))
        ['report.html', 'report.json', 'report.md']
        >>> files.figures["confusion_matrix"].name, files.evaluation.n_samples
        ('confusion_matrix.png', 2)
    """
    figure_class = matplotlib_figure()
    if not isinstance(max_mistakes, int) or isinstance(max_mistakes, bool) or max_mistakes < 0:
        raise InvalidParameterError(f"max_mistakes must be an int >= 0; found {max_mistakes!r}.")
    predictor = classifier.predictor()
    out = Path(output_dir)
    refuse_to_replace(out, force)
    labelling = label_images(predictor, load_evaluation_data(data, split=split), batch_size)
    evaluation, mistakes = labelling.evaluation, labelling.mistakes
    history = [dict(r) for r in getattr(classifier, "history_", []) or []]
    best = getattr(classifier, "best_epoch_", None)
    gallery = mistakes.head(max_mistakes)
    # Everything is made in memory first, so a failure (a figure that cannot be drawn)
    # writes nothing; write_report_files then writes all of it or leaves the folder as is.
    pngs = draw_figures(figure_class, evaluation, history, best, gallery)
    figures = {name: out / f"{name}.png" for name in pngs}
    per_class = per_class_table(evaluation)
    tables = {"per_class": out / "per_class.csv", "predictions": out / "predictions.csv"}
    info = model_info(classifier, evaluation)
    heading = title or "Evaluation report"
    n_mistakes, coverage = len(mistakes), evaluation.coverage
    summary = summary_json(info, evaluation, n_mistakes, gallery, history, figures | tables)
    contents: dict[Path, bytes | str] = {figures[name]: png for name, png in pngs.items()}
    contents[tables["per_class"]] = per_class.to_csv()
    contents[tables["predictions"]] = labelling.predictions.to_csv(index=False)
    contents[out / "report.md"] = markdown_page(
        heading, info, per_class, gallery, n_mistakes, figures, coverage
    )
    contents[out / "report.html"] = html_page(
        heading, info, per_class, gallery, n_mistakes, pngs, coverage
    )
    contents[out / "report.json"] = summary  # last: it marks the folder as a whole report
    write_report_files(out, contents)
    return ReportFiles(
        output_dir=out,
        html=out / "report.html",
        markdown=out / "report.md",
        json=out / "report.json",
        figures=figures,
        tables=tables,
        evaluation=evaluation,
        mistakes=mistakes,
    )
