"""clothingclf: tell which clothing article a photo shows.

The public API, declared once here (each module keeps its own ``__all__``):

* :func:`prepare_dataset`, :func:`load_splits`, :func:`open_splits` (either, by what a folder
  holds), :class:`DatasetSplits`, :class:`ClothingDataset`
* :class:`ClothingClassifier` and its :class:`Prediction`; ``ClothingClassifier.pretrained()``
  and :mod:`clothingclf.pretrained`: the trained model and photos inside the package
* :mod:`clothingclf.calibration`: confidence that means what it says (temperature
  scaling, calibration error, coverage)
* :mod:`clothingclf.checkpoint`: the model file (safetensors, data only)
* :mod:`clothingclf.analysis`: FLOPs and receptive fields by tracing the model
* :mod:`clothingclf.exceptions`: every error raised on purpose
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from . import (
        analysis,
        backbones,
        calibration,
        catalogue,
        checkpoint,
        data,
        devices,
        engines,
        exceptions,
        inference,
        predictor,
        pretrained,
        probabilities,
        quantization,
        settings,
        training,
    )
    from .classifier import ClothingClassifier
    from .data import (
        ClothingDataset,
        DatasetReport,
        DatasetSplits,
        load_splits,
        open_splits,
        prepare_dataset,
    )
    from .export import ExportedModel, export_model, read_export_metadata
    from .images import open_image
    from .inference import Prediction
    from .metrics import EvaluationReport
    from .report import ReportFiles, load_evaluation_data, write_report

# Where each public name that is not a module lives. Modules are imported when a name is
# first used (PEP 562), so labelling one photo does not import the analysis, training or
# report code.
_NAMES = {
    "ClothingClassifier": "classifier",
    "Prediction": "inference",
    "ClothingDataset": "data",
    "DatasetReport": "data",
    "DatasetSplits": "data",
    "load_splits": "data",
    "open_splits": "data",
    "prepare_dataset": "data",
    "ExportedModel": "export",
    "export_model": "export",
    "read_export_metadata": "export",
    "open_image": "images",
    "EvaluationReport": "metrics",
    "ReportFiles": "report",
    "load_evaluation_data": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name in __all__:  # every other public name is a module of the package
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ClothingClassifier",
    "ClothingDataset",
    "DatasetReport",
    "DatasetSplits",
    "EvaluationReport",
    "ExportedModel",
    "Prediction",
    "ReportFiles",
    "__version__",
    "analysis",
    "backbones",
    "calibration",
    "catalogue",
    "checkpoint",
    "data",
    "devices",
    "engines",
    "exceptions",
    "export_model",
    "inference",
    "load_evaluation_data",
    "load_splits",
    "open_image",
    "open_splits",
    "predictor",
    "prepare_dataset",
    "pretrained",
    "probabilities",
    "quantization",
    "read_export_metadata",
    "settings",
    "training",
    "write_report",
]
