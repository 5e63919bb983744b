"""What a fitted :class:`~clothingclf.ClothingClassifier` does: its learned attributes,
prediction, evaluation, calibration, precision checks, saving and export.

:class:`FittedMethods` holds the :class:`~clothingclf.checkpoint.FittedModel` a fit or a
model file gives (``fitted_``); every learned attribute (``classes_``, ``model_``, ...) is
read from it (:class:`Learned`), and every method hands the work to the room that does
it: the :class:`~clothingclf.predictor.Predictor`, :mod:`clothingclf.fitting`,
:mod:`clothingclf.checkpoint`, :mod:`clothingclf.export`. The estimator
(:mod:`clothingclf.classifier`) adds the parameters, ``fit`` and ``load``.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import numpy as np
import pandas as pd
import torch
from PIL import Image
from typing_extensions import Unpack

from .backbones import ClothingNet, Preprocessing
from .calibration import Balance, Calibration
from .checkpoint import FittedModel, atomic_save, gathered_state, model_payload
from .data import is_splits
from .exceptions import InvalidParameterError, NotFittedError
from .fitting import fit_calibration, labelled_probabilities, measure_precision
from .inference import InferenceOptions, Prediction, as_images
from .metrics import EvaluationReport, evaluation_report
from .predictor import Predictor
from .settings import TrainConfig

if TYPE_CHECKING:
    from typing_extensions import Self

    from .data import DatasetSplits
    from .export import ExportedModel

__all__ = ["FittedMethods", "Learned"]

T = TypeVar("T")


class Learned(Generic[T]):
    """A learned attribute (``classes_``, ...): read from the :class:`FittedModel` the
    estimator keeps, and written to it where ``field`` names one of its fields."""

    def __init__(self, read: Callable[[FittedModel], T] | str, source: str = "") -> None:
        """``read``: the name of a field of the :class:`FittedModel`, or a function of it;
        ``source`` (read-only attributes): what to set instead, for the error."""
        self.field = read if isinstance(read, str) else None
        self.source = f"; set {source} instead" if source else " and cannot be set"
        self.read = read if callable(read) else lambda fitted: getattr(fitted, str(self.field))

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Learned[T]: ...
    @overload
    def __get__(self, obj: FittedMethods, owner: type) -> T: ...
    def __get__(self, obj: FittedMethods | None, owner: type) -> T | Learned[T]:
        return self if obj is None else self.read(obj._fitted())

    def __set__(self, obj: FittedMethods, value: T) -> None:
        if self.field is None:
            raise AttributeError(f"{self.name} is read from the fitted model{self.source}.")
        setattr(obj._fitted(), self.field, value)


def _metric(name: str) -> Callable[[FittedModel], float | None]:
    return lambda fitted: None if fitted.metrics.get(name) is None else float(fitted.metrics[name])


def _teacher_passes(fitted: FittedModel) -> int | None:
    value = fitted.metrics.get("teacher_image_passes")
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class FittedMethods:
    """The methods and learned attributes of a fitted classifier (see
    :class:`~clothingclf.ClothingClassifier`, which documents each)."""

    networks_ = Learned[list[tuple[ClothingNet, Preprocessing]]]("networks")
    model_ = Learned[ClothingNet](lambda fitted: fitted.networks[0][0], "networks_")
    preprocessing_ = Learned[Preprocessing](lambda fitted: fitted.networks[0][1], "networks_")
    config_ = Learned[TrainConfig]("config")
    model_spec_ = Learned[dict[str, Any]]("spec")
    classes_ = Learned[list[str]]("classes")
    history_ = Learned[list[dict[str, float]]]("history")
    best_epoch_ = Learned[int](lambda fitted: int(fitted.metrics.get("best_epoch", 0)))
    best_val_accuracy_ = Learned[float | None](_metric("best_val_accuracy"))
    final_val_accuracy_ = Learned[float | None](_metric("final_val_accuracy"))
    kept_ = Learned[str]("holds")
    teacher_image_passes_ = Learned[int | None](_teacher_passes)
    model_card_ = Learned[dict[str, Any] | None]("model_card")
    calibration_ = Learned[Calibration]("calibration")
    precision_checks_ = Learned[dict[str, dict[str, Any]]]("precision_checks")

    device_: torch.device
    interrupted_: bool
    stopped_early_: bool

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a classifier pickled by 0.2, which kept each learned attribute apart,
        gets them gathered into its :class:`FittedModel`."""
        if "networks_" in state and "fitted_" not in state:
            state = gathered_state(state)
        restore = getattr(super(), "__setstate__", None)
        if restore is not None:
            restore(state)
        else:
            self.__dict__.update(state)

    def __copy__(self) -> Self:
        """A shallow copy whose learned attributes can be set apart from the original's:
        it holds a shallow copy of the :class:`FittedModel` (the networks, and mutable
        values such as ``precision_checks_``, are shared, as ``copy.copy`` shares them)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        if "fitted_" in vars(self):
            clone.fitted_ = copy.copy(vars(self)["fitted_"])
        return clone

    def _file_params(self) -> dict[str, Any]:
        """The estimator's parameters, as a model file stores them."""
        raise NotImplementedError

    def calibrate(
        self, split: pd.DataFrame | DatasetSplits, *, balance: Balance | None = None
    ) -> Self:
        """Fit the temperature of :attr:`calibration_` on a labelled split, so that the
        top score of ``predict_proba`` / ``predict_top`` matches how often it is right.

        :meth:`fit` does this on its validation split when it has at least
        :data:`~clothingclf.fitting.MIN_CALIBRATION_IMAGES` photos (fewer give a
        temperature that fits their noise; the identity is kept; so does a fit stopped with
        Ctrl-C). Call it for a model loaded from an older file, or to
        calibrate on photos like your own (a few hundred, none of them trained on). The
        labels, hence the accuracy, do not change; :meth:`save` stores it.

        Args:
            split: A table with columns ``path`` and ``label``; a
                :class:`~clothingclf.DatasetSplits` is calibrated on its ``val`` split.
            balance: For a model trained with ``logit_adjustment``: make this balance
                (a number from 0 to 1, or ``"accuracy"``, ``"middle"``, ``"balanced"``)
                the model's default, calibrated for it; ``None``: keep the current one.

        Returns:
            ``self``, with the new :attr:`calibration_`.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            MissingColumnsError: The table lacks ``path`` or ``label``.
            EmptyDatasetError: The table has no rows.
            DatasetError: The table has labels the model does not know.
        """
        table = split.val if is_splits(split) else split
        predictor = self.predictor()
        base = self.calibration_ if balance is None else self.calibration_.at(balance)
        self.calibration_ = fit_calibration(predictor, table, base)
        return self

    def check_precision(
        self,
        split: pd.DataFrame | DatasetSplits,
        *,
        precision: Literal["bfloat16", "int8"] = "bfloat16",
    ) -> dict[str, Any]:
        """Measure what running in ``precision`` costs on a labelled split, against float32,
        and record it in :attr:`precision_checks_` (:meth:`save` stores it).

        ``engine="auto"`` runs a reduced precision only for a model whose record says its
        top-1 accuracy moved by at most :data:`~clothingclf.engines.choice.AUTO_MAX_TOP1_CHANGE`
        (0.1 point), bfloat16 only where the CPU computes it natively. For ``"int8"`` the
        networks are first quantised by NNCF on up to
        :data:`~clothingclf.quantization.CALIBRATION_PHOTOS` photos of the split (a random
        sample; the cost is then measured on all of it, those photos included); the
        quantised graph is kept in memory for this process (``precision="int8"`` then runs
        it); after a restart, call this again to rebuild it.

        Args:
            split: A table with columns ``path`` and ``label`` the model was not trained
                on (a few hundred photos); a :class:`~clothingclf.DatasetSplits` is
                checked on its ``val`` split.
            precision: ``"bfloat16"`` or ``"int8"`` (both run by OpenVINO).

        Returns:
            The record: ``top1_change`` (accuracy in ``precision`` minus in float32, a
            fraction), ``labels_changed`` (share of photos whose label changed),
            ``max_probability_change`` and ``photos``.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            InvalidParameterError: ``precision`` cannot run here (bfloat16 on a CPU
                without it natively, the model on a GPU).
            MissingDependencyError: The openvino extra (bfloat16) or the int8 extra is
                not installed.
            MissingColumnsError, EmptyDatasetError, DatasetError: As :meth:`evaluate`.
        """
        table = split.val if is_splits(split) else split
        check = measure_precision(self, table, precision)
        self.precision_checks_.update({precision: check})
        return check

    def _keep(
        self, fitted: FittedModel, device: torch.device, interrupted: bool, stopped_early: bool
    ) -> None:
        """Keep the learned state of a fit or a model file; the attributes ending in ``_``
        derive from it."""
        self.fitted_ = fitted
        self.device_ = device
        self.interrupted_ = interrupted
        self.stopped_early_ = stopped_early

    def __sklearn_is_fitted__(self) -> bool:
        return "fitted_" in vars(self)

    def _fitted(self) -> FittedModel:
        if "fitted_" not in vars(self):
            raise NotFittedError(
                "This ClothingClassifier is not fitted yet: call fit(...) first, or get a "
                "trained one with ClothingClassifier.load(path)."
            )
        fitted: FittedModel = vars(self)["fitted_"]
        return fitted

    def predictor(self) -> Predictor:
        """The fitted networks with their preprocessing: what ``predict``, the export and
        the report run (a :class:`~clothingclf.predictor.Predictor`).

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
        """
        return Predictor.from_fitted(self._fitted(), self.device_)

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, x: Any, **options: Unpack[InferenceOptions]) -> np.ndarray:
        """Class probabilities of one or several images.

        Args:
            x: A path (str or :class:`~pathlib.Path`), the bytes of an image file, a
                :class:`PIL.Image.Image`, an array (H×W×3 ``uint8`` or H×W greyscale; N×H×W×3
                for several), a tensor (3×H×W; N×3×H×W for several), a list of any of these,
                or a table with a ``path`` column (a split).
            **options: How to run it, each optional
                (:class:`~clothingclf.inference.InferenceOptions`): ``tta`` (average with
                the mirror image, twice the work; default: the model's own),
                ``batch_size`` (images per forward pass, 32), ``engine`` (``"auto"``,
                ``"torch"``, ``"onnxruntime"``, ``"openvino"``), ``precision`` (``"auto"``: float32,
                ``"float32"``, ``"bfloat16"``), ``decode_threads`` (photos decoded while
                the network runs; up to 4), ``balance`` (for a model trained with
                ``logit_adjustment``, like the bundled one: ``"accuracy"`` for the most
                photos right, ``"balanced"`` for every class alike, or a number between;
                default: the model's own).

        Returns:
            An array of shape (number of images, number of classes); each row sums to 1;
            columns in :attr:`classes_` order.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            ImageNotFoundError: A path does not exist (the message names it).
            InvalidImageError: An input is not a decodable image (the message names it).
            InvalidParameterError: An unknown option or a value it does not take.
            MissingDependencyError: ``engine="onnxruntime"`` or ``"openvino"`` without
                its extra.
        """
        return self.predictor().probabilities(x, **options)

    @overload
    def predict(
        self,
        x: str | os.PathLike[str] | bytes | Image.Image,
        **options: Unpack[InferenceOptions],
    ) -> str: ...
    @overload
    def predict(
        self,
        x: list[Any] | tuple[Any, ...] | pd.DataFrame | pd.Series,
        **options: Unpack[InferenceOptions],
    ) -> list[str]: ...
    @overload
    def predict(
        self,
        x: np.ndarray | torch.Tensor,
        **options: Unpack[InferenceOptions],
    ) -> str | list[str]: ...

    def predict(self, x: Any, **options: Unpack[InferenceOptions]) -> str | list[str]:
        """The most probable class of one image, or of each of several.

        Args:
            x: Any input of :meth:`predict_proba`.
            **options: The options of :meth:`predict_proba` (``tta``, ``batch_size``,
                ``engine``, ``precision``, ``decode_threads``).

        Returns:
            A class name for one image (a path, bytes, a Pillow image, an H×W(×3) array, a
            3×H×W tensor); a list of class names for a list, a table, an N×H×W×3 array or
            an N×3×H×W tensor.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            ImageNotFoundError: A path does not exist.
            InvalidImageError: An input is not a decodable image.
        """
        probabilities = self.predict_proba(x, **options)
        labels = [self.classes_[i] for i in probabilities.argmax(1)] if len(probabilities) else []
        return labels[0] if as_images(x)[1] else labels

    @overload
    def predict_top(
        self,
        x: str | os.PathLike[str] | bytes | Image.Image,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> Prediction: ...
    @overload
    def predict_top(
        self,
        x: list[Any] | tuple[Any, ...] | pd.DataFrame | pd.Series,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> list[Prediction]: ...
    @overload
    def predict_top(
        self,
        x: np.ndarray | torch.Tensor,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> Prediction | list[Prediction]: ...

    def predict_top(
        self,
        x: Any,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> Prediction | list[Prediction]:
        """The most probable class with its probability, and the ``k`` most probable;
        with ``min_score``, abstain on the photos the model is not sure of.

        The probabilities are calibrated (:attr:`calibration_`), so a threshold means what
        it says: :meth:`evaluate`'s coverage curve gives, for each ``min_score``, the share
        of photos labelled and their accuracy (for the bundled model, see the model card).

        Args:
            x: Any input of :meth:`predict_proba`.
            k: How many ``(label, probability)`` pairs to give (at most the number of
                classes).
            min_score: Give ``label=None`` (abstain: leave the photo to a person) where the
                top probability is below this (0 to 1); ``None``: always label.
            **options: The options of :meth:`predict_proba`.

        Returns:
            A :class:`Prediction` for one image, a list of them for several (same rule as
            :meth:`predict`).

        Raises:
            InvalidParameterError: ``k`` is not a positive int, or ``min_score`` is not a
                number from 0 to 1.
            NotFittedError: The classifier was not fitted or loaded.

        Example:
            >>> from clothingclf import ClothingClassifier
            >>> from clothingclf.pretrained import sample_photos
            >>> clf = ClothingClassifier.pretrained(device="cpu")
            >>> sure = clf.predict_top(sample_photos()["path"], min_score=0.9)
            >>> all(p.label is None or p.score >= 0.9 for p in sure)
            True
        """
        predictions = self.predictor().top(x, k, min_score=min_score, **options)
        return predictions[0] if as_images(x)[1] else predictions

    def evaluate(
        self, split: pd.DataFrame | DatasetSplits, *, balance: Balance | None = None
    ) -> EvaluationReport:
        """Accuracy, balanced accuracy, macro F1, per-class scores, confusion matrix, and
        how far the returned probabilities can be trusted: expected calibration error with
        its reliability table, and the coverage curve (accuracy at each ``min_score``).

        Args:
            split: A table with columns ``path`` and ``label`` (e.g. ``splits.test``); a
                :class:`~clothingclf.DatasetSplits` is evaluated on its ``test`` split.
            balance: Evaluate the labels of this ``balance`` (see :meth:`predict_proba`);
                ``None``: the model's own.

        Returns:
            The :class:`~clothingclf.EvaluationReport`.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            MissingColumnsError: The table lacks ``path`` or ``label``.
            EmptyDatasetError: The table has no rows.
            DatasetError: The table has labels the model does not know.
        """
        table = split.test if is_splits(split) else split
        y_true, probabilities = labelled_probabilities(
            self.predictor(), table, "The evaluated split", calibrated=True, balance=balance
        )
        return evaluation_report(
            y_true, probabilities.argmax(1), classes=self.classes_, probabilities=probabilities
        )

    # ------------------------------------------------------------------ files

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        weights_dtype: Literal["float32", "float16", "bfloat16"] = "float32",
        model_card: Mapping[str, Any] | None = None,
    ) -> None:
        """Save the fitted model in one safetensors file that loads without running code.

        The file (see :mod:`clothingclf.checkpoint`) holds the weights of every network as
        tensors, and as JSON in its header the architecture, the class names, each
        network's preprocessing, the training configuration, the validation metrics (best
        and final), which of the two weight sets it holds, the history, the library and
        format versions, and a SHA-256 of the tensors. It is written atomically: an
        interrupted save leaves any previous file intact.

        Args:
            path: The file to write (conventionally ``*.safetensors``); parent folders are
                created.
            weights_dtype: Store floating-point weights in this type: ``"float16"`` halves
                the file (:meth:`load` computes in float32 again; measure the effect on
                your test split, as ``docs/model_card.rst`` does for the bundled model).
            model_card: What the model is for, its data, licence and test metrics: a dict
                of plain values, stored as is and given back as :attr:`model_card_`.

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            InvalidParameterError: ``weights_dtype`` is not one of the three, or
                ``model_card`` holds something other than plain values.
            SaveError: The file could not be written (disk full, permissions).
        """
        fitted = self._fitted()
        card = model_card if model_card is not None else fitted.model_card
        if card is not None and not isinstance(card, Mapping):
            raise InvalidParameterError(
                "model_card must be a mapping of plain values (str keys; str, number, bool, "
                f"None, lists and mappings of them); found {type(card).__name__}."
            )
        card = dict(card) if card is not None else None
        kept = replace(fitted, params=self._file_params(), model_card=card)
        atomic_save(model_payload(kept, weights_dtype), path)

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: Literal["onnx", "torchscript"] = "onnx",
        opset: int | None = None,
        verify: bool = True,
    ) -> ExportedModel:
        """Export to ONNX or TorchScript (see :func:`~clothingclf.export_model`).

        The graph maps normalised float32 images N×3×H×W (any N) to probabilities N×C;
        ``<path>.json`` beside it holds the class names and the preprocessing. A model of
        several networks becomes one graph with an input per network (``input``,
        ``input_2``, ...: each network's view of the same photos) that averages their
        probabilities, as :meth:`predict_proba` does.

        Args:
            path: The file to write (``model.onnx``, ``model.ts.pt``).
            format: ``"onnx"`` (needs ``pip install "clothingclf[onnx]"``) or
                ``"torchscript"``.
            opset: The ONNX opset (default 17).
            verify: Compare the exported model with this one on random batches of 1 and 3.

        Returns:
            The :class:`~clothingclf.ExportedModel` (paths, metadata, measured difference).

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
            ExportError: The export failed or is not faithful to 1e-4; no file is written.
        """
        from .export import export_model

        return export_model(self, path, format=format, opset=opset, verify=verify)
