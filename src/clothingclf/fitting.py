"""The work behind :class:`~clothingclf.ClothingClassifier`'s methods, as functions.

The estimator holds parameters and a :class:`~clothingclf.checkpoint.FittedModel`; these
functions do what its methods promise and return what it keeps, in the manner of
scikit-learn (``LogisticRegression.fit`` calls ``_logistic_regression_path``):

* :func:`fit_model`: the networks trained (:func:`~clothingclf.training.fit_networks`),
  assembled into a :class:`~clothingclf.checkpoint.FittedModel`, and calibrated on the
  validation split;
* :func:`fit_calibration`: a temperature fitted on a labelled split;
* :func:`measure_precision`: what a reduced precision costs on a labelled split;
* :func:`teacher_probabilities`: a teacher's probabilities for distillation.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from .calibration import Balance, Calibration, class_prior
from .checkpoint import FittedModel
from .devices import resolve_device
from .engines import build_int8, choose_engine
from .exceptions import EmptyDatasetError, InvalidParameterError
from .predictor import HasPredictor, Predictor
from .quantization import CALIBRATION_PHOTOS
from .settings import RunOptions, TrainConfig
from .training import FitTables, fit_networks, require_columns

__all__ = [
    "MIN_CALIBRATION_IMAGES",
    "FitOutcome",
    "fit_calibration",
    "fit_model",
    "labelled_probabilities",
    "measure_precision",
    "teacher_probabilities",
]

#: :meth:`~clothingclf.ClothingClassifier.fit` calibrates on a validation split of at least
#: this many photos.
MIN_CALIBRATION_IMAGES = 100


@dataclass(frozen=True)
class FitOutcome:
    """What :func:`fit_model` gives: the model, where its networks live, and how the fit
    ended (Ctrl-C, early stopping: facts of this run, not saved)."""

    fitted: FittedModel
    device: torch.device
    interrupted: bool
    stopped_early: bool


def fit_model(
    backbone: Any,
    weights: Any,
    tables: FitTables,
    *,
    config: TrainConfig,
    options: RunOptions,
    device: str | torch.device,
    teacher: HasPredictor | str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> FitOutcome:
    """Train the networks of ``config`` on ``tables`` (what
    :func:`~clothingclf.training.tables.fit_tables` made of ``fit``'s arguments; see
    :meth:`ClothingClassifier.fit <clothingclf.ClothingClassifier.fit>` for the arguments
    and errors) and calibrate them on the validation split when it has at least
    :data:`MIN_CALIBRATION_IMAGES` photos and the fit was not interrupted."""
    train, val_table, classes, class_weights = tables
    taught = None if teacher is None else teacher_probabilities(teacher, train, classes)
    ensemble = fit_networks(
        backbone,
        weights,
        train,
        val_table,
        classes=classes,
        class_weights=class_weights,
        config=config,
        options=options,
        device=resolve_device(device),
        checkpoint=checkpoint,
        resume=resume,
        teacher_probabilities=None if taught is None else taught[0],
    )
    results = ensemble.results
    several = len(results) > 1
    best, final = results[0].best_val_accuracy, results[0].final_val_accuracy
    if several:
        best, final = ensemble.averaged_accuracies(val_table)
    fitted = FittedModel(
        networks=ensemble.networks,
        spec=ensemble.spec,
        classes=list(classes),
        config=config,
        history=[
            {**row, "network": float(index)} if several else dict(row)
            for index, result in enumerate(results)
            for row in result.history
        ],
        metrics={
            "best_epoch": int(results[0].best_epoch),
            "best_val_accuracy": best,
            "final_val_accuracy": final,
            **({"teacher_image_passes": taught[1]} if taught is not None else {}),
        },
        holds=config.keep,
        params={},
    )
    if config.logit_adjustment > 0:  # prediction adds the prior back (balance)
        fitted.calibration = Calibration(
            prior=class_prior(train["label_id"], len(classes)),
            logit_adjustment=config.logit_adjustment,
        )
    interrupted = any(result.interrupted for result in results)
    # On the validation probabilities the fit computed for the weights it kept (no second
    # pass). Not after Ctrl-C: the user asked to stop, and the weights kept at that point
    # were not validated.
    if val_table is not None and len(val_table) >= MIN_CALIBRATION_IMAGES and not interrupted:
        seen = ensemble.validation_probabilities(config.keep, len(val_table))
        if seen is None:  # a distributed fit keeps no rows: one more pass
            predictor = Predictor.from_fitted(fitted, ensemble.device)
            fitted.calibration = fit_calibration(predictor, val_table, fitted.calibration)
        else:
            labels = val_table["label_id"].to_numpy()
            fitted.calibration = Calibration.fit(seen, labels, base=fitted.calibration)
    return FitOutcome(
        fitted=fitted,
        device=ensemble.device,
        interrupted=interrupted,
        stopped_early=any(result.stopped_early for result in results),
    )


def labelled_probabilities(
    predictor: Predictor,
    table: Any,
    what: str,
    *,
    calibrated: bool,
    balance: Balance | None = None,
    precision: Literal["auto", "float32"] = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The label ids and the probabilities of a labelled split table (``what`` names it
    in errors).

    Raises:
        InvalidParameterError: ``table`` is not a table.
        MissingColumnsError: It lacks ``path`` or ``label``.
        EmptyDatasetError: It has no rows.
        DatasetError: It has labels the model does not know.
    """
    if not isinstance(table, pd.DataFrame):
        raise InvalidParameterError(
            f"{what} must be a table with path and label columns, or DatasetSplits; "
            f"found {type(table).__name__}."
        )
    require_columns(table, ("path", "label"), what)
    if len(table) == 0:
        raise EmptyDatasetError(f"{what} has no rows.")
    y_true = predictor.label_ids(table, what)
    probabilities = predictor.probabilities(
        table, calibrated=calibrated, balance=balance, precision=precision
    )
    return y_true, probabilities


def fit_calibration(predictor: Predictor, table: Any, base: Calibration) -> Calibration:
    """``base`` with its temperature fitted on a labelled split (on float32 probabilities,
    as :func:`fit_model` calibrates, whatever ``engine="auto"`` would run); warns below
    :data:`MIN_CALIBRATION_IMAGES` photos."""
    y_true, probabilities = labelled_probabilities(
        predictor, table, "The calibration split", calibrated=False, precision="float32"
    )
    if len(y_true) < MIN_CALIBRATION_IMAGES:
        warnings.warn(
            f"Calibrating on {len(y_true)} photos: a temperature fitted on fewer than "
            f"{MIN_CALIBRATION_IMAGES} is unreliable (it fits their noise); use a larger "
            "labelled split the model was not trained on.",
            stacklevel=3,
        )
    return Calibration.fit(probabilities, y_true, base=base)


def measure_precision(
    model: HasPredictor, table: Any, precision: Literal["bfloat16", "int8"]
) -> dict[str, Any]:
    """What running ``model`` in ``precision`` changes against float32 on a labelled
    split: the record of :meth:`ClothingClassifier.check_precision
    <clothingclf.ClothingClassifier.check_precision>` (which documents it). For int8 the
    networks are first quantised on up to :data:`~clothingclf.quantization.CALIBRATION_PHOTOS`
    of its photos."""
    if precision not in ("bfloat16", "int8"):
        raise InvalidParameterError(f"precision must be 'bfloat16' or 'int8'; found {precision!r}.")
    predictor = model.predictor()
    choose_engine("openvino", precision, device=predictor.device)  # can it run here?
    y_true, reference = labelled_probabilities(
        predictor, table, "The checked split", calibrated=True, precision="float32"
    )
    if precision == "int8":
        spread = table.sample(min(len(table), CALIBRATION_PHOTOS), random_state=0)
        calibration = predictor.network_inputs(spread["path"].tolist(), CALIBRATION_PHOTOS)
        networks = [network for network, _ in predictor.networks]
        build_int8(networks, [p.input_shape for _, p in predictor.networks], calibration)
    reduced = predictor.probabilities(table, engine="openvino", precision=precision)
    return {
        "top1_change": float(
            (reduced.argmax(1) == y_true).mean() - (reference.argmax(1) == y_true).mean()
        ),
        "labels_changed": float((reduced.argmax(1) != reference.argmax(1)).mean()),
        "max_probability_change": float(np.abs(reduced - reference).max()),
        "photos": len(y_true),
    }


def teacher_probabilities(
    teacher: HasPredictor | str | os.PathLike[str], train: pd.DataFrame, classes: Any
) -> tuple[np.ndarray, int]:
    """A teacher's uncalibrated probabilities for each row of ``train`` (columns in
    ``classes`` order), and the network passes they cost.

    Raises:
        InvalidParameterError: Not a fitted classifier or a model file's path, or a
            teacher that lacks some of ``classes``.
        NotFittedError: An unfitted classifier.
    """
    if isinstance(teacher, (str, os.PathLike)):
        predictor = Predictor.from_file(teacher)
    elif callable(getattr(teacher, "predictor", None)):
        predictor = teacher.predictor()
    else:
        raise InvalidParameterError(
            "teacher must be a fitted ClothingClassifier or the path of a model file; "
            f"found {type(teacher).__name__}."
        )
    known = list(predictor.classes)
    missing = [name for name in classes if name not in known]
    if missing:
        raise InvalidParameterError(
            f"The teacher does not know the classes {missing} of the training table; "
            f"it was trained on {known}. Use a teacher of the same classes."
        )
    probabilities = predictor.probabilities(train, calibrated=False)
    taught = probabilities[:, [known.index(name) for name in classes]]
    taught = taught / np.clip(taught.sum(1, keepdims=True), 1e-12, None)
    passes = len(train) * len(predictor.networks) * (2 if predictor.tta else 1)
    return taught, passes
