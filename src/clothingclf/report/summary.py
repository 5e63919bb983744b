"""What ``report.json`` holds: the model's details and the scores (also the facts the pages
show), the mistakes, the training history and the names of the other files."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..metrics import EvaluationReport
from .files import REPORT_FORMAT

if TYPE_CHECKING:
    from ..classifier import ClothingClassifier

__all__ = ["model_info", "summary_json"]


def model_info(classifier: ClothingClassifier, evaluation: EvaluationReport) -> dict[str, Any]:
    """The library version, the model's backbone, input sizes, classes and best epoch, and
    the headline scores of ``evaluation``: plain JSON values."""
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
        "expected_calibration_error": evaluation.expected_calibration_error,
        "temperature": classifier.predictor().calibration.temperature,
    }


def summary_json(
    info: dict[str, Any],
    evaluation: EvaluationReport,
    n_mistakes: int,
    gallery: pd.DataFrame,
    history: Sequence[dict[str, Any]],
    files: dict[str, Path],
) -> str:
    """The text of ``report.json`` (indented, one final newline): ``format``, the entries
    of ``info``, the evaluation, the mistakes of the gallery, the history (NaN as null) and
    the file names by name."""
    summary = {
        "format": REPORT_FORMAT,
        **info,
        "evaluation": evaluation.to_dict(),
        "n_mistakes": n_mistakes,
        "most_confident_mistakes": gallery.to_dict(orient="records"),
        "history": [{k: _json_number(v) for k, v in row.items()} for row in history],
        "files": {k: v.name for k, v in files.items()},
    }
    return json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_number(value: Any) -> Any:
    """NaN and infinities (a stage without a training loss) become null in JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    """NumPy scalars as Python numbers (NaN and infinities as null)."""
    if isinstance(value, np.generic):
        return _json_number(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
