"""clothingclf: tell which clothing article a photo shows.

The public API, declared once here (each module keeps its own ``__all__``):

* :func:`prepare_dataset`, :func:`load_splits`, :class:`DatasetSplits`, :class:`ClothingDataset`
* :class:`ClothingClassifier` and its :class:`Prediction`
* :mod:`clothingclf.analysis`: FLOPs and receptive fields by tracing the model
* :mod:`clothingclf.exceptions`: every error raised on purpose
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import analysis, backbones, datasets, exceptions
from .classifier import ClothingClassifier, Prediction
from .data import ClothingDataset, DatasetReport, DatasetSplits, load_splits, prepare_dataset
from .images import open_image
from .metrics import EvaluationReport

__all__ = [
    "ClothingClassifier",
    "ClothingDataset",
    "DatasetReport",
    "DatasetSplits",
    "EvaluationReport",
    "Prediction",
    "__version__",
    "analysis",
    "backbones",
    "datasets",
    "exceptions",
    "load_splits",
    "open_image",
    "prepare_dataset",
]
