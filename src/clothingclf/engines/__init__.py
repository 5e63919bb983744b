"""Inference engines: what runs a predictor's networks, and how ``"auto"`` picks one.

Four rooms: :mod:`~clothingclf.engines.choice` (what runs here, and why),
``engines/onnx.py`` (the networks' ONNX graph, shared with the export),
:mod:`~clothingclf.engines.runners` (the compiled runners, built once per state of the
weights) and :mod:`~clothingclf.engines.timing` (``"auto"``'s one measurement). What a
runner computes is :mod:`clothingclf.probabilities`.

* ``"torch"``: the networks in eager PyTorch, in the channels-last layout; float32, or
  under bfloat16 autocast with ``precision="bfloat16"``.
* ``"onnxruntime"``: the networks as one ONNX graph (the graph :func:`~clothingclf.export_model`
  writes) run by onnxruntime's CPU provider (``pip install 'clothingclf[onnx]'``); float32.
* ``"openvino"``: the same ONNX graph compiled by OpenVINO for the CPU
  (``pip install 'clothingclf[openvino]'``); float32, or bfloat16 where the CPU computes it
  natively (AVX512-BF16, AMX).

A graph is built from the weights the first time a model is run that way in a process (a
few seconds), checked against eager torch on random batches, and reused until the weights
change.

``engine="auto"`` on the CPU, for a call of at least
:data:`~clothingclf.engines.choice.AUTO_ONNX_MIN_IMAGES` images or once a graph is built,
runs the fastest engine installed: the first such call builds the candidates' graphs and
times them on one batch (:func:`~clothingclf.engines.timing.fastest_engine`, kept for the
process). Otherwise torch (a few images, where building would cost more than it saves; a
GPU; no extra).

The candidates are float32, plus OpenVINO bfloat16 for a model whose recorded check
(:meth:`~clothingclf.ClothingClassifier.check_precision`) moved its top-1 accuracy by at most
:data:`~clothingclf.engines.choice.AUTO_MAX_TOP1_CHANGE` (0.1 point) and only where the CPU
computes bfloat16 natively: ``precision="auto"`` never trades accuracy it has not measured.
``precision="bfloat16"`` runs in OpenVINO where the CPU has native bfloat16 and the extra is
installed (about twice OpenVINO float32 there), else under torch autocast (emulated, and
slow, on CPUs without it).
Every float32 engine agrees with eager float32 to 1e-4 on every probability; the tests check
it.
"""

from __future__ import annotations

from ..probabilities import ProbabilityGraph, Runner, TorchRunner
from .choice import (
    AUTO_MAX_TOP1_CHANGE,
    AUTO_ONNX_MIN_IMAGES,
    ENGINES,
    PRECISIONS,
    EngineChoice,
    Precision,
    Timing,
    choose_engine,
    native_bfloat16,
    onnxruntime_available,
    openvino_available,
    reduced_precision_allowed,
)
from .runners import build_int8, has_onnx_graph, runner
from .timing import fastest_engine

__all__ = [
    "AUTO_MAX_TOP1_CHANGE",
    "AUTO_ONNX_MIN_IMAGES",
    "ENGINES",
    "PRECISIONS",
    "EngineChoice",
    "Precision",
    "ProbabilityGraph",
    "Runner",
    "Timing",
    "TorchRunner",
    "build_int8",
    "choose_engine",
    "fastest_engine",
    "has_onnx_graph",
    "native_bfloat16",
    "onnxruntime_available",
    "openvino_available",
    "reduced_precision_allowed",
    "runner",
]
