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
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

import numpy as np
import pandas as pd
import torch
from PIL import Image
from typing_extensions import Unpack

from . import engines
from ._kinds import is_real
from .backbones import ClothingNet, Preprocessing
from .calibration import Balance, Calibration
from .data import ClothingDataset
from .exceptions import (
    DatasetError,
    ImageNotFoundError,
    InvalidImageError,
    InvalidParameterError,
    MissingColumnsError,
    did_you_mean,
)

if TYPE_CHECKING:
    from .checkpoint import FittedModel

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "INFERENCE_LAYOUT",
    "HasPredictor",
    "InferenceOptions",
    "Prediction",
    "Predictor",
    "as_images",
    "load_for_inference",
    "to_inference_layout",
]

#: Images per forward pass when ``predict`` is given several and no ``batch_size``.
DEFAULT_BATCH_SIZE = 32
#: Decoding threads when ``decode_threads`` is not given (more do not help on 2-8 cores,
#: where the network, not the decoding, is the bottleneck).
_DEFAULT_DECODE_THREADS = min(4, os.cpu_count() or 1)

#: Prediction runs in float32 in the channels-last layout, faster than the default layout
#: on the CPU (oneDNN) and on GPUs (cuDNN) with probabilities equal to ~1e-7. Fitted and
#: loaded models both use it, so save -> load gives identical probabilities.
INFERENCE_LAYOUT = torch.channels_last

_SINGLE_TYPES = (str, os.PathLike, bytes, bytearray, Image.Image)


def to_inference_layout(model: ClothingNet, device: torch.device) -> None:
    """Move ``model`` to ``device`` in the layout prediction uses, in evaluation mode."""
    model.to(device)
    model.to(memory_format=INFERENCE_LAYOUT).eval()


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
    :meth:`Predictor.probabilities`; each may be left out.

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
    """Raise :class:`InvalidParameterError` unless ``min_score`` is ``None`` or a number
    from 0 to 1."""
    if min_score is None:
        return
    if not is_real(min_score):
        raise InvalidParameterError(
            f"min_score must be a number from 0 to 1 or None; found {min_score!r}."
        )
    if not 0.0 <= float(min_score) <= 1.0:
        raise InvalidParameterError(f"min_score must be from 0 to 1; found {min_score!r}.")


def _count(value: Any, *, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
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
    if settings["batch_size"] is not None and not _count(settings["batch_size"], low=1):
        raise InvalidParameterError(
            f"batch_size must be a positive int; found {settings['batch_size']!r}."
        )
    threads = settings["decode_threads"]
    if threads is not None and not _count(threads, low=0):
        raise InvalidParameterError(
            f"decode_threads must be an int >= 0 (0: decode in this thread); found {threads!r}."
        )
    return settings


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
        fitted, resolved = load_for_inference(path, device=device)
        return cls(
            networks=tuple(fitted.networks),
            classes=tuple(fitted.classes),
            device=resolved,
            tta=fitted.config.tta,
            calibration=fitted.calibration,
            precision_checks=fitted.precision_checks,
        )

    def calibration_at(self, balance: Balance | None) -> Calibration:
        """The calibration ``probabilities`` applies at ``balance`` (``None``: the
        model's own; see :class:`InferenceOptions`).

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
            **options: The :class:`InferenceOptions`: ``tta``, ``batch_size``, ``engine``,
                ``precision``, ``decode_threads``, ``calibrated``, ``balance``.

        Returns:
            ``(number of images, number of classes)`` float64 probabilities.

        Raises:
            InvalidParameterError: An unknown option or a value it does not take.
            MissingDependencyError: ``engine="onnxruntime"`` without the onnx extra.
            ImageNotFoundError: A path does not exist.
            InvalidImageError: An input is not a decodable image.
        """
        settings = _check_options(options)
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
        settings = _check_options(options)
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
        model and process: :func:`~clothingclf.engines.fastest_engine`).

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

    def _mean(self, run: engines.Runner, canvases: Sequence[torch.Tensor], tta: bool) -> np.ndarray:
        """The mean over the networks of each one's probabilities for its own view
        (``canvases``: uint8 batches, one per network), with its mirror image's if ``tta``."""
        inputs = [
            prep.network_input(canvas.to(self.device))
            for (_, prep), canvas in zip(self.networks, canvases, strict=True)
        ]
        if tta:  # the photos and their mirror images in one run: one call's overhead, not two
            both = run([torch.cat([batch, batch.flip(-1)]) for batch in inputs])
            count = len(inputs[0])
            probabilities = (both[:count] + both[count:]) / 2
        else:
            probabilities = run(inputs)
        mean: np.ndarray = probabilities.cpu().numpy()
        return mean

    def top(
        self,
        x: Any,
        k: int = 3,
        *,
        min_score: float | None = None,
        **options: Unpack[InferenceOptions],
    ) -> list[Prediction]:
        """A :class:`Prediction` (label, probability, the ``k`` most probable) per image;
        with ``min_score``, the label is ``None`` where the top probability is below it.

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
        """The :class:`Prediction` of one image's probabilities (``k`` capped at the
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
