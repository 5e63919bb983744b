"""Confidence users can act on: temperature scaling, calibration error, coverage.

A classifier's top score is *calibrated* when, of the photos it labels with score 0.8,
about 80 % are right. An ensemble of fine-tuned networks is usually under- or
over-confident; temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017) fixes that with one number ``T`` fitted on the validation split:
the probabilities become ``softmax(log(p) / T)``. The order of the classes, hence every
label and the accuracy, is unchanged.

:meth:`ClothingClassifier.fit <clothingclf.ClothingClassifier.fit>` fits ``T`` on its
validation split and stores it in the model file; ``predict_proba`` and ``predict_top``
return calibrated probabilities (``calibrated=False``: the networks' own average).
:func:`expected_calibration_error`, :func:`reliability_table` and :func:`coverage_curve`
measure the result; :meth:`ClothingClassifier.evaluate
<clothingclf.ClothingClassifier.evaluate>` reports all three.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    >>> y = np.array([0, 1, 1, 0])
    >>> round(expected_calibration_error(p, y), 3)
    0.3
    >>> fitted = Calibration.fit(p, y)  # 3 of 4 right at 0.7-0.9: under-confident
    >>> round(fitted.temperature, 2)  # below 1: sharpens the scores
    0.53
    >>> round(expected_calibration_error(fitted.apply(p), y), 3)
    0.234
    >>> coverage_curve(p, y, thresholds=[0.5, 0.75]).to_dict("records")[1]
    {'threshold': 0.75, 'coverage': 0.5, 'accuracy': 1.0, 'images': 2}
"""

from __future__ import annotations

import math
import reprlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import torch

from ._kinds import MAX_LOGIT_ADJUSTMENT, is_real
from .exceptions import InvalidParameterError

__all__ = [
    "BALANCES",
    "CALIBRATION_BINS",
    "TEMPERATURE_RANGE",
    "Balance",
    "Calibration",
    "class_prior",
    "coverage_curve",
    "expected_calibration_error",
    "reliability_table",
]

#: Equal-width confidence bins of the expected calibration error (as in Guo et al.).
CALIBRATION_BINS = 15
#: The temperatures :meth:`Calibration.fit` searches and a model file may hold.
TEMPERATURE_RANGE = (0.05, 20.0)
#: The named values of ``balance`` (see :class:`Calibration`): ``"accuracy"`` adds the whole
#: class prior back (the most photos right), ``"balanced"`` none of it (every class alike:
#: the best balanced accuracy), ``"middle"`` half of it.
BALANCES: dict[str, float] = {"accuracy": 0.0, "middle": 0.5, "balanced": 1.0}
#: What ``balance`` takes: a number from 0 to 1 or a name of :data:`BALANCES`.
Balance: TypeAlias = float | Literal["accuracy", "middle", "balanced"]
#: Thresholds of the default coverage curve.
_THRESHOLDS = (*(round(t, 2) for t in np.arange(0.0, 1.0, 0.05)), 0.99)
_EPS = 1e-12
_MAX_PRIOR = 10_000  # classes, as a model file allows


def _checked(probabilities: Any, labels: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise InvalidParameterError(
            f"probabilities must be an (images, classes) array with at least one image and "
            f"two classes; found shape {p.shape}."
        )
    if not np.isfinite(p).all() or (p < 0).any():
        raise InvalidParameterError("probabilities must be finite and non-negative.")
    if labels is None:
        return p, np.zeros(0, dtype=np.int64)
    y = np.asarray(labels).ravel()
    if y.shape[0] != p.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise InvalidParameterError(
            f"labels must be {p.shape[0]} integer class ids, one per row of probabilities; "
            f"found {y.shape[0]} of type {y.dtype}."
        )
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise InvalidParameterError(
            f"labels hold ids from {y.min()} to {y.max()}; expected 0..{p.shape[1] - 1}."
        )
    return p, y.astype(np.int64)


@dataclass(frozen=True)
class Calibration:
    """How a model's averaged probabilities become the ones ``predict_proba`` returns:
    ``softmax((log(p) + shift) / T)``.

    For a model trained with ``logit_adjustment`` tau (its networks score photos free of
    the training set's class prior), ``shift`` adds part of the prior back:
    ``(1 - balance) * tau * log(prior)``. ``balance`` 0 (``"accuracy"``) gives the labels
    that are right most often, 1 (``"balanced"``) treats every class alike (rare classes
    are found more often, at some cost in overall accuracy); :data:`BALANCES` names a few.
    For other models the shift is 0.

    Attributes:
        temperature: ``T``: above 1 softens over-confident scores, below 1 sharpens
            under-confident ones, 1 changes nothing. Fitted for ``balance``.
        prior: The class frequencies of the training set (empty: no adjustment).
        logit_adjustment: The tau the networks were trained with.
        balance: From 0 to 1, how much of the prior stays out of the scores.

    Example:
        >>> Calibration(temperature=2.0).apply(np.array([[0.8, 0.2]])).round(3).tolist()
        [[0.667, 0.333]]
        >>> Calibration.from_dict(Calibration(1.5).to_dict())
        Calibration(temperature=1.5, prior=(), logit_adjustment=0.0, balance=0.0)
        >>> adjusted = Calibration(prior=(0.9, 0.1), logit_adjustment=1.0)
        >>> adjusted.apply(np.array([[0.4, 0.6]])).round(3).tolist()  # the prior added back
        [[0.857, 0.143]]
        >>> adjusted.at("balanced").apply(np.array([[0.4, 0.6]])).round(3).tolist()
        [[0.4, 0.6]]
    """

    temperature: float = 1.0
    prior: tuple[float, ...] = ()
    logit_adjustment: float = 0.0
    balance: float = 0.0

    def __post_init__(self) -> None:
        t = self.temperature
        low, high = TEMPERATURE_RANGE
        if not is_real(t) or not low <= t <= high:
            raise InvalidParameterError(
                f"temperature must be a number from {low} to {high}; found {t!r}."
            )
        object.__setattr__(self, "temperature", float(t))
        prior = self.prior
        if (
            not isinstance(prior, (tuple, list))
            or len(prior) == 1
            or len(prior) > _MAX_PRIOR
            or not all(is_real(v) and 0 < v <= 1 for v in prior)
            or (prior and abs(math.fsum(prior) - 1) > 1e-3)
        ):
            raise InvalidParameterError(
                "prior must be the class frequencies of the training set: two or more "
                f"numbers in (0, 1] that sum to 1; found {_brief(prior)}."
            )
        object.__setattr__(self, "prior", tuple(float(v) for v in prior))
        tau = self.logit_adjustment
        if not is_real(tau) or not 0 <= tau <= MAX_LOGIT_ADJUSTMENT:
            raise InvalidParameterError(
                f"logit_adjustment must be a number from 0 to {MAX_LOGIT_ADJUSTMENT}; "
                f"found {tau!r}."
            )
        object.__setattr__(self, "logit_adjustment", float(tau))
        object.__setattr__(self, "balance", _balance_value(self.balance))

    @property
    def is_identity(self) -> bool:
        """Whether it leaves probabilities as they are."""
        return self.temperature == 1.0 and self._weight() == 0.0

    @property
    def adjustable(self) -> bool:
        """Whether ``balance`` means anything: the model was trained with a prior removed."""
        return bool(self.prior) and self.logit_adjustment > 0

    def at(self, balance: Balance) -> Calibration:
        """The same calibration at another ``balance`` (a number from 0 to 1 or a name of
        :data:`BALANCES`); its temperature stays the one fitted.

        Raises:
            InvalidParameterError: Not a balance, or a model trained without
                ``logit_adjustment`` (its scores hold the prior already).
        """
        value = _balance_value(balance)
        if not self.adjustable:
            raise InvalidParameterError(
                f"balance={balance!r} needs a model trained with logit_adjustment > 0; this "
                "one was not, so its scores already hold the class prior. Train one with "
                "ClothingClassifier(logit_adjustment=1.0), or leave balance out."
            )
        return replace(self, balance=value)

    def _weight(self) -> float:
        return (1.0 - self.balance) * self.logit_adjustment if self.prior else 0.0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """The calibrated float64 probabilities of ``(images, classes)`` probabilities."""
        p = np.asarray(probabilities, dtype=np.float64)
        if self.is_identity:
            return p
        scaled = np.log(np.maximum(p, _EPS))
        if self._weight():
            scaled = scaled + self._weight() * np.log(np.asarray(self.prior))
        scaled /= self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        out = np.exp(scaled)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def apply_tensor(self, probabilities: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` in torch, for the exported graphs (traceable to ONNX)."""
        if self.is_identity:
            return probabilities
        scaled = torch.log(probabilities.clamp_min(_EPS))
        if self._weight():
            shift = self._weight() * torch.tensor(self.prior, dtype=torch.float64).log()
            scaled = scaled + shift.to(scaled.dtype)
        return torch.softmax(scaled / self.temperature, dim=1)

    def to_dict(self) -> dict[str, Any]:
        """The plain values a model file stores."""
        data: dict[str, Any] = {"method": "temperature", "temperature": self.temperature}
        if self.prior:
            data.update(
                prior=list(self.prior),
                logit_adjustment=self.logit_adjustment,
                balance=self.balance,
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Rebuild from :meth:`to_dict`.

        Raises:
            InvalidParameterError: An unknown method or an out-of-range value.
        """
        method = data.get("method", "temperature")
        if method != "temperature":
            raise InvalidParameterError(
                f"Unknown calibration method {method!r}; this version knows 'temperature'."
            )
        return cls(
            temperature=data.get("temperature", 1.0),
            prior=data.get("prior", ()),
            logit_adjustment=data.get("logit_adjustment", 0.0),
            balance=data.get("balance", 0.0),
        )

    @classmethod
    def fit(
        cls, probabilities: Any, labels: Any, *, base: Calibration | None = None
    ) -> Calibration:
        """The temperature that minimises the negative log-likelihood of ``labels``.

        Args:
            probabilities: ``(images, classes)`` uncalibrated probabilities of a labelled
                split the networks were not trained on (the validation split).
            labels: The class id of each image.
            base: The prior, ``logit_adjustment`` and ``balance`` to fit the temperature
                at (they are kept); ``None``: none.

        Returns:
            The fitted :class:`Calibration` (``T`` within :data:`TEMPERATURE_RANGE`).

        Raises:
            InvalidParameterError: Mismatched or malformed inputs.
        """
        p, y = _checked(probabilities, labels)
        start = base if base is not None else cls()
        if start.prior and len(start.prior) != p.shape[1]:
            raise InvalidParameterError(
                f"The prior has {len(start.prior)} classes and the probabilities "
                f"{p.shape[1]}; they must be the same model's."
            )
        shifted = replace(start, temperature=1.0).apply(p)
        log_p = torch.from_numpy(np.log(np.maximum(shifted, _EPS)))
        target = torch.from_numpy(y)

        def nll(log_t: float) -> float:
            scaled = log_p / math.exp(log_t)
            return float(torch.nn.functional.cross_entropy(scaled, target))

        # The NLL is unimodal in log T: golden-section search over the allowed range,
        # to 1e-4 in log T (scipy's minimize_scalar would add a dependency for this).
        low, high = (math.log(v) for v in TEMPERATURE_RANGE)
        ratio = (math.sqrt(5) - 1) / 2
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        fa, fb = nll(a), nll(b)
        while high - low > 1e-4:
            if fa <= fb:
                high, b, fb = b, a, fa
                a = high - ratio * (high - low)
                fa = nll(a)
            else:
                low, a, fa = a, b, fb
                b = low + ratio * (high - low)
                fb = nll(b)
        best = min(max(math.exp((low + high) / 2), TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])
        if any(abs(math.log(best / bound)) < 1e-3 for bound in TEMPERATURE_RANGE):
            warnings.warn(
                f"The fitted temperature is at the limit {best:g} of {TEMPERATURE_RANGE}: on "
                f"these {len(y)} photos the scores would have to be "
                f"{'all but 1 or 0' if best < 1 else 'all but uniform'} to fit, which "
                "another sample will not bear out. Calibrate on more photos, or on photos "
                "the model was not trained on.",
                stacklevel=2,
            )
        return replace(start, temperature=best)


def class_prior(labels: Any, classes: int) -> tuple[float, ...]:
    """The frequency of each of ``classes`` class ids among ``labels`` (a class without
    any counts as one photo, so that its log stays finite)."""
    counts = np.maximum(np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes), 1)
    return tuple(float(v) for v in counts / counts.sum())


def _balance_value(balance: Any) -> float:
    """A balance as a number from 0 to 1 (a name of :data:`BALANCES` or a number)."""
    if isinstance(balance, str) and balance in BALANCES:
        return BALANCES[balance]
    if is_real(balance) and 0 <= float(balance) <= 1:
        return float(balance)
    names = ", ".join(map(repr, BALANCES))
    raise InvalidParameterError(
        f"balance must be {names} or a number from 0 to 1; found {_brief(balance)}."
    )


def _brief(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (a hostile value may be huge)."""
    text = reprlib.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def reliability_table(
    probabilities: Any, labels: Any, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """The reliability diagram's data: the images grouped by their top score into
    ``bins`` equal-width bins, with the mean score (``confidence``) and the share right
    (``accuracy``) of each.

    Returns:
        One row per bin: ``low``, ``high``, ``images``, ``confidence``, ``accuracy`` (NaN
        for an empty bin).
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InvalidParameterError(f"bins must be a positive int; found {bins!r}.")
    p, y = _checked(probabilities, labels)
    confidence = p.max(axis=1)
    right = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (low, high], the first one [0, high]: a score of exactly 1 is in the last.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "images": count,
                "confidence": float(confidence[inside].mean()) if count else math.nan,
                "accuracy": float(right[inside].mean()) if count else math.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(
    probabilities: Any, labels: Any, bins: int = CALIBRATION_BINS
) -> float:
    """The expected calibration error: the mean over the images of
    ``|accuracy - confidence|`` of their bin of :func:`reliability_table` (0: calibrated).
    """
    table = reliability_table(probabilities, labels, bins)
    used = table[table["images"] > 0]
    gaps = (used["accuracy"] - used["confidence"]).abs()
    return float((gaps * used["images"]).sum() / used["images"].sum())


def coverage_curve(
    probabilities: Any, labels: Any, thresholds: Sequence[float] | None = None
) -> pd.DataFrame:
    """What abstaining below a score buys: for each threshold, the share of the images
    whose top score reaches it (``coverage``) and the accuracy on those (``accuracy``, NaN
    when none does), with their count.

    With ``predict_top(x, min_score=t)`` the photos of ``coverage`` are labelled at that
    ``accuracy`` and the others are left to a person.
    """
    p, y = _checked(probabilities, labels)
    steps = _THRESHOLDS if thresholds is None else tuple(float(t) for t in thresholds)
    if not steps or any(not 0.0 <= t <= 1.0 for t in steps):
        raise InvalidParameterError(f"thresholds must be numbers from 0 to 1; found {steps!r}.")
    confidence = p.max(axis=1)
    right = p.argmax(axis=1) == y
    rows = []
    for t in steps:
        kept = confidence >= t
        count = int(kept.sum())
        rows.append(
            {
                "threshold": t,
                "coverage": count / len(confidence),
                "accuracy": float(right[kept].mean()) if count else math.nan,
                "images": count,
            }
        )
    return pd.DataFrame(rows)
