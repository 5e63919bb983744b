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

__version__ = "0.2.0"

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
    predictor,
    pretrained,
    settings,
    training,
)
from .classifier import ClothingClassifier, Prediction
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
from .metrics import EvaluationReport
from .report import ReportFiles, load_evaluation_data, write_report

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
    "load_evaluation_data",
    "load_splits",
    "open_image",
    "open_splits",
    "predictor",
    "prepare_dataset",
    "pretrained",
    "read_export_metadata",
    "settings",
    "training",
    "write_report",
]
