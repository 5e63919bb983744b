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

import collections
import concurrent.futures
import contextlib
import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image
from typing_extensions import Unpack

from . import engines
from .backbones import ClothingNet, Preprocessing
from .calibration import Balance, Calibration
from .data import ClothingDataset, label_ids
from .exceptions import (
    ImageNotFoundError,
    InvalidImageError,
    InvalidParameterError,
    MissingColumnsError,
)
from .inference import (
    DEFAULT_BATCH_SIZE,
    InferenceOptions,
    Prediction,
    as_images,
    check_min_score,
    check_options,
)
from .probabilities import Runner, mirror_mean, to_inference_layout

if TYPE_CHECKING:
    from .checkpoint import FittedModel

__all__ = [
    "HasPredictor",
    "Predictor",
    "load_for_inference",
]

#: Decoding threads when ``decode_threads`` is not given (more do not help on 2-8 cores,
#: where the network, not the decoding, is the bottleneck).
_DEFAULT_DECODE_THREADS = min(4, os.cpu_count() or 1)


def load_for_inference(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    backbone: torch.nn.Module | None = None,
) -> tuple[FittedModel, torch.device]:
    """A model file's :class:`~clothingclf.checkpoint.FittedModel`, its networks on
    ``device`` in the inference layout, and that device: what ``ClothingClassifier.load``
    and :meth:`Predictor.from_file` start from.

    Raises:
        InvalidParameterError: ``device`` names no device here (checked before the file:
            a bad device is the caller's, not the file's).
        ModelFileError: What :func:`~clothingclf.checkpoint.read_fitted_model` raises.
    """
    from .checkpoint import read_fitted_model
    from .devices import resolve_device

    resolved = resolve_device(device)
    fitted = read_fitted_model(path, backbone=backbone)
    for network, _ in fitted.networks:
        to_inference_layout(network, resolved)
    return fitted, resolved


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


#: What decoding one item gives: its canvases (one per network), or why it cannot be read.
_Decoded = tuple[tuple[torch.Tensor, ...], int] | InvalidImageError | ImageNotFoundError


def _decode_or_error(dataset: ClothingDataset, index: int) -> _Decoded:
    try:
        return dataset[index]
    except (InvalidImageError, ImageNotFoundError) as error:
        return error


def _decoded_batches(
    dataset: ClothingDataset, batch_size: int, threads: int
) -> Iterator[list[_Decoded]]:
    """The dataset decoded, a batch at a time, in order; an item that cannot be read is
    its error. With ``threads`` > 0 a thread pool decodes up to two batches ahead of the
    one being run (Pillow and the network both release the GIL), so decoding overlaps the
    network's work."""
    starts = range(0, len(dataset), batch_size)
    if threads == 0:
        for start in starts:
            stop = min(start + batch_size, len(dataset))
            yield [_decode_or_error(dataset, i) for i in range(start, stop)]
        return
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="clothingclf-decode")
    pending: collections.deque[list[concurrent.futures.Future[_Decoded]]] = collections.deque()
    try:
        for start in starts:
            stop = min(start + batch_size, len(dataset))
            pending.append([pool.submit(_decode_or_error, dataset, i) for i in range(start, stop)])
            if len(pending) > 2:
                yield [future.result() for future in pending.popleft()]
        while pending:
            yield [future.result() for future in pending.popleft()]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
        calibration: What turns the averaged probabilities into the returned ones
            (temperature scaling fitted on the validation split; identity by default).
        precision_checks: What each reduced precision was measured to cost
            (``ClothingClassifier.check_precision``), by which ``"auto"`` may use it.
    """

    networks: tuple[tuple[ClothingNet, Preprocessing], ...]
    classes: tuple[str, ...]
    device: torch.device
    tta: bool
    calibration: Calibration = field(default_factory=Calibration)
    precision_checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "auto"
    ) -> Predictor:
        """The predictor of a model file, without the estimator around it: what
        ``ClothingClassifier.load(path).predictor()`` gives, for a process that only labels
        photos (``clothingclf predict`` starts faster so).

        Raises:
            ModelFileError: What :meth:`ClothingClassifier.load
                <clothingclf.ClothingClassifier.load>` raises for the file.
        """
        return cls.from_fitted(*load_for_inference(path, device=device))

    @classmethod
    def from_fitted(cls, fitted: FittedModel, device: torch.device) -> Predictor:
        """The predictor of a :class:`~clothingclf.checkpoint.FittedModel` whose networks
        are on ``device`` in the inference layout (what a fit or a model file gives)."""
        return cls(
            networks=tuple(fitted.networks),
            classes=tuple(fitted.classes),
            device=device,
            tta=fitted.config.tta,
            calibration=fitted.calibration,
            precision_checks=fitted.precision_checks,
        )

    def calibration_at(self, balance: Balance | None) -> Calibration:
        """The calibration ``probabilities`` applies at ``balance`` (``None``: the
        model's own; see :class:`~clothingclf.inference.InferenceOptions`).

        Raises:
            InvalidParameterError: Not a balance, or a model trained without
                ``logit_adjustment``.
        """
        return self.calibration if balance is None else self.calibration.at(balance)

    def probabilities(self, x: Any, **options: Unpack[InferenceOptions]) -> np.ndarray:
        """Class probabilities of the images in ``x`` (see ``predict_proba``).

        Args:
            x: A path, bytes, a Pillow image, an array, a tensor, a list of these, or a
                table with a ``path`` column.
            **options: The :class:`~clothingclf.inference.InferenceOptions`: ``tta``,
                ``batch_size``, ``engine``, ``precision``, ``decode_threads``,
                ``calibrated``, ``balance``.

        Returns:
            ``(number of images, number of classes)`` float64 probabilities.

        Raises:
            InvalidParameterError: An unknown option or a value it does not take.
            MissingDependencyError: ``engine="onnxruntime"`` without the onnx extra.
            ImageNotFoundError: A path does not exist.
            InvalidImageError: An input is not a decodable image.
        """
        settings = check_options(options)
        settings["calibration"] = self.calibration_at(settings["balance"])
        items, _ = as_images(x)
        if not items:
            self.engine(settings["engine"], settings["precision"])  # checked all the same
            return np.zeros((0, len(self.classes)), dtype=np.float64)
        rows = []
        choice = self.engine(settings["engine"], settings["precision"], images=len(items))
        with contextlib.closing(self._stream(items, settings, choice)) as outcomes:
            for _, outcome in outcomes:  # closing: the decoding threads stop on an error
                if isinstance(outcome, Exception):
                    raise outcome
                rows.append(outcome)
        return np.stack(rows)

    def stream(
        self, items: Sequence[Any], **options: Unpack[InferenceOptions]
    ) -> Iterator[tuple[int, np.ndarray | InvalidImageError | ImageNotFoundError]]:
        """Label a sequence of images of any length, yielding as each batch is done.

        Yields ``(index, probabilities)`` for each image in order, or ``(index, error)``
        for one that cannot be read (it is skipped, the others are still labelled): what
        ``clothingclf predict`` writes to its CSV or JSON Lines file as it goes.

        Raises:
            InvalidParameterError: An unknown option or a value it does not take.
        """
        settings = check_options(options)
        settings["calibration"] = self.calibration_at(settings["balance"])
        items = list(items)
        choice = self.engine(settings["engine"], settings["precision"], images=len(items))
        return self._stream(items, settings, choice)

    def _stream(
        self, items: Sequence[Any], settings: dict[str, Any], choice: engines.EngineChoice
    ) -> Generator[tuple[int, np.ndarray | InvalidImageError | ImageNotFoundError], None, None]:
        mirror = self.tta if settings["tta"] is None else settings["tta"]
        if not items:
            return
        models = [model for model, _ in self.networks]
        for model in models:
            if model.training:
                model.eval()
        run = engines.runner(
            choice,
            models,
            [prep.input_shape for _, prep in self.networks],
            self.device,
            fallback=settings["engine"] == "auto",
        )
        dataset = _inputs(items, [prep for _, prep in self.networks])
        threads = settings["decode_threads"]
        if threads is None:
            threads = 0 if len(items) == 1 else min(_DEFAULT_DECODE_THREADS, len(items))
        batches = _decoded_batches(dataset, settings["batch_size"] or DEFAULT_BATCH_SIZE, threads)
        start = 0
        for batch in batches:
            good = [item for item in batch if not isinstance(item, Exception)]
            rows: Iterator[np.ndarray] = iter(())
            if good:
                canvases = [torch.stack(views) for views in zip(*(c for c, _ in good), strict=True)]
                with torch.inference_mode():
                    mean = self._mean(run, canvases, mirror)
                if settings["calibrated"]:
                    mean = settings["calibration"].apply(mean)
                rows = iter(mean)
            for offset, item in enumerate(batch):
                yield start + offset, item if isinstance(item, Exception) else next(rows)
            start += len(batch)

    def engine(
        self, engine: str = "auto", precision: str = "auto", *, images: int | None = None
    ) -> engines.EngineChoice:
        """What ``engine`` and ``precision`` resolve to for these networks on this machine,
        for a call of ``images`` images (``None``: many): what ``"auto"`` picks, and why.

        With both the onnx and the openvino extras, the first ``"auto"`` call that would
        run a compiled engine builds both graphs and times them (a few seconds, once per
        model and process: :func:`~clothingclf.engines.timing.fastest_engine`).

        Raises:
            InvalidParameterError: An unknown value, or a pair that cannot run here.
            MissingDependencyError: A compiled engine without its extra.
        """
        models = [model for model, _ in self.networks]
        shapes = [prep.input_shape for _, prep in self.networks]
        # only "auto" asks whether a graph exists (a walk over the weights, ~1 ms)
        built = engine == "auto" and engines.has_onnx_graph(models, shapes)
        choice = engines.choose_engine(
            engine, precision, device=self.device, images=images, built=built
        )
        if engine == "auto" and precision == "auto" and choice.engine != "torch":
            timing = engines.fastest_engine(models, shapes, checks=self.precision_checks)
            choice = engines.choose_engine(
                engine, precision, device=self.device, images=images, built=built, timing=timing
            )
        return choice

    def network_inputs(self, items: Sequence[Any], limit: int) -> list[list[np.ndarray]]:
        """For each of the first ``limit`` readable images of ``items``, the float32
        ``1 x 3 x H x W`` input of every network (the calibration data of int8
        quantisation); unreadable images are skipped."""
        dataset = _inputs(list(items), [prep for _, prep in self.networks])
        inputs = []
        for index in range(len(dataset)):
            decoded = _decode_or_error(dataset, index)
            if isinstance(decoded, Exception):
                continue
            views = zip(self.networks, decoded[0], strict=True)
            inputs.append([prep.network_input(view[None]).numpy() for (_, prep), view in views])
            if len(inputs) == limit:
                break
        return inputs

    def _mean(self, run: Runner, canvases: Sequence[torch.Tensor], tta: bool) -> np.ndarray:
        """The mean over the networks of each one's probabilities for its own view
        (``canvases``: uint8 batches, one per network), with its mirror image's if ``tta``."""
        inputs = [
            prep.network_input(canvas.to(self.device))
            for (_, prep), canvas in zip(self.networks, canvases, strict=True)
        ]
        mean: np.ndarray = mirror_mean(run, inputs, tta=tta).cpu().numpy()
        return mean

    def top(
        self,
        x: Any,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> list[Prediction]:
        """A :class:`~clothingclf.Prediction` (label, probability, the ``k`` most probable)
        per image; with ``min_score``, the label is ``None`` where the top probability is
        below it.

        Raises:
            InvalidParameterError: ``k`` is not a positive int, ``min_score`` not a number
                from 0 to 1 (or see :meth:`probabilities`).
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidParameterError(f"k must be a positive int; found {k!r}.")
        check_min_score(min_score)
        rows = self.probabilities(x, **options)
        return [self.prediction(row, k, min_score=min_score) for row in rows]

    def prediction(
        self, probabilities: np.ndarray, k: int = 3, *, min_score: float | None = None
    ) -> Prediction:
        """The :class:`~clothingclf.Prediction` of one image's probabilities (``k`` capped at the
        number of classes; label ``None`` below ``min_score``)."""
        order = np.argsort(-probabilities, kind="stable")[: min(k, len(self.classes))]
        top = tuple((self.classes[i], float(probabilities[i])) for i in order)
        sure = min_score is None or top[0][1] >= min_score
        return Prediction(label=top[0][0] if sure else None, score=top[0][1], top_k=top)

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
        return label_ids(
            table["label"],
            self.classes,
            "{what} has labels the model was not trained on: {unknown} (model classes: "
            "{classes}). Remove those rows or train on them.",
            what=what,
        )

    def predictor(self) -> Predictor:
        """Itself: a Predictor is accepted wherever a fitted classifier is."""
        return self


class HasPredictor(Protocol):
    """Anything that gives a :class:`Predictor`: a fitted
    :class:`~clothingclf.ClothingClassifier`, or a :class:`Predictor` itself."""

    def predictor(self) -> Predictor: ...
