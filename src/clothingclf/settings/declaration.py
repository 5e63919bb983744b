"""How a setting is declared: :class:`Setting`, what a declaration says, and
``setting(...)`` / ``option(...)``, which declare a field of
:class:`~clothingclf.settings.TrainConfig` or :class:`~clothingclf.settings.RunOptions`;
with the kinds of values the declarations share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .._kinds import BAD, Int, Kind, Number
from ..backbones import ASPECT_RANGE
from ..exceptions import InvalidParameterError

__all__ = ["Setting"]


class _Unknown:
    """The ``implied`` of a setting whose older files do not tell the value they ran with."""

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class Setting:
    """One setting as declared: its help, kind, defaults and flag, and what files of
    earlier releases need to know of it.

    Attributes:
        name: The field's name (and the estimator's parameter).
        help: What it does, in one sentence (``--help``, the docs).
        kind: The values it takes (:meth:`check`).
        defaults: The value of each recipe (``{"seed": ..., "fast": ...}``), or
            ``{"*": default}`` for a run option.
        runtime: A run option (:class:`RunOptions`): never saved.
        flag: Its ``clothingclf train`` flag.
        resume: Resuming a training checkpoint needs the checkpoint's value (it shapes
            the schedule, the data order or the loss).
        added: The release that added it (``"0.2"``); ``None`` for the settings that the
            first model files and checkpoints held.
        implied: What a model file or checkpoint written before ``added`` ran with, and is
            read with; ``unknown`` where such a file does not tell (it takes the recipe's
            value).

    Example:
        >>> from clothingclf.settings import all_settings
        >>> ema = next(s for s in all_settings() if s.name == "ema_decay")
        >>> ema.flag, ema.resume, ema.added, ema.implied
        ('--ema-decay', True, '0.2', 0.0)
    """

    name: str
    help: str
    kind: Kind
    defaults: Mapping[str, Any]
    runtime: bool
    flag: str
    resume: bool = False
    added: str | None = None
    implied: Any = UNKNOWN

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


def setting(
    help: str,
    kind: Kind,
    *,
    seed: Any,
    fast: Any,
    flag: str | None = None,
    resume: bool = False,
    added: str | None = None,
    implied: Any = UNKNOWN,
) -> Any:
    """Declare a field of :class:`TrainConfig`: learned with and saved (see :class:`Setting`
    for ``resume``, ``added`` and ``implied``)."""
    declared = {
        "help": help,
        "kind": kind,
        "defaults": {"seed": seed, "fast": fast},
        "runtime": False,
        "flag": flag,
        "resume": resume,
        "added": added,
        "implied": implied,
    }
    return field(metadata={"setting": declared})


def option(
    help: str, kind: Kind, *, default: Any, flag: str | None = None, added: str | None = None
) -> Any:
    """Declare a field of :class:`RunOptions`: how a run executes, never saved."""
    declared = {
        "help": help,
        "kind": kind,
        "defaults": {"*": default},
        "runtime": True,
        "flag": flag,
        "added": added,
    }
    return field(default=default, metadata={"setting": declared})


def declared_settings(cls: type) -> Iterator[Setting]:
    for item in fields(cls):
        if "setting" in item.metadata:
            declared = dict(item.metadata["setting"])
            declared["flag"] = declared["flag"] or "--" + item.name.replace("_", "-")
            yield Setting(name=item.name, **declared)


def resolved_values(
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


POSITIVE = Int("a positive int", low=1)
COUNT = Int("an int >= 0", low=0)
FRACTION = Number("a number in [0, 1)", high=1.0)
AMOUNT = Number("a finite number >= 0")
ASPECT_RANGE_TEXT = f"from {ASPECT_RANGE[0]} to {ASPECT_RANGE[1]}"
OFF = " (0: off)"
#: The declaration of a feature added in 0.2 that both recipes leave off, as files written
#: before it ran: ``setting(help, kind, **OFF_SINCE_0_2)``.
OFF_SINCE_0_2: dict[str, Any] = {
    "seed": 0.0,
    "fast": 0.0,
    "resume": True,
    "added": "0.2",
    "implied": 0.0,
}
