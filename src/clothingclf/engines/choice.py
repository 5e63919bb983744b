"""Which engine and precision run a model here: what ``"auto"`` picks, and why."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..exceptions import InvalidParameterError, MissingDependencyError

__all__ = [
    "AUTO_MAX_TOP1_CHANGE",
    "AUTO_ONNX_MIN_IMAGES",
    "COMPILED_ENGINES",
    "ENGINES",
    "ONNX_HINT",
    "OPENVINO_HINT",
    "PRECISIONS",
    "EngineChoice",
    "Precision",
    "Timing",
    "available",
    "choose_engine",
    "native_bfloat16",
    "onnxruntime_available",
    "openvino_available",
    "reduced_precision_allowed",
]

#: The values of ``engine``.
ENGINES = ("auto", "torch", "onnxruntime", "openvino")
#: The engines that run a graph built from the weights, in the order ``"auto"`` prefers
#: them before they are timed.
COMPILED_ENGINES: tuple[Literal["onnxruntime", "openvino"], ...] = ("onnxruntime", "openvino")
#: The values of ``precision``.
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
#: A precision an engine runs in.
Precision = Literal["float32", "bfloat16", "int8"]

#: ``engine="auto"`` builds the onnxruntime graph for a call of this many images or more.
AUTO_ONNX_MIN_IMAGES = 64

ONNX_HINT = 'Install the onnx extra: pip install "clothingclf[onnx]"'
OPENVINO_HINT = 'Install the openvino extra: pip install "clothingclf[openvino]"'


def onnxruntime_available() -> bool:
    """Whether the onnx extra (onnx and onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    """Whether the openvino extra (openvino and onnx) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


def available(engine: str) -> bool:
    """Whether the extra of a compiled engine (``"onnxruntime"``, ``"openvino"``) is installed."""
    return onnxruntime_available() if engine == "onnxruntime" else openvino_available()


@functools.cache
def native_bfloat16() -> bool:
    """Whether OpenVINO computes bfloat16 natively on this CPU (its ``BF16`` capability:
    AVX512-BF16 or AMX); ``False`` without the openvino extra."""
    if not openvino_available():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True)
class EngineChoice:
    """What runs the networks: the engine, the precision, and why.

    Example:
        >>> choose_engine("torch", "float32", device=torch.device("cpu")).engine
        'torch'
    """

    engine: Literal["torch", "onnxruntime", "openvino"]
    precision: Precision
    reason: str


@dataclass(frozen=True)
class Timing:
    """What :func:`~clothingclf.engines.timing.fastest_engine` measured: photos per second
    of each compiled engine and precision on one batch (``"openvino bfloat16"`` among them
    where the model's measured top-1 change allows it), the fastest, and why a reduced
    precision counts."""

    engine: Literal["onnxruntime", "openvino"]
    precision: Precision
    rates: dict[str, float]
    why: str = ""
    candidates: frozenset[tuple[str, str]] = frozenset()


def choose_engine(
    engine: str = "auto",
    precision: str = "auto",
    *,
    device: torch.device,
    images: int | None = None,
    built: bool = False,
    timing: Timing | None = None,
) -> EngineChoice:
    """Resolve ``engine`` and ``precision`` for networks that live on ``device``, for a
    call of ``images`` images (``None``: many); ``built`` tells whether a graph of them
    exists already, ``timing`` what :func:`~clothingclf.engines.timing.fastest_engine`
    measured (``None``: not timed).

    Raises:
        InvalidParameterError: An unknown value, a compiled engine for a model on a GPU,
            bfloat16 with onnxruntime, or with OpenVINO on a CPU without native bfloat16.
        MissingDependencyError: A compiled engine without its extra.
    """
    if engine not in ENGINES:
        raise InvalidParameterError(
            f"engine must be one of {', '.join(map(repr, ENGINES))}; found {engine!r}."
        )
    if precision not in PRECISIONS:
        raise InvalidParameterError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}; found {precision!r}."
        )
    if precision == "int8":
        if device.type != "cpu":
            raise InvalidParameterError(
                f"precision='int8' runs in OpenVINO on the CPU, and this model is on {device}; "
                "load it with device='cpu'."
            )
        if engine in ("torch", "onnxruntime"):
            raise InvalidParameterError(
                f"precision='int8' runs in OpenVINO only; use engine='openvino' or 'auto', "
                f"not {engine!r}."
            )
        if not openvino_available():
            raise MissingDependencyError(f"precision='int8' needs OpenVINO. {OPENVINO_HINT}.")
        return EngineChoice("openvino", "int8", "asked for")
    resolved: Literal["float32", "bfloat16"] = "bfloat16" if precision == "bfloat16" else "float32"
    if engine in COMPILED_ENGINES:
        return _compiled_choice(engine, resolved, device)
    if engine == "torch":
        return EngineChoice("torch", resolved, "asked for")
    if device.type != "cpu":
        return EngineChoice("torch", resolved, f"the model is on {device.type}")
    if resolved == "bfloat16":
        if openvino_available() and native_bfloat16():
            return EngineChoice("openvino", resolved, "native bfloat16: OpenVINO is fastest")
        why = "OpenVINO sees no native bfloat16 on this CPU" if openvino_available() else None
        return EngineChoice("torch", resolved, why or "the openvino extra is not installed")
    installed: list[Literal["onnxruntime", "openvino"]] = [
        name for name in COMPILED_ENGINES if available(name)
    ]
    if not installed:
        return EngineChoice(
            "torch", resolved, "neither the onnx nor the openvino extra is installed"
        )
    if not built and images is not None and images < AUTO_ONNX_MIN_IMAGES:
        return EngineChoice(
            "torch", resolved, f"fewer than {AUTO_ONNX_MIN_IMAGES} images: not worth building"
        )
    if timing is not None:
        rates = ", ".join(f"{name} {rate:.0f}" for name, rate in timing.rates.items())
        return EngineChoice(
            timing.engine,
            timing.precision,
            f"the fastest here, timed on first use ({rates} photos/s){timing.why}",
        )
    if built:
        return EngineChoice(installed[0], resolved, "on the CPU, its graph built already")
    return EngineChoice(
        installed[0], resolved, f"on the CPU with the {installed[0]} engine installed"
    )


def _compiled_choice(
    engine: str, precision: Literal["float32", "bfloat16"], device: torch.device
) -> EngineChoice:
    """``engine="onnxruntime"`` or ``"openvino"`` asked for, checked."""
    if device.type != "cpu":
        raise InvalidParameterError(
            f"engine={engine!r} runs on the CPU, and this model is on {device}; load it "
            "with device='cpu', or use engine='torch'."
        )
    if engine == "onnxruntime":
        if precision == "bfloat16":
            raise InvalidParameterError(
                "precision='bfloat16' needs engine='torch' or 'openvino' (the onnxruntime graph "
                "is float32)."
            )
        if not onnxruntime_available():
            raise MissingDependencyError(f"engine='onnxruntime' needs onnxruntime. {ONNX_HINT}.")
        return EngineChoice("onnxruntime", precision, "asked for")
    if not openvino_available():
        raise MissingDependencyError(f"engine='openvino' needs OpenVINO. {OPENVINO_HINT}.")
    if precision == "bfloat16" and not native_bfloat16():
        raise InvalidParameterError(
            "precision='bfloat16' with engine='openvino' needs a CPU with native bfloat16 "
            "(AVX512-BF16 or AMX), which this one lacks; use float32 (faster here), or "
            "engine='torch' to emulate bfloat16."
        )
    return EngineChoice("openvino", precision, "asked for")


#: The largest change of top-1 accuracy, as a fraction (0.001 is 0.1 point), that a
#: model's recorded precision check may show for ``"auto"`` to run that reduced precision.
AUTO_MAX_TOP1_CHANGE = 0.001


def reduced_precision_allowed(check: Mapping[str, Any] | None, precision: str = "bfloat16") -> bool:
    """Whether a model's check of ``precision`` (``ClothingClassifier.check_precision``)
    lets ``"auto"`` run it: its top-1 accuracy moved by at most
    :data:`AUTO_MAX_TOP1_CHANGE`, OpenVINO is installed, and for bfloat16 this CPU
    computes it natively."""
    return (
        check is not None
        and abs(float(check["top1_change"])) <= AUTO_MAX_TOP1_CHANGE
        and openvino_available()
        and (precision != "bfloat16" or native_bfloat16())
    )
