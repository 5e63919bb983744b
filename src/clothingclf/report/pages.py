"""The report's pages: ``report.md`` (linking the PNG files beside it) and the
self-contained ``report.html`` (the figures embedded, so it can be mailed), with the same
sections: the scores, the confusion matrix, the per-class scores, the confidence
(reliability diagram, coverage curve and table), the training curves and the most
confidently wrong images."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["html_page", "markdown_page"]


def _input_size(info: dict[str, Any]) -> str:
    """The networks' input sizes in pixels, one per network."""
    shapes = info.get("input_shapes") or [(info["image_size"], info["image_size"])]
    sizes = "; ".join(
        f"{width} px" if height == width else f"{width} x {height} px (width x height)"
        for height, width in shapes
    )
    return sizes if len(shapes) == 1 else f"{sizes}: {len(shapes)} networks, averaged"


def _score_lines(info: dict[str, Any], n_mistakes: int) -> list[tuple[str, str]]:
    """The summary table of both pages, (name, value) rows, from ``summary.model_info``."""
    lines = [
        ("Images evaluated", str(info["n_images"])),
        ("Accuracy", f"{info['accuracy']:.2%}"),
        ("Balanced accuracy", f"{info['balanced_accuracy']:.2%}"),
        ("Macro F1", f"{info['macro_f1']:.3f}"),
        *_calibration_lines(info),
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


def _calibration_lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    ece = info.get("expected_calibration_error")
    if ece is None:
        return []
    temperature = info.get("temperature", 1.0)
    how = "not calibrated" if temperature == 1.0 else f"temperature {temperature:.3f}"
    return [("Calibration error (ECE, 15 bins)", f"{ece:.2%} ({how})")]


#: The thresholds of the coverage table on both pages.
_COVERAGE_ROWS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
_COVERAGE_HEAD = ["min_score", "photos labelled", "accuracy on them"]


def _coverage_rows(coverage: pd.DataFrame | None) -> list[list[str]]:
    if coverage is None:
        return []
    rows = []
    for _, row in coverage.iterrows():
        if not any(abs(row["threshold"] - t) < 1e-9 for t in _COVERAGE_ROWS):
            continue
        accuracy = "-" if pd.isna(row["accuracy"]) else f"{row['accuracy']:.1%}"
        rows.append(
            [f"{row['threshold']:.2f}", f"{row['coverage']:.1%} ({int(row['images'])})", accuracy]
        )
    return rows


_CONFIDENCE_NOTE = (
    "How far the scores can be trusted. The reliability diagram compares the top score "
    "with how often it is right (on the diagonal: a score of 0.8 is right 8 times in 10). "
    "The coverage curve and table give, for each min_score of predict_top, the share of "
    "photos labelled and their accuracy; the others are left to a person."
)


def _per_class_rows(per_class: pd.DataFrame) -> list[list[str]]:
    """The cells of the per-class table, under ``_PER_CLASS_HEAD``."""
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
    """The cells of the mistakes table, under ``_MISTAKE_HEAD``."""
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
    """A Markdown table, ``|`` in cells escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join(
        [line(head), "|" + "|".join("---" for _ in head) + "|", *(line(r) for r in rows)]
    )


def markdown_page(
    title: str,
    info: dict[str, Any],
    per_class: pd.DataFrame,
    gallery: pd.DataFrame,
    n_mistakes: int,
    figures: dict[str, Path],
    coverage: pd.DataFrame | None = None,
) -> str:
    """The text of ``report.md``: its images are the PNG files beside it, and a section
    says so when ``figures`` lacks ``training_curves`` or ``gallery`` is empty."""
    parts = [
        f"# {title}",
        "",
        _md_table(["", "value"], [list(x) for x in _score_lines(info, n_mistakes)]),
    ]
    parts += ["", "## Confusion matrix", "", "![Confusion matrix](confusion_matrix.png)", ""]
    parts += ["## Per-class scores", "", _md_table(_PER_CLASS_HEAD, _per_class_rows(per_class))]
    if "reliability" in figures:
        parts += ["", "## Confidence", "", _CONFIDENCE_NOTE, ""]
        parts += ["![Reliability diagram](reliability.png)", ""]
        parts += ["![Coverage curve](coverage.png)", ""]
        parts.append(_md_table(_COVERAGE_HEAD, _coverage_rows(coverage)))
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
    """An HTML table with a header row, every cell escaped."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URL."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def html_page(
    title: str,
    info: dict[str, Any],
    per_class: pd.DataFrame,
    gallery: pd.DataFrame,
    n_mistakes: int,
    pngs: dict[str, bytes],
    coverage: pd.DataFrame | None = None,
) -> str:
    """The text of the self-contained ``report.html``: every figure of ``pngs`` embedded,
    every text escaped; a section says so when ``training_curves`` or ``mistakes`` is
    absent."""
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
    ]
    if "reliability" in pngs:
        parts += [
            "<h2>Confidence</h2>",
            f'<p class="note">{html.escape(_CONFIDENCE_NOTE)}</p>',
            _img(pngs["reliability"], "Reliability diagram"),
            _img(pngs["coverage"], "Coverage curve"),
            _html_table(_COVERAGE_HEAD, _coverage_rows(coverage)),
        ]
    parts.append("<h2>Training curves</h2>")
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
