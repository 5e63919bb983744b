"""``engine="auto"``'s measurement: the fastest compiled engine for a model, timed once."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .choice import (
    COMPILED_ENGINES,
    EngineChoice,
    Precision,
    Timing,
    available,
    reduced_precision_allowed,
)
from .runners import BUILD_LOCK, compiled_graphs, runner

__all__ = ["TIMING_BATCH", "TIMING_RUNS", "fastest_engine"]

#: Images per batch, and timed runs, of :func:`fastest_engine`'s measurement.
TIMING_BATCH, TIMING_RUNS = 16, 3


def fastest_engine(
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    *,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
) -> Timing | None:
    """Build the graph of every installed compiled engine in float32 for these networks,
    time each on one batch of ``TIMING_BATCH`` (16) random images (the median of
    ``TIMING_RUNS`` (3) runs after a warm-up), and keep the result for the process (until
    the weights change). OpenVINO bfloat16, and int8 once built
    (:func:`~clothingclf.engines.runners.build_int8`), are candidates too where
    :func:`~clothingclf.engines.choice.reduced_precision_allowed` accepts the model's
    ``checks``. ``None`` with fewer than two candidates, or when none builds.

    A second or so beside the builds; the graphs built are the ones the call then uses.
    """
    Kind = tuple[Literal["onnxruntime", "openvino"], Precision]
    candidates: list[Kind] = [(name, "float32") for name in COMPILED_ENGINES if available(name)]
    reasons: dict[str, str] = {}
    with BUILD_LOCK:
        entry = compiled_graphs(models, shapes)
        for precision in ("bfloat16", "int8"):
            check = (checks or {}).get(precision)
            built = precision != "int8" or entry.runners.get(("openvino", "int8")) is not None
            if check is not None and built and reduced_precision_allowed(check, precision):
                candidates.append(("openvino", precision))
                native = " is native here and" if precision == "bfloat16" else ""
                reasons[precision] = (
                    f"; {precision}{native} moved this model's top-1 accuracy by "
                    f"{float(check['top1_change']) * 100:+.2f} points on "
                    f"{check['photos']} photos (allowed: 0.1)"
                )
        if len(candidates) < 2:
            return None
        if entry.timing is not None and entry.timing.candidates == frozenset(candidates):
            return entry.timing
        generator = torch.Generator().manual_seed(2)
        batches = [torch.randn(TIMING_BATCH, 3, *shape, generator=generator) for shape in shapes]
        rates: dict[Kind, float] = {}
        for kind in candidates:
            choice = EngineChoice(*kind, "timed")
            run = runner(choice, models, shapes, torch.device("cpu"), fallback=True)
            if entry.runners.get(kind) is None:
                continue  # did not build: torch's runner came back
            run(batches)
            samples = []
            for _ in range(TIMING_RUNS):
                started = time.perf_counter()
                run(batches)
                samples.append(time.perf_counter() - started)
            rates[kind] = TIMING_BATCH / statistics.median(samples)
        if not rates:
            return None
        engine, precision = max(rates, key=rates.__getitem__)  # one that built, at least
        named = {f"{e} {p}" if p != "float32" else e: rate for (e, p), rate in rates.items()}
        why = reasons.get(precision, "")
        entry.timing = Timing(engine, precision, named, why, frozenset(candidates))
        return entry.timing
