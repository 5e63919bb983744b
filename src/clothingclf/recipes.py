"""Training recipes: every setting of a fit, named and validated.

:func:`~clothingclf.training.resolve_config` turns a recipe name and some overrides into a
:class:`~clothingclf.training.TrainConfig`, the frozen, JSON-able set of settings that
:func:`~clothingclf.training.train_model` follows and that travels in checkpoints and model
files. :data:`RECIPES` holds the named recipes (the other names are re-exported by, and
documented under, :mod:`clothingclf.training`):

* ``"seed"``: the original study exactly.
* ``"fast"``: two networks, one per view of the photos, averaged: higher accuracy than the
  study with 40 % of its image-passes.

``docs/performance.rst`` gives the measurements behind each choice of ``"fast"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

from .backbones import ASPECT_RANGE, _valid_aspect
from .exceptions import InvalidParameterError

__all__ = ["RECIPES", "RECIPE_BACKBONES", "TrainConfig", "resolve_config"]

RecipeName = Literal["seed", "fast"]

#: The backbone each recipe was measured with, used when none is given. The study's
#: ResNet-18 for ``"seed"``, EfficientNet-Lite0 (ImageNet weights from pip) for ``"fast"``.
RECIPE_BACKBONES: dict[str, str] = {"seed": "resnet18", "fast": "efficientnet_lite0"}


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting, fully resolved (no ``None`` meaning "the recipe's value").

    Make one with :func:`resolve_config`; all fields are plain values, so
    :meth:`to_dict` is JSON-able and travels in checkpoints and model files.

    Attributes:
        recipe: The recipe the settings started from: ``"seed"`` or ``"fast"``.
        epochs: Epochs over all layers (the head-only stage is not counted).
        batch_size: Images per optimiser step, summed over all processes.
        image_size: Side of the square images the network sees in the last epochs, in
            validation and in prediction (progressive resizing starts smaller).
        aspect: Height / width of the images the network sees: 1 for the centre square of
            each photo (the study's view), 4/3 for the whole of a 3:4 portrait photo (see
            :class:`~clothingclf.backbones.Preprocessing`); ``image_size`` is their width.
        optimizer: ``"sgd"``, ``"nesterov"`` (SGD with Nesterov momentum) or ``"adamw"``.
        lr: Peak learning rate.
        momentum: SGD momentum (``beta1`` for AdamW).
        weight_decay: Decoupled for AdamW, L2 for SGD.
        class_weighted: Weight the loss by the inverse class frequency of the training set.
        keep: Which weights the classifier keeps: the ``"best"`` validation epoch or the
            ``"final"`` one (both are returned).
        seed: Seeds the data order and augmentations (epoch ``e`` uses ``seed`` and ``e``).
        progress: A progress bar (only when stderr is a terminal) and one summary line per
            epoch on stderr.
        early_stopping: Stop after this many epochs without a better validation accuracy;
            ``None`` never stops early.
        num_workers: Processes that decode images into the cache (0: decode in this one).
        schedule: Learning-rate schedule over all steps: ``"constant"``, ``"onecycle"``
            (linear warm-up, then cosine down to zero) or ``"cosine"`` (warm-up, cosine).
        warmup_epochs: Length of the warm-up, in epochs (may be fractional).
        label_smoothing: Label smoothing of the cross-entropy.
        head_epochs: Epochs of the first stage, the new head alone on cached features of the
            frozen backbone (0: no such stage).
        head_lr: Learning rate of the head-only stage (AdamW, cosine).
        size_schedule: Image sizes as fractions of the final size, spread evenly over the
            epochs (progressive resizing); empty: the final size throughout.
        min_scale: Smallest area fraction of the random resized crop.
        flip: Random horizontal flips in training.
        mixup_alpha: Mixup: each training image is blended with another of its batch by a
            share drawn from Beta(alpha, alpha), and so is its target (0: off).
        cutmix_alpha: CutMix: a box of another image of the batch is pasted in, its area
            share drawn the same way (0: off). With both set, each batch takes one of the
            two at random.
        color_jitter: Photometric augmentation of strength ``s``: each training image's
            brightness, contrast and saturation are scaled by factors drawn uniformly
            from ``[1 - s, 1 + s]`` (0: off).
        tta: Validate on each image and its mirror image, averaging the probabilities.
        val_every: Validate after every ``val_every``-th epoch and after the last one (1:
            after every epoch and after the head-only stage). Validation does not change
            the training; with ``keep="final"`` the epochs between only report it.
        extra_views: Further networks to train after the first, one per aspect (height /
            width) given, each with every other setting of this configuration (the same
            seed, epochs and schedule) on its own view of the photos, about as many pixels
            as the first network's (``image_size`` x ``image_size`` for a square: 4/3
            gives 192 x 256 px beside 224 x 224; see :meth:`views`). Prediction averages
            the class probabilities of all the networks: networks that see the photos
            differently make different mistakes, so their average is more accurate than
            either (``docs/performance.rst``). Empty: one network.
        freeze_bn: Keep BatchNorm layers on their pretrained running statistics while
            training all layers (their scale and shift still learn). With small batches
            and photos unlike ImageNet's, batch statistics shift every feature the new
            head was fitted on; frozen statistics keep them.
        ema_decay: Keep an exponential moving average of the weights while training all
            layers, updated after every step with this decay (0: off). Validation, the best
            epoch and the final weights then use the average; its effective decay ramps up
            as ``min(ema_decay, (1 + t) / (10 + t))`` over the first ``t`` steps, so the
            weights the head stage left behind fade out quickly.
        amp: ``"auto"`` uses bfloat16 autocast where the hardware computes in it natively
            (CUDA with bf16, CPUs with AVX-512 BF16 or AMX); ``"bf16"`` forces it;
            ``"off"`` computes in float32.
        channels_last: ``"auto"`` uses the channels-last memory layout on the CPU and
            on CUDA, where it was measured to win; ``"on"``/``"off"`` force it.
        compile: Run the model through :func:`torch.compile` (off by default: on a 2-core
            CPU compiling costs more than it saves in a run of minutes).
        reuse_memory: ``"auto"`` keeps the memory a training step frees on the process
            heap for the next step while training on the CPU, instead of glibc's default
            of unmapping large blocks on every free (until glibc's thresholds adapt, each
            step then pays page faults for its activations again: a one-epoch fit of Lite0
            ran 20 % faster with it), and hands it back to the system when training ends;
            ``"on"``/``"off"`` force it. Nothing changes where the C library is not glibc.
            It changes the process's ``malloc`` settings while the fit runs
            (``docs/performance.rst``, "Memory reuse"; the FAQ).
        cache_dir: Keep the decoded images in memory-mapped files in this folder instead of
            in memory (``None``: memory).
    """

    recipe: str
    epochs: int
    batch_size: int
    image_size: int
    aspect: float
    optimizer: Literal["sgd", "nesterov", "adamw"]
    lr: float
    momentum: float
    weight_decay: float
    class_weighted: bool
    keep: Literal["best", "final"]
    seed: int
    progress: bool
    early_stopping: int | None
    num_workers: int
    schedule: Literal["constant", "onecycle", "cosine"]
    warmup_epochs: float
    label_smoothing: float
    head_epochs: int
    head_lr: float
    size_schedule: tuple[float, ...]
    min_scale: float
    flip: bool
    mixup_alpha: float
    cutmix_alpha: float
    color_jitter: float
    tta: bool
    val_every: int
    extra_views: tuple[float, ...]
    freeze_bn: bool
    ema_decay: float
    amp: Literal["auto", "bf16", "off"]
    channels_last: Literal["auto", "on", "off"]
    compile: bool
    reuse_memory: Literal["auto", "on", "off"]
    cache_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (tuples become lists).

        Example:
            >>> resolve_config("seed").to_dict()["lr"]
            0.005
        """
        data = asdict(self)
        data["size_schedule"] = list(self.size_schedule)
        data["extra_views"] = list(self.extra_views)
        return data

    def views(self) -> list[tuple[int, float]]:
        """``(image_size, aspect)`` of every network a fit trains, the first one first.

        A network of ``extra_views`` gets the width that gives its view about the pixels of
        the first network's, rounded to a multiple of 16 (at least 16).

        Example:
            >>> resolve_config("fast").views()
            [(224, 1.0), (192, 1.3333333333333333)]
        """
        pixels = self.image_size * self.image_size * self.aspect
        return [(self.image_size, self.aspect)] + [
            (max(16, 16 * round(math.sqrt(pixels / aspect) / 16)), aspect)
            for aspect in self.extra_views
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output (fields it lacks take the recipe's value).

        Args:
            data: The dict.

        Returns:
            The configuration.

        Example:
            >>> config = resolve_config("fast", epochs=3)
            >>> TrainConfig.from_dict(config.to_dict()) == config
            True
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k != "recipe"}
        return resolve_config(cast(RecipeName, data.get("recipe", "seed")), **values)


_SEED_RECIPE: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 32,
    "image_size": 224,
    "aspect": 1.0,
    "optimizer": "sgd",
    "lr": 0.005,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "class_weighted": True,
    "keep": "best",
    "seed": 0,
    "progress": True,
    "early_stopping": None,
    "num_workers": min(4, os.cpu_count() or 1),
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "head_epochs": 0,
    "head_lr": 0.001,
    "size_schedule": (),
    "min_scale": 0.08,
    "flip": True,
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
    "color_jitter": 0.0,
    "tta": False,
    "val_every": 1,
    "extra_views": (),
    "freeze_bn": False,
    "ema_decay": 0.0,
    "amp": "auto",
    "channels_last": "auto",
    "compile": False,
    "reuse_memory": "auto",
    "cache_dir": None,
}

#: The named recipes, each a dict of every field of :class:`TrainConfig` except ``recipe``.
RECIPES: dict[str, dict[str, Any]] = {
    "seed": _SEED_RECIPE,
    "fast": {
        **_SEED_RECIPE,
        "epochs": 10,
        "batch_size": 32,
        "image_size": 224,
        "optimizer": "adamw",
        "lr": 0.0002,
        "momentum": 0.9,
        "weight_decay": 0.05,
        "schedule": "onecycle",
        "warmup_epochs": 0.5,
        "label_smoothing": 0.1,
        "head_epochs": 20,
        "head_lr": 0.002,
        "size_schedule": (0.71, 0.86, 1.0),
        "min_scale": 0.6,
        "class_weighted": False,
        "keep": "final",
        "tta": True,
        "freeze_bn": True,
        # Two networks of 10 epochs each: the centre square at 224 px and the whole photo
        # at 3:4, 192 x 256 px (about the same pixels); validated after epochs 5 and 10
        # only (keep is "final", so the other epochs' validation would only be reported).
        "extra_views": (4 / 3,),
        "val_every": 5,
    },
}

_CHOICES: dict[str, tuple[Any, ...]] = {
    "optimizer": ("sgd", "nesterov", "adamw"),
    "keep": ("best", "final"),
    "schedule": ("constant", "onecycle", "cosine"),
    "amp": ("auto", "bf16", "off"),
    "channels_last": ("auto", "on", "off"),
    "reuse_memory": ("auto", "on", "off"),
}


def resolve_config(recipe: RecipeName = "seed", **overrides: Any) -> TrainConfig:
    """The settings of a named recipe, with some of them replaced.

    Args:
        recipe: ``"seed"`` (the original study) or ``"fast"``.
        **overrides: Any field of :class:`TrainConfig`; ``None`` keeps the recipe's value
            (except for ``early_stopping`` and ``cache_dir``, where the recipe's value is
            ``None`` anyway).

    Returns:
        The resolved configuration.

    Raises:
        InvalidParameterError: Unknown recipe or field, or a value that cannot work; the
            message names the field, the value and what is allowed.

    Example:
        >>> config = resolve_config("seed", epochs=3, lr=None)
        >>> config.epochs, config.lr, config.optimizer
        (3, 0.005, 'sgd')
        >>> resolve_config("fast").schedule
        'onecycle'
    """
    if recipe not in RECIPES:
        raise InvalidParameterError(
            f"Unknown recipe {recipe!r}; expected one of {', '.join(map(repr, RECIPES))}."
        )
    values = dict(RECIPES[recipe])
    for name, value in overrides.items():
        if name not in values:
            raise InvalidParameterError(
                f"{name!r} is not a training setting; expected one of {', '.join(values)}."
            )
        if value is not None:
            values[name] = value
    values["size_schedule"] = _fractions(values["size_schedule"])
    values["extra_views"] = _views(values["extra_views"])
    _validate(values)
    return TrainConfig(recipe=recipe, **values)


def _fractions(value: Any) -> tuple[float, ...]:
    """``size_schedule`` as a tuple of floats (a list, from JSON, is accepted)."""
    numbers = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )
    if not numbers:
        raise InvalidParameterError(
            "size_schedule must be a sequence of fractions of the final image size, for "
            f"example (0.57, 0.71, 1.0); () for the final size throughout; found {value!r}."
        )
    return tuple(float(v) for v in value)


def _views(value: Any) -> tuple[float, ...]:
    """``extra_views`` as a tuple of floats (a list, from JSON, is accepted)."""
    expected = (
        f"a sequence of aspects (height / width, each from {ASPECT_RANGE[0]} to "
        f"{ASPECT_RANGE[1]}), for example (4 / 3,); () for one network"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise InvalidParameterError(f"extra_views must be {expected}; found {value!r}.")
    if not all(_valid_aspect(item) for item in value):
        raise InvalidParameterError(f"extra_views must be {expected}; found {value!r}.")
    return tuple(float(item) for item in value)


def _validate(values: dict[str, Any]) -> None:
    def bad(name: str, expected: str) -> InvalidParameterError:
        return InvalidParameterError(f"{name} must be {expected}; found {values[name]!r}.")

    for name, choices in _CHOICES.items():
        if values[name] not in choices:
            raise bad(name, "one of " + ", ".join(map(repr, choices)))
    for name in ("epochs", "batch_size"):
        if not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] < 1:
            raise bad(name, "a positive int")
    size = values["image_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 2048:
        raise bad("image_size", "an int from 8 to 2048")
    if not _valid_aspect(values["aspect"]):
        raise bad(
            "aspect", f"a number from {ASPECT_RANGE[0]} to {ASPECT_RANGE[1]} (height / width)"
        )
    values["aspect"] = float(values["aspect"])
    every = values["val_every"]
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise bad("val_every", "a positive int (1: validate after every epoch)")
    for name in ("head_epochs", "num_workers", "seed"):
        if not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] < 0:
            raise bad(name, "an int >= 0")
    for name in ("lr", "head_lr"):
        if not isinstance(values[name], (int, float)) or not 0 < values[name] < math.inf:
            raise bad(name, "a positive finite number")
    for name in ("momentum", "weight_decay", "warmup_epochs", "label_smoothing"):
        if not isinstance(values[name], (int, float)) or not 0 <= values[name] < math.inf:
            raise bad(name, "a finite number >= 0")
    if values["momentum"] >= 1 or values["label_smoothing"] >= 1:
        name = "momentum" if values["momentum"] >= 1 else "label_smoothing"
        raise bad(name, "below 1")
    # Strengths of optional features: a number (not a bool) from 0 (off) up to a bound.
    for name, bound, expected in (
        ("mixup_alpha", math.inf, "a finite number >= 0 (0: off)"),
        ("cutmix_alpha", math.inf, "a finite number >= 0 (0: off)"),
        ("color_jitter", 1.0, "a number in [0, 1) (0: off)"),
        ("ema_decay", 1.0, "a number in [0, 1) (0: no weight averaging)"),
    ):
        value = values[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not 0 <= value < bound:
            raise bad(name, expected)
    if not 0 < values["min_scale"] <= 1:
        raise bad("min_scale", "in (0, 1]")
    if any(not 0 < v <= 1 for v in values["size_schedule"]):
        raise bad("size_schedule", "fractions in (0, 1]")
    cache = values["cache_dir"]
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise bad("cache_dir", "None or a folder path")
    if isinstance(cache, os.PathLike):
        values["cache_dir"] = os.fspath(cache)
    stop = values["early_stopping"]
    if stop is not None and (not isinstance(stop, int) or isinstance(stop, bool) or stop < 1):
        raise bad("early_stopping", "None or a positive int (epochs without improvement)")
    for name in ("class_weighted", "progress", "flip", "tta", "freeze_bn", "compile"):
        if not isinstance(values[name], bool):
            raise bad(name, "True or False")
