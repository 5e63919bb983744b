"""The kinds of values a setting takes (:mod:`clothingclf.settings`): each checks a value
and says what it expects in words, for error messages, CLI flags and the docs (the CLI
turns a kind into a flag's arguments: ``clothingclf.cli.flags``)."""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a kind's check returns for a value it refuses.
BAD = object()
#: The smallest and largest image side (px) a network may be trained and run at: one bound
#: for the setting, the builder and the model-file check.
IMAGE_SIDES = (8, 2048)
#: The largest ``logit_adjustment``: one bound for the setting and the calibration that
#: adds the class prior back in prediction.
MAX_LOGIT_ADJUSTMENT = 10.0


@dataclass(frozen=True)
class Kind:
    """What values a setting takes: ``expected`` says it in words (messages, docs)."""

    expected: str

    def check(self, value: Any) -> Any:
        raise NotImplementedError


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float, not a bool, that converts to a float (an int of 400 digits does not:
    math.isfinite would raise OverflowError on it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, float) or abs(value) <= sys.float_info.max


def is_real(value: Any) -> bool:
    """A real number of any type, numpy's included, but not a bool (for values computed
    by the user's own code: a temperature, a threshold)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Int(Kind):
    low: int = 0
    high: int | None = None
    optional: bool = False  # None is a value of its own (never the recipe's)

    def check(self, value: Any) -> Any:
        if value is None and self.optional:
            return None
        ok = is_int(value) and value >= self.low and (self.high is None or value <= self.high)
        return value if ok else BAD


@dataclass(frozen=True)
class Number(Kind):
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True

    def check(self, value: Any) -> Any:
        if not is_number(value) or math.isnan(value):
            return BAD
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return float(value) if above and below and math.isfinite(value) else BAD


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        return value if isinstance(value, str) and value in self.choices else BAD


@dataclass(frozen=True)
class Flag(Kind):
    def check(self, value: Any) -> Any:
        return value if isinstance(value, bool) else BAD


@dataclass(frozen=True)
class Numbers(Kind):
    """A sequence of numbers (a list, from JSON, is accepted), each passing ``item``."""

    item: Callable[[Any], bool] = is_number

    def check(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return BAD
        if not all(is_number(v) and self.item(v) for v in value):
            return BAD
        return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Folder(Kind):
    def check(self, value: Any) -> Any:
        if value is None:
            return None
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) else BAD
