"""The report's figures as PNG bytes: the confusion matrix, the reliability diagram, the
coverage curve, the training curves and the gallery of the most confidently wrong images.

They need matplotlib (``pip install "clothingclf[plot]"``), imported only when a figure is
drawn; they are drawn with the Agg renderer on :class:`matplotlib.figure.Figure` objects, so
the global backend of a notebook or application is never changed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidImageError, MissingDependencyError
from ..images import open_image
from ..metrics import EvaluationReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "confusion_png",
    "coverage_png",
    "curves_png",
    "draw_figures",
    "gallery_png",
    "matplotlib_figure",
    "reliability_png",
]

_THUMB = 192  # pixels of the longer side of a gallery thumbnail


def matplotlib_figure() -> Any:
    """matplotlib's :class:`~matplotlib.figure.Figure`, to pass to the drawing functions.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``plot`` extra).
    """
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


def draw_figures(
    figure_class: Any,
    evaluation: EvaluationReport,
    history: Sequence[dict[str, Any]],
    best: int | None,
    gallery: pd.DataFrame,
) -> dict[str, bytes]:
    """Every figure of a report, by name: ``confusion_matrix``, ``reliability`` and
    ``coverage`` (when the evaluation has them), ``training_curves`` (only with a
    ``history``) and ``mistakes`` (only with rows in ``gallery``).

    Text is drawn as written: a class or file name holding ``$...$`` is not read as
    mathtext (nor as TeX), so it can neither break nor restyle a figure."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        pngs: dict[str, bytes] = {"confusion_matrix": confusion_png(figure_class, evaluation)}
        if evaluation.reliability is not None:
            pngs["reliability"] = reliability_png(figure_class, evaluation)
        if evaluation.coverage is not None:
            pngs["coverage"] = coverage_png(figure_class, evaluation)
        if history:
            pngs["training_curves"] = curves_png(figure_class, history, best)
        if len(gallery):
            pngs["mistakes"] = gallery_png(figure_class, gallery)
        return pngs


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


# ---------------------------------------------------------------------- confusion matrix


def confusion_png(figure_class: Any, evaluation: EvaluationReport) -> bytes:
    """The confusion matrix: each cell's count and share of its row (the true class), class
    names on both axes, the number of images of each true class beside its name."""
    matrix = evaluation.confusion_matrix.astype(np.int64)
    n = len(evaluation.classes)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    cell = 0.62 if n > 6 else 0.9
    side = max(3.5, cell * n)
    fig = figure_class(figsize=(side + 2.6, side + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    _label_cells(ax, matrix, shares, font=9 if n <= 8 else 7)
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


def _label_cells(ax: Any, matrix: np.ndarray, shares: np.ndarray, font: int) -> None:
    """Write count and share into every non-empty cell, white on the dark ones."""
    n = len(matrix)
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


# ---------------------------------------------------------------------- confidence


def reliability_png(figure_class: Any, evaluation: EvaluationReport) -> bytes:
    """The reliability diagram: per bin of top score, the share of its photos labelled
    right against the mean score (on the diagonal when calibrated), and how many photos
    each bin holds."""
    table = evaluation.reliability
    assert table is not None
    fig = figure_class(figsize=(6.4, 6.2))
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    counts_ax = fig.add_subplot(grid[1], sharex=ax)
    width = float(table["high"].iloc[0] - table["low"].iloc[0])
    used = table[table["images"] > 0]
    centres = (used["low"] + used["high"]) / 2
    ax.bar(centres, used["accuracy"], width=width * 0.92, color="#4c78a8", label="accuracy")
    ax.bar(
        centres,
        used["confidence"] - used["accuracy"],
        bottom=used["accuracy"],
        width=width * 0.92,
        color="none",
        edgecolor="#e45756",
        hatch="//",
        linewidth=0.8,
        label="gap to the mean score",
    )
    ax.plot([0, 1], [0, 1], color="#555555", linestyle="--", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share labelled right", fontsize=10)
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    ece = evaluation.expected_calibration_error
    ax.set_title(
        f"Reliability: top score against accuracy (calibration error {ece:.1%}, {len(table)} bins)",
        fontsize=10,
    )
    ax.tick_params(labelbottom=False)
    counts_ax.bar(centres, used["images"], width=width * 0.92, color="#9d9d9d")
    counts_ax.set_ylabel("photos", fontsize=10)
    counts_ax.set_xlabel("top score (the probability of the predicted class)", fontsize=10)
    counts_ax.xaxis.set_major_formatter(_percent_formatter())
    return _png(fig)


def coverage_png(figure_class: Any, evaluation: EvaluationReport) -> bytes:
    """The coverage curve: for each ``min_score``, the share of photos labelled (the rest
    left to a person) and the accuracy on them."""
    table = evaluation.coverage
    assert table is not None
    fig = figure_class(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    ax.plot(
        table["threshold"], table["coverage"], marker="o", markersize=3, color="#4c78a8",
        label="photos labelled (coverage)",
    )  # fmt: skip
    ax.plot(
        table["threshold"], table["accuracy"], marker="o", markersize=3, color="#54a24b",
        label="accuracy on them",
    )  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("min_score: label only photos whose top score reaches it", fontsize=10)
    ax.grid(color="#eeeeee", linewidth=0.6)
    ax.legend(loc="lower left", fontsize=9, frameon=False)
    ax.set_title("Coverage: what abstaining below a score buys", fontsize=10)
    return _png(fig)


# ---------------------------------------------------------------------- training curves


def curves_png(figure_class: Any, history: Sequence[dict[str, Any]], best: int | None) -> bytes:
    """Loss and validation accuracy per epoch; one set of lines per network when there
    are several (``network`` in the rows), points only where an epoch was validated."""
    groups = _by_network(history)
    several = len(groups) > 1
    fig = figure_class(figsize=(9.5, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    any_accuracy, any_head = False, False
    for number, rows in sorted(groups.items()):
        accuracy, head = _plot_network(loss_ax, acc_ax, number, rows, several)
        any_accuracy, any_head = any_accuracy or accuracy, any_head or head
    if any_accuracy:
        acc_ax.yaxis.set_major_formatter(_percent_formatter())
        if several:
            acc_ax.legend(fontsize=8)
    else:
        acc_ax.text(0.5, 0.5, "no validation split", ha="center", va="center")
    _finish_curve_axes(loss_ax, acc_ax, any_head=any_head, best=None if several else best)
    return _png(fig)


def _by_network(history: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The history's rows by network number (0 when a row names none)."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in history:
        number = _number(row.get("network"))
        groups.setdefault(0 if math.isnan(number) else int(number), []).append(row)
    return groups


def _plot_network(
    loss_ax: Any, acc_ax: Any, number: int, rows: list[dict[str, Any]], several: bool
) -> tuple[bool, bool]:
    """Draw one network's losses and validation accuracy; return whether it has any
    accuracy, and whether it has an epoch 0 (a head-only stage)."""

    def column(key: str) -> np.ndarray:
        return np.array([_number(row.get(key)) for row in rows], dtype=float)

    epochs = column("epoch")
    if np.isnan(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=float)
    head = bool(0 in epochs)
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
        acc_ax.plot(
            epochs[shown],
            accuracy[shown],
            marker="o",
            markersize=3,
            color=f"C{number}" if several else "C2",
            label=prefix.rstrip(": ") or None,
        )
    return bool(shown.any()), head


def _finish_curve_axes(loss_ax: Any, acc_ax: Any, *, any_head: bool, best: int | None) -> None:
    """Axis labels, titles, grids, integer epochs, the ``best`` epoch's line (if any) and
    the loss legend."""
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
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.legend(fontsize=8)


def _number(value: Any) -> float:
    """``value`` as a float; NaN when it is missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


# ---------------------------------------------------------------------- mistakes


def gallery_png(figure_class: Any, gallery: pd.DataFrame) -> bytes:
    """The images of ``gallery`` (columns ``path``, ``label``, ``predicted``, ``score``), up
    to four a row, each titled with its true and predicted label; an unreadable image is
    shown as a note."""
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


def _thumbnail(path: str) -> np.ndarray | None:
    """The image at ``path`` shrunk to at most ``_THUMB`` pixels a side; None when it cannot
    be read."""
    try:
        image = open_image(path, draft_size=(_THUMB * 2, _THUMB * 2))
    except (InvalidImageError, FileNotFoundError):
        return None
    image.thumbnail((_THUMB, _THUMB))
    return np.asarray(image)


def _short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: width - 1] + "…"
