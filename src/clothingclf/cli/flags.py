"""Command-line values: argparse types that range-check numbers, and the flag of each
setting of ``clothingclf train``, made from the setting's declaration
(:mod:`clothingclf.settings`): its kind gives the parsing, its help and recipe values the
help line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._kinds import Choice, Flag, Folder, Int, Kind, Number, Numbers

if TYPE_CHECKING:
    from ..settings import Setting

__all__ = ["add_setting_flag", "int_in", "kind_arguments", "number_in"]


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an int from ``low`` to ``high`` (a usage error names the range).

    Example:
        >>> int_in(1, 10)("3")
        3
        >>> int_in(1)("0")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: must be 1 or more; found 0
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}; found {value}")
        return value

    parse.__name__ = "int"
    return parse


def number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type``: a number from ``low`` to ``high`` (a usage error names the range).

    Example:
        >>> number_in(0.0, 1.0)("0.25")
        0.25
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
        if not low <= value <= high:  # NaN too
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}; found {text}")
        return value

    parse.__name__ = "float"
    return parse


def kind_arguments(kind: Kind) -> dict[str, Any]:
    """The :meth:`~argparse.ArgumentParser.add_argument` keywords that read a value of
    ``kind`` from the command line (the setting's own check runs after, on the value).

    Example:
        >>> kind_arguments(Choice("one of 'a', 'b'", choices=("a", "b")))
        {'choices': ('a', 'b')}
    """
    if isinstance(kind, Int):
        return {"type": int_in(kind.low, kind.high), "metavar": "N"}
    if isinstance(kind, Number):
        return {"type": float, "metavar": "X"}
    if isinstance(kind, Choice):
        return {"choices": kind.choices}
    if isinstance(kind, Flag):
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(kind, Numbers):
        return {"type": float, "nargs": "*", "metavar": "X"}
    if isinstance(kind, Folder):
        return {"type": str, "metavar": "DIR"}
    return {"type": str}


def add_setting_flag(parser: argparse.ArgumentParser, setting: Setting) -> None:
    """Add the flag of ``setting`` to ``parser``: its value lands in ``setting.name``,
    ``None`` when it is not given (the recipe's value), and its help ends with the
    recipes' values.

    Example:
        >>> from clothingclf.settings import all_settings
        >>> parser = argparse.ArgumentParser()
        >>> for declared in all_settings():
        ...     add_setting_flag(parser, declared)
        >>> args = parser.parse_args(["--head-batch-size", "32"])
        >>> args.head_batch_size, args.epochs
        (32, None)
    """
    values = {recipe: _shown(value) for recipe, value in setting.defaults.items()}
    same = len(set(values.values())) == 1
    shown = (
        next(iter(values.values()))
        if same
        else ", ".join(f"{recipe} {value}" for recipe, value in values.items())
    )
    parser.add_argument(
        setting.flag,
        dest=setting.name,
        default=None,
        help=f"{setting.help} ({shown})",
        **kind_arguments(setting.kind),
    )


def _shown(value: Any) -> str:
    """A recipe's value as the help shows it (a tuple as its numbers, ``None`` as off)."""
    if isinstance(value, tuple):
        return " ".join(f"{v:.4g}" for v in value) or "none"
    return "off" if value is None else str(value)
