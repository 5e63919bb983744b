"""What a model is trained with: :class:`TrainConfig`, every field declared with
``setting(...)``, the named recipes made from the declarations, and :func:`resolve_config`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from .._kinds import IMAGE_SIDES, MAX_LOGIT_ADJUSTMENT, Choice, Flag, Int, Number, Numbers
from ..backbones import ASPECT_RANGE, valid_aspect
from ..exceptions import InvalidParameterError
from .declaration import (
    AMOUNT,
    ASPECT_RANGE_TEXT,
    COUNT,
    FRACTION,
    OFF,
    OFF_SINCE_0_2,
    POSITIVE,
    declared_settings,
    resolved_values,
    setting,
)

__all__ = ["RECIPE_NAMES", "TrainConfig", "resolve_config"]

RecipeName = Literal["seed", "fast"]
RECIPE_NAMES: tuple[RecipeName, ...] = ("seed", "fast")


@dataclass(frozen=True)
class TrainConfig:
    """What a model is trained with, fully resolved (no ``None`` meaning "the recipe's").

    Make one with :func:`resolve_config`. Every field is a plain value, so :meth:`to_dict`
    is JSON-able; it is saved in model files and checkpoints. The settings table of the
    documentation lists every field with its meaning, bounds and recipe values.
    """

    recipe: str
    epochs: int = setting(
        "epochs over all layers (the head-only stage not counted)",
        POSITIVE,
        seed=50,
        fast=10,
        resume=True,
    )
    batch_size: int = setting(
        "images per optimiser step, summed over all processes",
        POSITIVE,
        seed=32,
        fast=32,
        resume=True,
    )
    image_size: int = setting(
        "side (width, with aspect) of the images the network sees at the end of training, "
        "in validation and in prediction",
        Int("an int from {} to {}".format(*IMAGE_SIDES), low=IMAGE_SIDES[0], high=IMAGE_SIDES[1]),
        seed=224,
        fast=224,
        resume=True,
        added="0.2",  # before, the classifier's parameter: older files do not say it here
    )
    aspect: float = setting(
        "height / width of the images the network sees: 1 the centre square of each photo, "
        "4/3 the whole of a 3:4 portrait photo",
        Number(
            f"a number {ASPECT_RANGE_TEXT} (height / width)",
            low=ASPECT_RANGE[0],
            high=ASPECT_RANGE[1],
            high_open=False,
        ),
        seed=1.0,
        fast=1.0,
        resume=True,
        added="0.2",
        implied=1.0,
    )
    optimizer: Literal["sgd", "nesterov", "adamw"] = setting(
        "sgd, nesterov (SGD with Nesterov momentum) or adamw",
        Choice("one of 'sgd', 'nesterov', 'adamw'", choices=("sgd", "nesterov", "adamw")),
        seed="sgd",
        fast="adamw",
        resume=True,
    )
    lr: float = setting(
        "peak learning rate",
        Number("a positive finite number", low_open=True),
        seed=0.005,
        fast=0.0002,
        resume=True,
    )
    momentum: float = setting(
        "SGD momentum (beta1 for AdamW)", FRACTION, seed=0.9, fast=0.9, resume=True
    )
    weight_decay: float = setting(
        "decoupled for AdamW, L2 for SGD", AMOUNT, seed=0.0, fast=0.05, resume=True
    )
    class_weighted: bool = setting(
        "weight the loss by the inverse class frequency of the training set",
        Flag("True or False"),
        seed=True,
        fast=False,
        resume=True,
    )
    keep: Literal["best", "final"] = setting(
        "which weights the model ends with: the best validation epoch's or the final ones",
        Choice("one of 'best', 'final'", choices=("best", "final")),
        seed="best",
        fast="final",
    )
    seed: int = setting(
        "seeds the new head, the data order and the augmentations",
        COUNT,
        seed=0,
        fast=0,
        resume=True,
    )
    early_stopping: int | None = setting(
        "stop after this many epochs without a better validation accuracy (None: never)",
        Int("None or a positive int (epochs without improvement)", low=1, optional=True),
        seed=None,
        fast=None,
    )
    schedule: Literal["constant", "onecycle", "cosine"] = setting(
        "learning-rate schedule: constant, onecycle (linear warm-up, cosine to zero) or "
        "cosine (warm-up, cosine)",
        Choice(
            "one of 'constant', 'onecycle', 'cosine'", choices=("constant", "onecycle", "cosine")
        ),
        seed="constant",
        fast="onecycle",
        resume=True,
    )
    warmup_epochs: float = setting(
        "length of the warm-up, in epochs (may be fractional)",
        AMOUNT,
        seed=0.0,
        fast=0.5,
        resume=True,
    )
    label_smoothing: float = setting(
        "label smoothing of the cross-entropy", FRACTION, seed=0.0, fast=0.1, resume=True
    )
    head_epochs: int = setting(
        "epochs of a first stage that trains the new head alone on cached features of the "
        "frozen backbone (0: none)",
        COUNT,
        seed=0,
        fast=20,
        resume=True,
    )
    head_lr: float = setting(
        "learning rate of the head-only stage (AdamW, cosine)",
        Number("a positive finite number", low_open=True),
        seed=0.001,
        fast=0.002,
    )
    size_schedule: tuple[float, ...] = setting(
        "image sizes as fractions of the final size, spread evenly over the epochs "
        "(progressive resizing); empty: the final size throughout",
        Numbers(
            "fractions in (0, 1], for example (0.57, 0.71, 1.0); () for the final size throughout",
            item=lambda v: 0 < v <= 1,
        ),
        seed=(),
        fast=(0.71, 0.86, 1.0),
        resume=True,
    )
    min_scale: float = setting(
        "smallest area fraction of the random resized crop",
        Number("a number in (0, 1]", low_open=True, high=1.0, high_open=False),
        seed=0.08,
        fast=0.6,
    )
    flip: bool = setting(
        "random horizontal flips in training", Flag("True or False"), seed=True, fast=True
    )
    mixup_alpha: float = setting(
        "Mixup: each training image blended with another of its batch by a Beta(a, a) "
        "share, and its target too" + OFF,
        Number("a finite number >= 0" + OFF),
        **OFF_SINCE_0_2,
    )
    cutmix_alpha: float = setting(
        "CutMix: a box of another image of the batch pasted in, its area share drawn the "
        "same way (with Mixup too, each batch takes one of the two)" + OFF,
        Number("a finite number >= 0" + OFF),
        **OFF_SINCE_0_2,
    )
    color_jitter: float = setting(
        "brightness, contrast and saturation of each training image scaled by factors in "
        "[1 - s, 1 + s]" + OFF,
        Number("a number in [0, 1)" + OFF, high=1.0),
        **OFF_SINCE_0_2,
    )
    tta: bool = setting(
        "test-time augmentation: validate on each image and its mirror image, averaging "
        "the probabilities; predict's default",
        Flag("True or False"),
        seed=False,
        fast=True,
    )
    val_every: int = setting(
        "validate after every n-th epoch and after the last one",
        Int("a positive int (1: validate after every epoch)", low=1),
        seed=1,
        fast=5,
        added="0.2",
        implied=1,
    )
    extra_views: tuple[float, ...] = setting(
        "aspects of further networks, each trained with these settings on its own view of "
        "the photos at about the first one's pixels; prediction averages their "
        "probabilities (empty: one network)",
        Numbers(
            f"a sequence of aspects (height / width, each {ASPECT_RANGE_TEXT}), for example "
            "(4 / 3,); () for one network",
            item=valid_aspect,
        ),
        seed=(),
        fast=(4 / 3,),
        added="0.2",
        implied=(),
    )
    freeze_bn: bool = setting(
        "keep BatchNorm layers on their pretrained statistics while training all layers",
        Flag("True or False"),
        seed=False,
        fast=True,
        added="0.2",  # files without it have always been read with their recipe's value
    )
    ema_decay: float = setting(
        "keep an exponential moving average of the weights with this decay per step, used "
        "for validation and the final weights (0: off)",
        Number("a number in [0, 1) (0: no weight averaging)", high=1.0),
        **OFF_SINCE_0_2,
    )
    distill_weight: float = setting(
        "with fit(teacher=...): the share of the loss that matches the teacher's "
        "probabilities (the rest is the cross-entropy with the labels)",
        Number("a number from 0 to 1", high=1.0, high_open=False),
        seed=0.7,
        fast=0.7,
        resume=True,
        added="0.3",
        implied=0.7,  # used only with a teacher, which no fit before it had
    )
    distill_temperature: float = setting(
        "with fit(teacher=...): the temperature that softens the teacher's and the "
        "network's probabilities in the distillation loss",
        Number("a positive finite number", low_open=True),
        seed=2.0,
        fast=2.0,
        resume=True,
        added="0.3",
        implied=2.0,  # used only with a teacher, as distill_weight
    )
    logit_adjustment: float = setting(
        "train on logits plus this times the log of the training set's class frequencies "
        "(the logit-adjusted loss): the network learns scores free of the class prior, "
        "and prediction adds the prior back by the model's balance" + OFF,
        Number(
            f"a number from 0 to {MAX_LOGIT_ADJUSTMENT:g}" + OFF,
            high=MAX_LOGIT_ADJUSTMENT,
            high_open=False,
        ),
        seed=0.0,
        fast=0.0,
        resume=True,
        added="0.3",
        implied=0.0,
    )
    head_weight_decay: float = setting(
        "AdamW weight decay of the head-only stage",
        AMOUNT,
        seed=1e-4,
        fast=1e-4,
        resume=True,
        added="0.3",
        implied=1e-4,
    )
    head_batch_size: int = setting(
        "cached feature vectors per optimiser step of the head-only stage",
        POSITIVE,
        seed=64,
        fast=64,
        resume=True,
        added="0.3",
        implied=64,
    )

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
        """Rebuild from :meth:`to_dict` output; fields it lacks take the recipe's value and
        fields it has that are no training setting (run options that files of 0.2 kept)
        are ignored.

        Example:
            >>> config = resolve_config("fast", epochs=3)
            >>> TrainConfig.from_dict(config.to_dict()) == config
            True
        """
        known = {s.name for s in declared_settings(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return resolve_config(cast(RecipeName, data.get("recipe", "seed")), **values)


def resolve_config(recipe: RecipeName = "seed", **overrides: Any) -> TrainConfig:
    """The settings of a named recipe, with some of them replaced.

    Args:
        recipe: ``"seed"`` (the original study) or ``"fast"``.
        **overrides: Any field of :class:`TrainConfig`; ``None`` keeps the recipe's value.

    Raises:
        InvalidParameterError: Unknown recipe or field, or a value that cannot work; the
            message names the field, the value and what is allowed.

    Example:
        >>> config = resolve_config("seed", epochs=3, lr=None)
        >>> config.epochs, config.lr, config.optimizer
        (3, 0.005, 'sgd')
    """
    if recipe not in RECIPE_NAMES:
        raise InvalidParameterError(
            f"Unknown recipe {recipe!r}; expected one of {', '.join(map(repr, RECIPE_NAMES))}."
        )
    declared = list(declared_settings(TrainConfig))
    base = {s.name: s.defaults[recipe] for s in declared}  # the recipe (RECIPES)
    values = resolved_values(declared, base, overrides, "a training setting")
    return TrainConfig(recipe=recipe, **values)
