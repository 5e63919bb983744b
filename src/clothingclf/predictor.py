"""The trained networks with their preprocessing: images in, class probabilities out.

A :class:`Predictor` is what :meth:`ClothingClassifier.predict_proba
<clothingclf.ClothingClassifier.predict_proba>`, the ONNX/TorchScript export and the report
run; :meth:`ClothingClassifier.predictor <clothingclf.ClothingClassifier.predictor>` gives
the one of a fitted or loaded classifier. Several networks (one per view of the photos)
are averaged; each image is decoded once into the canvas of every network's view, and the
batch of canvases is cropped and normalised as validation does
(:meth:`~clothingclf.backbones.Preprocessing.network_input`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .backbones import ClothingNet, Preprocessing
from .data import ClothingDataset
from .exceptions import DatasetError, InvalidImageError, InvalidParameterError, MissingColumnsError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "INFERENCE_LAYOUT",
    "HasPredictor",
    "Prediction",
    "Predictor",
    "as_images",
    "to_inference_layout",
]

#: Images per forward pass when ``predict`` is given several and no ``batch_size``.
DEFAULT_BATCH_SIZE = 32

#: Prediction runs in float32 in the channels-last layout, faster than the default layout
#: on the CPU (oneDNN) and on GPUs (cuDNN) with probabilities equal to ~1e-7. Fitted and
#: loaded models both use it, so save -> load gives identical probabilities.
INFERENCE_LAYOUT = torch.channels_last

_SINGLE_TYPES = (str, os.PathLike, bytes, bytearray, Image.Image)


def to_inference_layout(model: ClothingNet, device: torch.device) -> None:
    """Move ``model`` to ``device`` in the layout prediction uses, in evaluation mode."""
    model.to(device)
    model.to(memory_format=INFERENCE_LAYOUT).eval()


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


class _Canvases:
    """One decoded image as the uint8 canvas of every network's view (picklable, for
    DataLoader workers); :meth:`Preprocessing.network_input` finishes them batch-wise."""

    def __init__(self, preprocessings: Sequence[Preprocessing]) -> None:
        self.preprocessings = tuple(preprocessings)

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, ...]:
        return tuple(prep.canvas(image) for prep in self.preprocessings)


def _inputs(items: Sequence[Any], preprocessings: Sequence[Preprocessing]) -> ClothingDataset:
    """The images to label, each decoded once into the canvases of every network."""
    # JPEG draft mode may shrink a photo only as far as the largest canvas needs.
    draft = (
        max(prep.draft_size[0] for prep in preprocessings),
        max(prep.draft_size[1] for prep in preprocessings),
    )
    return ClothingDataset(items, _Canvases(preprocessings), draft_size=draft)


@dataclass(frozen=True)
class Prediction:
    """The label of one image, its probability, and the ``k`` most probable labels.

    Attributes:
        label: The most probable class.
        score: Its probability (0 to 1).
        top_k: ``(label, probability)`` pairs, most probable first.

    Example:
        >>> p = Prediction(label="Hat", score=0.9, top_k=(("Hat", 0.9), ("Shoes", 0.1)))
        >>> p.to_dict()["top_k"]
        [{'label': 'Hat', 'score': 0.9}, {'label': 'Shoes', 'score': 0.1}]
    """

    label: str
    score: float
    top_k: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: ``label``, ``score`` and ``top_k`` as a list of dicts."""
        return {
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
        }


def _check_batch_size(batch_size: Any) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise InvalidParameterError(f"batch_size must be a positive int; found {batch_size!r}.")


@dataclass(frozen=True)
class Predictor:
    """Networks, each with the preprocessing of its view, averaged into probabilities.

    Attributes:
        networks: ``(model, preprocessing)`` pairs, the first being the classifier's
            ``model_``; the models are in evaluation mode on ``device``.
        classes: Class names, in the order of the networks' outputs.
        device: Where the networks run.
        tta: The model's default for test-time augmentation (each image and its mirror
            image, probabilities averaged).
    """

    networks: tuple[tuple[ClothingNet, Preprocessing], ...]
    classes: tuple[str, ...]
    device: torch.device
    tta: bool

    def probabilities(
        self, x: Any, *, tta: bool | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """Class probabilities of the images in ``x`` (see ``predict_proba``).

        Args:
            x: A path, bytes, a Pillow image, an array, a tensor, a list of these, or a
                table with a ``path`` column.
            tta: Average each image with its mirror image; ``None``: :attr:`tta`.
            batch_size: Images per forward pass; ``None``: :data:`DEFAULT_BATCH_SIZE`.

        Returns:
            ``(number of images, number of classes)`` float64 probabilities.

        Raises:
            InvalidParameterError: ``batch_size`` is not a positive int, or ``tta`` not a
                bool.
            ImageNotFoundError: A path does not exist.
            InvalidImageError: An input is not a decodable image.
        """
        _check_batch_size(batch_size)
        if tta is not None and not isinstance(tta, bool):
            raise InvalidParameterError(f"tta must be True, False or None; found {tta!r}.")
        mirror = self.tta if tta is None else tta
        items, _ = as_images(x)
        if not items:
            return np.zeros((0, len(self.classes)), dtype=np.float64)
        models = [model for model, _ in self.networks]
        for model in models:
            if model.training:
                model.eval()
        dataset = _inputs(items, [prep for _, prep in self.networks])
        with torch.inference_mode():
            if len(items) == 1:
                canvases, _ = dataset[0]
                return self._mean(models, [view.unsqueeze(0) for view in canvases], mirror)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch_size or DEFAULT_BATCH_SIZE, shuffle=False
            )
            return np.concatenate([self._mean(models, batch, mirror) for batch, _ in loader])

    def _mean(
        self, models: Sequence[ClothingNet], canvases: Sequence[torch.Tensor], tta: bool
    ) -> np.ndarray:
        """The mean over the networks of each one's probabilities for its own view
        (``canvases``: uint8 batches, one per network)."""
        total: torch.Tensor | None = None
        for model, (_, prep), canvas in zip(models, self.networks, canvases, strict=True):
            batch = prep.network_input(canvas.to(self.device))
            batch = batch.contiguous(memory_format=INFERENCE_LAYOUT)
            probabilities = model(batch).double().softmax(1)
            if tta:
                probabilities = (probabilities + model(batch.flip(-1)).double().softmax(1)) / 2
            total = probabilities if total is None else total + probabilities
        assert total is not None
        mean: np.ndarray = (total / len(models)).cpu().numpy()
        return mean

    def top(
        self, x: Any, k: int = 3, *, tta: bool | None = None, batch_size: int | None = None
    ) -> list[Prediction]:
        """A :class:`Prediction` (label, probability, the ``k`` most probable) per image.

        Raises:
            InvalidParameterError: ``k`` is not a positive int (or see
                :meth:`probabilities`).
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidParameterError(f"k must be a positive int; found {k!r}.")
        probabilities = self.probabilities(x, tta=tta, batch_size=batch_size)
        k = min(k, len(self.classes))
        predictions = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:k]
            top = tuple((self.classes[i], float(row[i])) for i in order)
            predictions.append(Prediction(label=top[0][0], score=top[0][1], top_k=top))
        return predictions

    def label_ids(self, table: pd.DataFrame, what: str) -> np.ndarray:
        """The class index of each row's ``label``.

        Raises:
            MissingColumnsError: The table has no ``label`` column.
            DatasetError: Labels the model was not trained on (the message lists them).
        """
        if "label" not in table.columns:
            raise MissingColumnsError(
                f"{what} lacks column 'label' (found: {', '.join(map(str, table.columns))})."
            )
        index = {str(name): i for i, name in enumerate(self.classes)}
        unknown = sorted({str(v) for v in table["label"]} - set(index))
        if unknown:
            raise DatasetError(
                f"{what} has labels the model was not trained on: {', '.join(unknown)} "
                f"(model classes: {', '.join(index)}). Remove those rows or train on them."
            )
        return np.array([index[str(v)] for v in table["label"]], dtype=np.int64)

    def predictor(self) -> Predictor:
        """Itself: a Predictor is accepted wherever a fitted classifier is."""
        return self


class HasPredictor(Protocol):
    """Anything that gives a :class:`Predictor`: a fitted
    :class:`~clothingclf.ClothingClassifier`, or a :class:`Predictor` itself."""

    def predictor(self) -> Predictor: ...
