"""int8 post-training quantisation of a model's ONNX graph for OpenVINO, with NNCF.

NNCF (``pip install 'clothingclf[int8]'``) inserts quantise/dequantise pairs around the
convolutions and matrix products and sets their ranges from the activations of a few
hundred calibration photos (no labels, no training): :meth:`ClothingClassifier.check_precision
<clothingclf.ClothingClassifier.check_precision>` calibrates on the validation split and
measures what it costs. The quantised graph lives in memory, with the model's other
compiled graphs (:mod:`clothingclf.engines`), for the life of the process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["CALIBRATION_PHOTOS", "nncf_available", "quantized_graph"]

#: Photos NNCF's statistics are collected on (its own default subset size).
CALIBRATION_PHOTOS = 300


def nncf_available() -> bool:
    """Whether the int8 extra (NNCF, with OpenVINO and onnx) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("nncf", "openvino", "onnx"))


def quantized_graph(onnx: bytes, calibration: Sequence[Sequence[np.ndarray]]) -> Any:
    """The OpenVINO model of the ONNX graph ``onnx`` quantised to int8, its ranges set on
    ``calibration`` (per photo, one ``1 x 3 x H x W`` float32 input per network).

    NNCF's ``PERFORMANCE`` preset (symmetric int8 weights and activations) and fast bias
    correction; a few seconds for a network the size of EfficientNet-Lite0.
    """
    import openvino as ov

    # NNCF's import and steps talk: deprecation notices, torch's "No CUDA runtime" log line,
    # INFO lines and a progress bar on stdout (which `clothingclf predict --json` writes).
    with (
        warnings.catch_warnings(),
        _quiet("nncf"),
        _quiet("torch.utils.cpp_extension"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        import nncf

        model = ov.Core().read_model(model=onnx, weights=b"")
        dataset = nncf.Dataset(list(calibration), lambda inputs: dict(enumerate(inputs)))
        return nncf.quantize(
            model,
            dataset,
            subset_size=len(calibration),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            fast_bias_correction=True,
        )


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The logger ``name`` at ERROR for the length of a block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
