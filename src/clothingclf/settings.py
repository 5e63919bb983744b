"""Every setting of a fit, declared once: its type, default per recipe, bounds and help.

Two groups, kept apart:

* :class:`TrainConfig`: what the model learns with (epochs, learning rate, augmentation,
  views, ...). It is saved in model files and training checkpoints, and a resumed fit must
  keep it. :func:`resolve_config` fills it from a recipe (:data:`RECIPES`) and overrides.
* :class:`RunOptions`: how this run executes (decoding workers, progress, the image cache,
  precision, compilation, memory reuse). Never saved; a resumed run may change it.

Each field is declared with ``setting(...)`` or ``option(...)``, and everything else is
derived from that declaration: the recipes, the validation and its messages, the
:class:`~clothingclf.ClothingClassifier` parameters, the ``clothingclf train`` flags and
the settings table of the docs (:func:`settings_table`). Adding a setting means adding
one field here and using it where it acts.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, cast

from ._kinds import BAD, IMAGE_SIDES, Choice, Flag, Folder, Int, Kind, Number, Numbers
from .backbones import ASPECT_RANGE, valid_aspect
from .exceptions import InvalidParameterError

__all__ = [
    "RECIPES",
    "RECIPE_BACKBONES",
    "RECIPE_NAMES",
    "RunOptions",
    "Setting",
    "TrainConfig",
    "all_settings",
    "resolve_config",
    "resolve_options",
    "settings_table",
]

RecipeName = Literal["seed", "fast"]
RECIPE_NAMES: tuple[RecipeName, ...] = ("seed", "fast")

#: The backbone each recipe was measured with, used when none is given (the study's
#: ResNet-18 for ``"seed"``, EfficientNet-Lite0 with ImageNet weights from pip for ``"fast"``).
RECIPE_BACKBONES: dict[str, str] = {"seed": "resnet18", "fast": "efficientnet_lite0"}

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Setting:
    """One setting: its help (one sentence), kind, default per recipe and CLI flag."""

    name: str
    help: str
    kind: Kind
    defaults: Mapping[str, Any]
    runtime: bool
    flag: str

    def check(self, value: Any) -> Any:
        """``value`` normalised (a list of numbers to a tuple, a path to a str).

        Raises:
            InvalidParameterError: The value cannot work; the message names the setting,
                the value and what is allowed.
        """
        checked = self.kind.check(value)
        if checked is BAD:
            raise InvalidParameterError(
                f"{self.name} must be {self.kind.expected}; found {value!r}."
            )
        return checked

    def add_flag(self, parser: argparse.ArgumentParser) -> None:
        """Add this setting's flag to a parser (default ``None``: the recipe's value)."""
        values = {recipe: _shown(value) for recipe, value in self.defaults.items()}
        same = len(set(values.values())) == 1
        shown = (
            next(iter(values.values()))
            if same
            else ", ".join(f"{recipe} {value}" for recipe, value in values.items())
        )
        parser.add_argument(
            self.flag,
            dest=self.name,
            default=None,
            help=f"{self.help} ({shown})",
            **self.kind.cli(),
        )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(f"{v:.4g}" for v in value) or "none"
    return "off" if value is None else str(value)


def setting(help: str, kind: Kind, *, seed: Any, fast: Any, flag: str | None = None) -> Any:
    """Declare a field of :class:`TrainConfig`: learned with, saved, checked on resume."""
    return field(metadata={"setting": (help, kind, {"seed": seed, "fast": fast}, False, flag)})


def option(help: str, kind: Kind, *, default: Any, flag: str | None = None) -> Any:
    """Declare a field of :class:`RunOptions`: how a run executes, never saved."""
    declared = (help, kind, {"*": default}, True, flag)
    return field(default=default, metadata={"setting": declared})


def _declared(cls: type) -> Iterator[Setting]:
    for item in fields(cls):
        if "setting" in item.metadata:
            help, kind, defaults, runtime, flag = item.metadata["setting"]
            flag = flag or "--" + item.name.replace("_", "-")
            yield Setting(item.name, help, kind, defaults, runtime, flag)


_POSITIVE = Int("a positive int", low=1)
_COUNT = Int("an int >= 0", low=0)
_FRACTION = Number("a number in [0, 1)", high=1.0)
_AMOUNT = Number("a finite number >= 0")
_ASPECT = f"from {ASPECT_RANGE[0]} to {ASPECT_RANGE[1]}"
_OFF = " (0: off)"


@dataclass(frozen=True)
class TrainConfig:
    """What a model is trained with, fully resolved (no ``None`` meaning "the recipe's").

    Make one with :func:`resolve_config`. Every field is a plain value, so :meth:`to_dict`
    is JSON-able; it is saved in model files and checkpoints. The settings table of the
    documentation lists every field with its meaning, bounds and recipe values.
    """

    recipe: str
    epochs: int = setting(
        "epochs over all layers (the head-only stage not counted)", _POSITIVE, seed=50, fast=10
    )
    batch_size: int = setting(
        "images per optimiser step, summed over all processes", _POSITIVE, seed=32, fast=32
    )
    image_size: int = setting(
        "side (width, with aspect) of the images the network sees at the end of training, "
        "in validation and in prediction",
        Int("an int from {} to {}".format(*IMAGE_SIDES), low=IMAGE_SIDES[0], high=IMAGE_SIDES[1]),
        seed=224,
        fast=224,
    )
    aspect: float = setting(
        "height / width of the images the network sees: 1 the centre square of each photo, "
        "4/3 the whole of a 3:4 portrait photo",
        Number(
            f"a number {_ASPECT} (height / width)",
            low=ASPECT_RANGE[0],
            high=ASPECT_RANGE[1],
            high_open=False,
        ),
        seed=1.0,
        fast=1.0,
    )
    optimizer: Literal["sgd", "nesterov", "adamw"] = setting(
        "sgd, nesterov (SGD with Nesterov momentum) or adamw",
        Choice("one of 'sgd', 'nesterov', 'adamw'", choices=("sgd", "nesterov", "adamw")),
        seed="sgd",
        fast="adamw",
    )
    lr: float = setting(
        "peak learning rate",
        Number("a positive finite number", low_open=True),
        seed=0.005,
        fast=0.0002,
    )
    momentum: float = setting("SGD momentum (beta1 for AdamW)", _FRACTION, seed=0.9, fast=0.9)
    weight_decay: float = setting("decoupled for AdamW, L2 for SGD", _AMOUNT, seed=0.0, fast=0.05)
    class_weighted: bool = setting(
        "weight the loss by the inverse class frequency of the training set",
        Flag("True or False"),
        seed=True,
        fast=False,
    )
    keep: Literal["best", "final"] = setting(
        "which weights the model ends with: the best validation epoch's or the final ones",
        Choice("one of 'best', 'final'", choices=("best", "final")),
        seed="best",
        fast="final",
    )
    seed: int = setting(
        "seeds the new head, the data order and the augmentations", _COUNT, seed=0, fast=0
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
    )
    warmup_epochs: float = setting(
        "length of the warm-up, in epochs (may be fractional)", _AMOUNT, seed=0.0, fast=0.5
    )
    label_smoothing: float = setting(
        "label smoothing of the cross-entropy", _FRACTION, seed=0.0, fast=0.1
    )
    head_epochs: int = setting(
        "epochs of a first stage that trains the new head alone on cached features of the "
        "frozen backbone (0: none)",
        _COUNT,
        seed=0,
        fast=20,
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
        "share, and its target too" + _OFF,
        Number("a finite number >= 0" + _OFF),
        seed=0.0,
        fast=0.0,
    )
    cutmix_alpha: float = setting(
        "CutMix: a box of another image of the batch pasted in, its area share drawn the "
        "same way (with Mixup too, each batch takes one of the two)" + _OFF,
        Number("a finite number >= 0" + _OFF),
        seed=0.0,
        fast=0.0,
    )
    color_jitter: float = setting(
        "brightness, contrast and saturation of each training image scaled by factors in "
        "[1 - s, 1 + s]" + _OFF,
        Number("a number in [0, 1)" + _OFF, high=1.0),
        seed=0.0,
        fast=0.0,
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
    )
    extra_views: tuple[float, ...] = setting(
        "aspects of further networks, each trained with these settings on its own view of "
        "the photos at about the first one's pixels; prediction averages their "
        "probabilities (empty: one network)",
        Numbers(
            f"a sequence of aspects (height / width, each {_ASPECT}), for example "
            "(4 / 3,); () for one network",
            item=valid_aspect,
        ),
        seed=(),
        fast=(4 / 3,),
    )
    freeze_bn: bool = setting(
        "keep BatchNorm layers on their pretrained statistics while training all layers",
        Flag("True or False"),
        seed=False,
        fast=True,
    )
    ema_decay: float = setting(
        "keep an exponential moving average of the weights with this decay per step, used "
        "for validation and the final weights (0: off)",
        Number("a number in [0, 1) (0: no weight averaging)", high=1.0),
        seed=0.0,
        fast=0.0,
    )
    distill_weight: float = setting(
        "with fit(teacher=...): the share of the loss that matches the teacher's "
        "probabilities (the rest is the cross-entropy with the labels)",
        Number("a number from 0 to 1", high=1.0, high_open=False),
        seed=0.7,
        fast=0.7,
    )
    distill_temperature: float = setting(
        "with fit(teacher=...): the temperature that softens the teacher's and the "
        "network's probabilities in the distillation loss",
        Number("a positive finite number", low_open=True),
        seed=2.0,
        fast=2.0,
    )
    logit_adjustment: float = setting(
        "train on logits plus this times the log of the training set's class frequencies "
        "(the logit-adjusted loss): the network learns scores free of the class prior, "
        "and prediction adds the prior back by the model's balance" + _OFF,
        _AMOUNT,
        seed=0.0,
        fast=0.0,
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
        known = {s.name for s in _declared(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return resolve_config(cast(RecipeName, data.get("recipe", "seed")), **values)


@dataclass(frozen=True)
class RunOptions:
    """How a fit runs on this machine; never saved, free to change on resume.

    Example:
        >>> resolve_options(num_workers=0).amp
        'auto'
    """

    num_workers: int = option(
        "processes that decode images into the cache (0: this one)",
        _COUNT,
        default=min(4, os.cpu_count() or 1),
        flag="--workers",
    )
    progress: bool = option(
        "a progress bar (on a terminal) and one line per epoch on stderr",
        Flag("True or False"),
        default=True,
    )
    cache_dir: str | None = option(
        "keep the decoded images in memory-mapped files in this folder instead of in memory",
        Folder("None or a folder path"),
        default=None,
    )
    amp: Literal["auto", "bf16", "off"] = option(
        "bfloat16 autocast: auto where the hardware computes in it natively (CUDA with "
        "bf16, CPUs with AVX-512 BF16 or AMX), bf16 always, off never",
        Choice("one of 'auto', 'bf16', 'off'", choices=("auto", "bf16", "off")),
        default="auto",
    )
    channels_last: Literal["auto", "on", "off"] = option(
        "the channels-last memory layout: auto on the CPU and CUDA",
        Choice("one of 'auto', 'on', 'off'", choices=("auto", "on", "off")),
        default="auto",
    )
    compile: bool = option(
        "run the network through torch.compile", Flag("True or False"), default=False
    )
    reuse_memory: Literal["auto", "on", "off"] = option(
        "keep memory a training step frees on the heap for the next step (glibc; auto on "
        "the CPU), handed back when the fit ends",
        Choice("one of 'auto', 'on', 'off'", choices=("auto", "on", "off")),
        default="auto",
    )


def all_settings() -> list[Setting]:
    """Every declared setting: :class:`TrainConfig`'s, then :class:`RunOptions`'."""
    return [*_declared(TrainConfig), *_declared(RunOptions)]


#: The named recipes, each a dict of every field of :class:`TrainConfig` except ``recipe``:
#: ``"seed"``, the original study exactly, and ``"fast"``, two networks (the centre square
#: and the whole photo) averaged, more accurate than the study in 40 % of its image-passes.
RECIPES: dict[str, dict[str, Any]] = {
    recipe: {s.name: s.defaults[recipe] for s in _declared(TrainConfig)} for recipe in RECIPE_NAMES
}


def _resolved(
    declared: list[Setting], base: dict[str, Any], overrides: Mapping[str, Any], what: str
) -> dict[str, Any]:
    by_name = {s.name: s for s in declared}
    values = dict(base)
    for name, value in overrides.items():
        if name not in by_name:
            raise InvalidParameterError(
                f"{name!r} is not {what}; expected one of {', '.join(by_name)}."
            )
        if value is not None:
            values[name] = value
    return {name: by_name[name].check(value) for name, value in values.items()}


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
    if recipe not in RECIPES:
        raise InvalidParameterError(
            f"Unknown recipe {recipe!r}; expected one of {', '.join(map(repr, RECIPES))}."
        )
    declared = list(_declared(TrainConfig))
    values = _resolved(declared, RECIPES[recipe], overrides, "a training setting")
    return TrainConfig(recipe=recipe, **values)


def resolve_options(**overrides: Any) -> RunOptions:
    """The run options, defaults replaced by the ``overrides`` that are not ``None``.

    Raises:
        InvalidParameterError: An unknown option or a value that cannot work.
    """
    declared = list(_declared(RunOptions))
    base = {s.name: s.defaults["*"] for s in declared}
    return RunOptions(**_resolved(declared, base, overrides, "a run option"))


def settings_table() -> str:
    """The reStructuredText table of every setting (the docs include it)."""
    rows = ["   * - Setting\n     - Meaning\n     - Values\n     - ``seed``\n     - ``fast``"]
    for s in all_settings():
        seed = s.defaults.get("seed", s.defaults.get("*"))
        fast = s.defaults.get("fast", s.defaults.get("*"))
        group = " (run option)" if s.runtime else ""
        rows.append(
            f"   * - ``{s.name}``{group}\n     - {s.help[0].upper()}{s.help[1:]}.\n"
            f"     - {s.kind.expected}\n     - ``{seed!r}``\n     - ``{fast!r}``"
        )
    head = ".. list-table::\n   :header-rows: 1\n   :widths: 18 44 22 8 8\n\n"
    return head + "\n".join(rows) + "\n"
