"""An evaluation report to read in a browser: where does the model go wrong?

:func:`write_report` labels a split with a fitted classifier and writes, into one folder:

* ``report.html``: a self-contained page (the figures are embedded, it can be mailed);
* ``report.md``: the same in Markdown, linking the PNG files beside it;
* ``confusion_matrix.png``: counts and row-normalised shares, class names on both axes;
* ``training_curves.png``: losses and validation accuracy per epoch, from the saved history;
* ``mistakes.png``: the most confidently wrong images with their true and predicted labels;
* ``per_class.csv``: precision, recall, F1 and support per class;
* ``predictions.csv``: every image with its true label, prediction and probability;
* ``report.json``: the scores and the model's details for scripts.

The figures need matplotlib (``pip install "clothingclf[plot]"``); they are drawn with the
Agg renderer on :class:`matplotlib.figure.Figure` objects, so the global backend of a
notebook or application is never changed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from . import __version__
from ._paths import file_in_the_way, write_atomically
from .exceptions import (
    DatasetNotFoundError,
    EmptyDatasetError,
    InvalidImageError,
    InvalidParameterError,
    MissingColumnsError,
    MissingDependencyError,
    SaveError,
)
from .images import open_image
from .metrics import EvaluationReport, evaluation_report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .classifier import ClothingClassifier
    from .data import DatasetSplits

__all__ = ["ReportFiles", "load_evaluation_data", "write_report"]

_THUMB = 192  # pixels of the longer side of a gallery thumbnail


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote, and the numbers behind it.

    Attributes:
        output_dir: The report folder.
        html: The self-contained ``report.html``.
        markdown: ``report.md``.
        json: ``report.json``.
        figures: PNG files by name: ``confusion_matrix``, ``training_curves`` (absent when
            the model has no training history), ``mistakes`` (absent without mistakes).
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


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "The report's figures need matplotlib, which is not installed. Install the plot "
            'extra: pip install "clothingclf[plot]".'
        ) from None
    del matplotlib
    return Figure


def load_evaluation_data(
    data: str | os.PathLike[str] | pd.DataFrame | DatasetSplits,
    *,
    split: Literal["train", "val", "test", "all"] = "test",
    seed: int = 42,
) -> pd.DataFrame:
    """The table of images to evaluate, from any of the places a dataset can live.

    Args:
        data: One of

            * a table (DataFrame) with columns ``path`` and ``label``;
            * a :class:`~clothingclf.DatasetSplits`;
            * a CSV file with columns ``path`` and ``label`` (e.g. ``test.csv`` written by
              ``clothingclf prepare --output``);
            * a folder written by ``clothingclf prepare --output`` (read with
              :func:`~clothingclf.load_splits`);
            * a dataset folder with ``images.csv`` and ``images/``, split with
              :func:`~clothingclf.prepare_dataset` and its defaults (and ``seed``), which
              gives the same split as training on ``prepare_dataset(root)`` did.
        split: Which split of splits or folders: ``"train"``, ``"val"``, ``"test"`` or
            ``"all"`` (every row). A table or CSV file is always used whole.
        seed: The split seed for a dataset folder.

    Returns:
        A table with at least the columns ``path`` and ``label``.

    Raises:
        DatasetNotFoundError: The path does not exist.
        MissingColumnsError: A table or CSV lacks ``path`` or ``label``.
        EmptyDatasetError: The chosen split has no rows.

    Example:
        >>> table = pd.DataFrame({"path": ["a.jpg"], "label": ["Hat"]})
        >>> load_evaluation_data(table).columns.tolist()
        ['path', 'label']
    """
    if split not in ("train", "val", "test", "all"):
        raise InvalidParameterError(
            f"split must be 'train', 'val', 'test' or 'all'; found {split!r}."
        )
    what = "the table"
    if isinstance(data, pd.DataFrame):
        table = data
    elif hasattr(data, "train") and hasattr(data, "classes"):
        table = _pick(data, split)
        what = f"the {split} split"
    else:
        source = Path(data)
        what = repr(str(source))
        if source.is_file():
            table = pd.read_csv(source)
        elif (source / "test.csv").is_file() and (source / "report.json").is_file():
            from .data import load_splits

            table = _pick(load_splits(source), split)
            what = f"the {split} split of {str(source)!r}"
        elif (source / "images.csv").is_file():
            from .data import prepare_dataset

            table = _pick(prepare_dataset(source, seed=seed), split)
            what = f"the {split} split of {str(source)!r}"
        else:
            raise DatasetNotFoundError(
                f"{str(source)!r} is neither a CSV file, a folder written by 'clothingclf "
                "prepare --output', nor a dataset folder with images.csv. Give one of these."
            )
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise MissingColumnsError(
            f"{what} lacks column {', '.join(map(repr, missing))} (found: "
            f"{', '.join(map(str, table.columns))}). Expected columns path and label, as in "
            "the CSV files that 'clothingclf prepare --output' writes."
        )
    if len(table) == 0:
        raise EmptyDatasetError(f"{what} has no rows; nothing to evaluate.")
    return table


def _pick(splits: Any, split: str) -> pd.DataFrame:
    parts: list[pd.DataFrame] = (
        [splits.train, splits.val, splits.test] if split == "all" else [getattr(splits, split)]
    )
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


_REPORT_FORMAT = "clothingclf-report"
_REPORT_FILES = (
    "report.html",
    "report.md",
    "report.json",
    "per_class.csv",
    "predictions.csv",
    "confusion_matrix.png",
    "training_curves.png",
    "mistakes.png",
)


def _refuse_to_replace(out: Path, force: bool) -> None:
    """Refuse a report folder that is (below) a file, or that holds files of the report's
    names that no report wrote (unless ``force``)."""
    try:
        blocker = file_in_the_way(out)
    except OSError as error:  # a link loop, a name too long
        raise SaveError(f"Cannot write a report to {str(out)!r} ({error.strerror}).") from None
    if blocker is not None:
        raise SaveError(
            f"Cannot write a report to {str(out)!r}: {str(blocker)!r} is a file, not a "
            "folder; nothing was written. Choose another output folder."
        )
    if force or not out.is_dir():
        return
    taken = [name for name in _REPORT_FILES if (out / name).exists()]
    if not taken:
        return
    try:
        earlier = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    own = isinstance(earlier, dict) and (
        earlier.get("format") == _REPORT_FORMAT or {"evaluation", "files"} <= set(earlier)
    )
    if not own:
        raise SaveError(
            f"{str(out)!r} already holds {', '.join(taken)}, which no clothingclf report wrote "
            "(a splits folder's report.json, say); nothing was written. Choose another "
            "folder, or pass force=True (--force) to replace them."
        )


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
        >>> from clothingclf.datasets import make_synthetic
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
    figure_class = _matplotlib()
    if not isinstance(max_mistakes, int) or isinstance(max_mistakes, bool) or max_mistakes < 0:
        raise InvalidParameterError(f"max_mistakes must be an int >= 0; found {max_mistakes!r}.")
    predictor = classifier.predictor()
    _refuse_to_replace(Path(output_dir), force)
    table = load_evaluation_data(data, split=split)
    classes = list(predictor.classes)
    y_true = predictor.label_ids(table, "The evaluated set of images")
    probabilities = predictor.probabilities(table, batch_size=batch_size)
    y_pred = probabilities.argmax(1)
    evaluation = evaluation_report(y_true, y_pred, classes=classes)
    rows = np.arange(len(y_true))
    predictions = pd.DataFrame(
        {
            "path": [str(p) for p in table["path"]],
            "label": [classes[i] for i in y_true],
            "predicted": [classes[i] for i in y_pred],
            "score": probabilities[rows, y_pred].astype(float),
            "true_score": probabilities[rows, y_true].astype(float),
            "correct": y_true == y_pred,
        }
    )
    mistakes = (
        predictions[~predictions["correct"]]
        .drop(columns="correct")
        .sort_values("score", ascending=False, kind="stable")
        .reset_index(drop=True)
    )

    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SaveError(f"Cannot create the report folder {str(out)!r} ({error}).") from error
    # Claim the folder first: a run cut short still leaves a report.json a rerun recognises.
    write_atomically(out / "report.json", json.dumps({"format": _REPORT_FORMAT}).encode("utf-8"))
    pngs: dict[str, bytes] = {"confusion_matrix": _confusion_png(figure_class, evaluation)}
    history = [dict(r) for r in getattr(classifier, "history_", []) or []]
    if history:
        best = getattr(classifier, "best_epoch_", None)
        pngs["training_curves"] = _curves_png(figure_class, history, best)
    gallery = mistakes.head(max_mistakes)
    if len(gallery):
        pngs["mistakes"] = _gallery_png(figure_class, gallery)
    figures = {name: out / f"{name}.png" for name in pngs}
    for name, data_png in pngs.items():
        write_atomically(figures[name], data_png)

    per_class = evaluation.per_class.copy()
    per_class["support"] = per_class["support"].astype(int)
    tables = {"per_class": out / "per_class.csv", "predictions": out / "predictions.csv"}
    write_atomically(tables["per_class"], per_class.to_csv().encode("utf-8"))
    write_atomically(tables["predictions"], predictions.to_csv(index=False).encode("utf-8"))

    info = _model_info(classifier, evaluation)
    heading = title or "Evaluation report"
    summary = {
        "format": _REPORT_FORMAT,
        **info,
        "evaluation": evaluation.to_dict(),
        "n_mistakes": len(mistakes),
        "most_confident_mistakes": gallery.to_dict(orient="records"),
        "history": [{k: _json_number(v) for k, v in row.items()} for row in history],
        "files": {
            **{k: v.name for k, v in figures.items()},
            **{k: v.name for k, v in tables.items()},
        },
    }
    paths = {
        "html": out / "report.html",
        "markdown": out / "report.md",
        "json": out / "report.json",
    }
    text = json.dumps(summary, indent=2, allow_nan=False, default=_json_default)
    write_atomically(paths["json"], (text + "\n").encode("utf-8"))
    write_atomically(
        paths["markdown"],
        _markdown(heading, info, evaluation, per_class, gallery, len(mistakes), figures).encode(
            "utf-8"
        ),
    )
    write_atomically(
        paths["html"],
        _html(heading, info, evaluation, per_class, gallery, len(mistakes), pngs).encode("utf-8"),
    )
    return ReportFiles(
        output_dir=out,
        html=paths["html"],
        markdown=paths["markdown"],
        json=paths["json"],
        figures=figures,
        tables=tables,
        evaluation=evaluation,
        mistakes=mistakes,
    )


# ---------------------------------------------------------------------- figures


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()


def _confusion_png(figure_class: Any, evaluation: EvaluationReport) -> bytes:
    matrix = evaluation.confusion_matrix.astype(np.int64)
    n = len(evaluation.classes)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    cell = 0.62 if n > 6 else 0.9
    side = max(3.5, cell * n)
    fig = figure_class(figsize=(side + 2.6, side + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 9 if n <= 8 else 7
    for i in range(n):
        for j in range(n):
            if matrix[i, j] == 0:
                continue
            colour = "white" if shares[i, j] > 0.55 else "black"
            ax.text(
                j,
                i,
                f"{matrix[i, j]}\n{shares[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=font,
                color=colour,
                linespacing=1.1,
            )
    names = list(evaluation.classes)
    ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(
        range(n), [f"{c} ({int(t)})" for c, t in zip(names, totals[:, 0], strict=True)], fontsize=9
    )
    ax.set_xlabel("Predicted class", fontsize=10)
    ax.set_ylabel("True class (number of images)", fontsize=10)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(
        f"Confusion matrix: count and share of the true class (accuracy {evaluation.accuracy:.1%})",
        fontsize=10,
    )
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("share of the row (true class)", fontsize=9)
    bar.ax.yaxis.set_major_formatter(_percent_formatter())
    return _png(fig)


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _curves_png(figure_class: Any, history: Sequence[dict[str, Any]], best: int | None) -> bytes:
    """Loss and validation accuracy per epoch; one set of lines per network when there
    are several (``network`` in the rows), points only where an epoch was validated."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in history:
        number = _number(row.get("network"))
        groups.setdefault(0 if math.isnan(number) else int(number), []).append(row)
    several = len(groups) > 1
    fig = figure_class(figsize=(9.5, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    any_accuracy, any_head = False, False
    for number, rows in sorted(groups.items()):

        def column(key: str, rows: list[dict[str, Any]] = rows) -> np.ndarray:
            return np.array([_number(row.get(key)) for row in rows], dtype=float)

        epochs = column("epoch")
        if np.isnan(epochs).all():
            epochs = np.arange(1, len(rows) + 1, dtype=float)
        any_head = any_head or bool(0 in epochs)
        prefix = f"network {number + 1}: " if several else ""
        for key, label, style in (
            ("train_loss", "training loss", "-"),
            ("val_loss", "validation loss", "--"),
        ):
            values = column(key)
            shown = ~np.isnan(values)
            if shown.any():
                color = f"C{number}" if several else None
                loss_ax.plot(
                    epochs[shown],
                    values[shown],
                    style,
                    marker="o",
                    markersize=3,
                    label=prefix + label,
                    color=color,
                )
        accuracy = column("val_accuracy")
        shown = ~np.isnan(accuracy)
        if shown.any():
            any_accuracy = True
            acc_ax.plot(
                epochs[shown],
                accuracy[shown],
                marker="o",
                markersize=3,
                color=f"C{number}" if several else "C2",
                label=prefix.rstrip(": ") or None,
            )
    if any_accuracy:
        acc_ax.yaxis.set_major_formatter(_percent_formatter())
        if several:
            acc_ax.legend(fontsize=8)
    else:
        acc_ax.text(0.5, 0.5, "no validation split", ha="center", va="center")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("Loss", fontsize=10)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_title("Validation accuracy", fontsize=10)
    for ax in (loss_ax, acc_ax):
        if any_head:  # the fast recipe's head-only stage
            ax.set_xlabel("epoch (0: new head only)")
        ax.grid(alpha=0.3)
        if best is not None and not several:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.legend(fontsize=8)
    return _png(fig)


def _json_number(value: Any) -> Any:
    """NaN and infinities (a stage without a training loss) become null in JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return _json_number(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _thumbnail(path: str) -> np.ndarray | None:
    try:
        image = open_image(path, draft_size=(_THUMB * 2, _THUMB * 2))
    except (InvalidImageError, FileNotFoundError):
        return None
    image.thumbnail((_THUMB, _THUMB))
    return np.asarray(image)


def _gallery_png(figure_class: Any, gallery: pd.DataFrame) -> bytes:
    count = len(gallery)
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = figure_class(figsize=(2.6 * cols, 3.2 * rows + 0.4), layout="constrained")
    for k, row in enumerate(gallery.itertuples(index=False)):
        ax = fig.add_subplot(rows, cols, k + 1)
        picture = _thumbnail(str(row.path))
        if picture is None:
            ax.text(0.5, 0.5, "image unreadable", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(picture)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"true: {row.label}\npredicted: {row.predicted} ({row.score:.0%})",
            fontsize=8.5,
            color="#8b0000",
        )
        ax.set_xlabel(_short(Path(str(row.path)).name, 30), fontsize=7)
    fig.suptitle("Most confidently wrong images", fontsize=11)
    fig.get_layout_engine().set(h_pad=0.12, w_pad=0.1)
    return _png(fig)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------- pages


def _model_info(classifier: ClothingClassifier, evaluation: EvaluationReport) -> dict[str, Any]:
    spec = getattr(classifier, "model_spec_", {}) or {}
    prep = classifier.preprocessing_
    best_val = getattr(classifier, "best_val_accuracy_", None)
    return {
        "library_version": __version__,
        "backbone": str(spec.get("name") or spec.get("kind") or "custom module"),
        "image_size": int(prep.image_size),
        "input_shapes": [
            [int(v) for v in network_prep.input_shape]
            for _, network_prep in classifier.predictor().networks
        ],
        "classes": [str(c) for c in classifier.classes_],
        "best_epoch": getattr(classifier, "best_epoch_", None),
        "best_val_accuracy": best_val,
        "n_images": evaluation.n_samples,
        "accuracy": evaluation.accuracy,
        "balanced_accuracy": evaluation.balanced_accuracy,
        "macro_f1": evaluation.macro_f1,
    }


def _input_size(info: dict[str, Any]) -> str:
    shapes = info.get("input_shapes") or [(info["image_size"], info["image_size"])]
    sizes = "; ".join(
        f"{width} px" if height == width else f"{width} x {height} px (width x height)"
        for height, width in shapes
    )
    return sizes if len(shapes) == 1 else f"{sizes}: {len(shapes)} networks, averaged"


def _score_lines(info: dict[str, Any], n_mistakes: int) -> list[tuple[str, str]]:
    lines = [
        ("Images evaluated", str(info["n_images"])),
        ("Accuracy", f"{info['accuracy']:.2%}"),
        ("Balanced accuracy", f"{info['balanced_accuracy']:.2%}"),
        ("Macro F1", f"{info['macro_f1']:.3f}"),
        ("Wrongly labelled images", str(n_mistakes)),
        ("Backbone", str(info["backbone"])),
        ("Input size", _input_size(info)),
        ("Classes", str(len(info["classes"]))),
    ]
    if info.get("best_val_accuracy") is not None:
        lines.append(
            (
                "Best validation accuracy",
                f"{info['best_val_accuracy']:.2%} (epoch {info['best_epoch']})",
            )
        )
    lines.append(("clothingclf", str(info["library_version"])))
    return lines


def _per_class_rows(per_class: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(name),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(int(row["support"])),
        ]
        for name, row in per_class.iterrows()
    ]


_PER_CLASS_HEAD = ["class", "precision", "recall", "F1", "support"]
_MISTAKE_HEAD = ["#", "image", "true label", "predicted", "probability", "p(true label)"]


def _mistake_rows(gallery: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(k + 1),
            Path(str(r.path)).name,
            str(r.label),
            str(r.predicted),
            f"{r.score:.3f}",
            f"{r.true_score:.3f}",
        ]
        for k, r in enumerate(gallery.itertuples(index=False))
    ]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join(
        [line(head), "|" + "|".join("---" for _ in head) + "|", *(line(r) for r in rows)]
    )


def _markdown(
    title: str,
    info: dict[str, Any],
    evaluation: EvaluationReport,
    per_class: pd.DataFrame,
    gallery: pd.DataFrame,
    n_mistakes: int,
    figures: dict[str, Path],
) -> str:
    parts = [
        f"# {title}",
        "",
        _md_table(["", "value"], [list(x) for x in _score_lines(info, n_mistakes)]),
    ]
    parts += ["", "## Confusion matrix", "", "![Confusion matrix](confusion_matrix.png)", ""]
    parts += ["## Per-class scores", "", _md_table(_PER_CLASS_HEAD, _per_class_rows(per_class))]
    parts += ["", "## Training curves", ""]
    if "training_curves" in figures:
        parts.append("![Training curves](training_curves.png)")
    else:
        parts.append("The model file holds no training history.")
    parts += ["", "## Most confidently wrong images", ""]
    if len(gallery):
        parts += [
            f"The {len(gallery)} most confident of {n_mistakes} mistakes "
            "(all of them: `predictions.csv`, column `correct`).",
            "",
            "![Most confidently wrong images](mistakes.png)",
            "",
            _md_table(_MISTAKE_HEAD, _mistake_rows(gallery)),
        ]
    else:
        parts.append("No image was labelled wrongly.")
    return "\n".join(parts) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{margin-bottom:.3em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}
tr:nth-child(even){background:#f7f7f7}
img{max-width:100%;height:auto}
.note{color:#666;font-size:.9em}
"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _html(
    title: str,
    info: dict[str, Any],
    evaluation: EvaluationReport,
    per_class: pd.DataFrame,
    gallery: pd.DataFrame,
    n_mistakes: int,
    pngs: dict[str, bytes],
) -> str:
    scores = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in _score_lines(info, n_mistakes)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<table>{scores}</table>",
        "<h2>Confusion matrix</h2>",
        '<p class="note">Rows: true class (number of images); columns: predicted class. Each '
        "cell gives the count and its share of the row; empty cells are 0.</p>",
        _img(pngs["confusion_matrix"], "Confusion matrix"),
        "<h2>Per-class scores</h2>",
        _html_table(_PER_CLASS_HEAD, _per_class_rows(per_class)),
        "<h2>Training curves</h2>",
    ]
    if "training_curves" in pngs:
        parts.append(_img(pngs["training_curves"], "Training curves"))
    else:
        parts.append('<p class="note">The model file holds no training history.</p>')
    parts.append("<h2>Most confidently wrong images</h2>")
    if "mistakes" in pngs:
        parts += [
            f'<p class="note">The {len(gallery)} most confident of {n_mistakes} mistakes '
            "(all of them: <code>predictions.csv</code>, column <code>correct</code>).</p>",
            _img(pngs["mistakes"], "Most confidently wrong images"),
            _html_table(_MISTAKE_HEAD, _mistake_rows(gallery)),
        ]
    else:
        parts.append('<p class="note">No image was labelled wrongly.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
