"""What a prediction call takes and gives: the inputs it accepts (:func:`as_images`), its
options (:class:`InferenceOptions`, checked by :func:`check_options`) and its result
(:class:`Prediction`). Shared by the estimator, :class:`~clothingclf.predictor.Predictor`
and the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ._kinds import is_int, is_real
from .calibration import Balance
from .exceptions import InvalidImageError, InvalidParameterError, MissingColumnsError, did_you_mean

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "InferenceOptions",
    "Prediction",
    "as_images",
    "check_min_score",
    "check_options",
]

#: Images per forward pass when ``predict`` is given several and no ``batch_size``.
DEFAULT_BATCH_SIZE = 32

_SINGLE_TYPES = (str, os.PathLike, bytes, bytearray, Image.Image)


def as_images(x: Any) -> tuple[list[Any], bool]:
    """The images in ``x`` as a list, and whether ``x`` was a single image.

    Raises:
        MissingColumnsError: A table without a ``path`` column.
        InvalidImageError: ``x`` is of a kind that holds no images.
    """
    if isinstance(x, pd.DataFrame):
        if "path" not in x.columns:
            raise MissingColumnsError(
                f"The table lacks column 'path' (found: {', '.join(map(str, x.columns))}); "
                "expected a split of prepare_dataset() or a table of image paths."
            )
        return [str(p) for p in x["path"]], False
    if isinstance(x, pd.Series):
        return list(x), False
    if isinstance(x, _SINGLE_TYPES):
        return [x], True
    if isinstance(x, np.ndarray):
        return (list(x), False) if x.ndim == 4 else ([x], True)
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.device.type == "meta":
            return [x], True  # open_image says why it holds no pixels to read
        return (list(x), False) if x.ndim == 4 else ([x], True)
    if isinstance(x, (list, tuple)):
        return list(x), False
    raise InvalidImageError(
        f"Cannot read images from a {type(x).__name__}; expected a path, bytes, a PIL.Image, "
        "an array, a tensor, a list of these, or a table with a path column."
    )


@dataclass(frozen=True)
class Prediction:
    """The label of one image, its probability, and the ``k`` most probable labels.

    Attributes:
        label: The most probable class; ``None`` when asked to abstain below a
            ``min_score`` that ``score`` does not reach (the photo is left to a person,
            ``top_k`` still lists the candidates).
        score: The most probable class's probability (0 to 1).
        top_k: ``(label, probability)`` pairs, most probable first.

    Example:
        >>> p = Prediction(label="Hat", score=0.9, top_k=(("Hat", 0.9), ("Shoes", 0.1)))
        >>> p.to_dict()["top_k"]
        [{'label': 'Hat', 'score': 0.9}, {'label': 'Shoes', 'score': 0.1}]
    """

    label: str | None
    score: float
    top_k: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: ``label``, ``score`` and ``top_k`` as a list of dicts."""
        return {
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
        }

    def flat(self) -> dict[str, Any]:
        """One table row: ``label``, ``score``, then ``label_2``, ``score_2``, ... for the
        rest of :attr:`top_k` (the columns of :meth:`flat_columns`).

        Example:
            >>> Prediction("Hat", 0.9, (("Hat", 0.9), ("Shoes", 0.1))).flat()
            {'label': 'Hat', 'score': 0.9, 'label_2': 'Shoes', 'score_2': 0.1}
        """
        row: dict[str, Any] = {"label": self.label, "score": self.score}
        for rank, (label, score) in enumerate(self.top_k[1:], start=2):
            row[f"label_{rank}"], row[f"score_{rank}"] = label, score
        return row

    @staticmethod
    def flat_columns(k: int) -> list[str]:
        """The columns of :meth:`flat` for ``k`` labels per image."""
        names = ["label", "score"]
        for rank in range(2, k + 1):
            names += [f"label_{rank}", f"score_{rank}"]
        return names


class InferenceOptions(TypedDict, total=False):
    """The keyword options of ``predict``, ``predict_proba``, ``predict_top`` and
    :meth:`~clothingclf.predictor.Predictor.probabilities`; each may be left out.

    Attributes:
        tta: Average each image's probabilities with its mirror image's (twice the
            work); ``None`` (the default): the model's own default.
        batch_size: Images per forward pass (``None``: :data:`DEFAULT_BATCH_SIZE`).
        engine: ``"auto"`` (the default), ``"torch"``, ``"onnxruntime"`` or
            ``"openvino"`` (:mod:`clothingclf.engines` says what ``auto`` picks).
        precision: ``"auto"`` (the default: float32, or a reduced precision the model's
            ``precision_checks_`` allow), ``"float32"``, ``"bfloat16"`` (OpenVINO where
            the CPU computes it natively, about twice as fast there; torch elsewhere and on
            GPUs; probabilities change by up to a few hundredths) or ``"int8"`` (OpenVINO,
            once ``check_precision(split, precision="int8")`` has quantised the model).
        decode_threads: Threads that decode and resize the next photos while the
            network runs (``None``: up to 4; 0: decode in the calling thread).
        calibrated: Apply the model's :class:`~clothingclf.calibration.Calibration`
            (the default, ``True``); ``False``: the networks' own averaged
            probabilities. The labels are the same either way, except for a model
            trained with ``logit_adjustment``, whose networks' own scores are those of
            ``balance="balanced"``.
        balance: For a model trained with ``logit_adjustment`` (the bundled one): from 0
            (``"accuracy"``: the most photos right) to 1 (``"balanced"``: every class
            alike, the rare ones found more often); ``"middle"`` is 0.5. ``None``: the
            model's own (its card says which, and what each costs).
    """

    tta: bool | None
    batch_size: int | None
    engine: Literal["auto", "torch", "onnxruntime", "openvino"]
    precision: Literal["auto", "float32", "bfloat16", "int8"]
    decode_threads: int | None
    calibrated: bool
    balance: Balance | None


_OPTION_DEFAULTS: dict[str, Any] = {
    "tta": None,
    "batch_size": None,
    "engine": "auto",
    "precision": "auto",
    "decode_threads": None,
    "calibrated": True,
    "balance": None,
}


def check_min_score(min_score: Any) -> None:
    """Raise :class:`~clothingclf.exceptions.InvalidParameterError` unless ``min_score`` is
    ``None`` or a number from 0 to 1."""
    if min_score is None:
        return
    if not is_real(min_score):
        raise InvalidParameterError(
            f"min_score must be a number from 0 to 1 or None; found {min_score!r}."
        )
    if not 0.0 <= float(min_score) <= 1.0:
        raise InvalidParameterError(f"min_score must be from 0 to 1; found {min_score!r}.")


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with their defaults filled in, each checked."""
    unknown = sorted(set(options) - set(_OPTION_DEFAULTS))
    if unknown:
        hint = did_you_mean(unknown[0], _OPTION_DEFAULTS)
        raise InvalidParameterError(
            f"Prediction has no option {unknown[0]!r}.{hint} Its options: "
            f"{', '.join(_OPTION_DEFAULTS)}."
        )
    settings = {**_OPTION_DEFAULTS, **options}
    if settings["tta"] is not None and not isinstance(settings["tta"], bool):
        raise InvalidParameterError(f"tta must be True, False or None; found {settings['tta']!r}.")
    if not isinstance(settings["calibrated"], bool):
        raise InvalidParameterError(
            f"calibrated must be True or False; found {settings['calibrated']!r}."
        )
    batch = settings["batch_size"]
    if batch is not None and not (is_int(batch) and batch >= 1):
        raise InvalidParameterError(f"batch_size must be a positive int; found {batch!r}.")
    threads = settings["decode_threads"]
    if threads is not None and not (is_int(threads) and threads >= 0):
        raise InvalidParameterError(
            f"decode_threads must be an int >= 0 (0: decode in this thread); found {threads!r}."
        )
    return settings
