"""Every error that clothingclf raises on purpose.

Each one subclasses a built-in exception, so code that already catches ``ValueError``
or ``FileNotFoundError`` keeps working, and :class:`ClothingClfError` catches them all::

    ClothingClfError(Exception)
    ├── DatasetError(ValueError)              a table or folder that cannot be used as a dataset
    │   ├── MissingColumnsError               images.csv lacks a required column
    │   ├── EmptyDatasetError                 nothing left to train or split on
    │   ├── DuplicateImageError               two rows name the same image id
    │   └── UnsafePathError                   an image id that would read outside the root
    ├── DatasetNotFoundError(FileNotFoundError)   the root or images.csv is missing
    ├── InvalidImageError(ValueError)         a file or array that is not a decodable image
    ├── ImageNotFoundError(FileNotFoundError) an image file that does not exist
    ├── ModelFileError(ValueError)            a file that is not a clothingclf model
    │   └── UnsupportedFormatError            a model file of a newer format version
    ├── WeightsUnavailableError(RuntimeError) pretrained weights could not be obtained
    ├── InvalidParameterError(ValueError)     an option value that cannot work (backbone name, ...)
    ├── SaveError(OSError)                    a model or checkpoint file could not be written
    ├── NotFittedError(ValueError, AttributeError)   a model used before ``fit``
    ├── TrainingDivergedError(FloatingPointError)    the loss became NaN or infinite
    ├── AnalysisError(ValueError)             a model the analysis cannot handle
    ├── ExportError(RuntimeError)             an export to ONNX or TorchScript failed
    └── MissingDependencyError(ImportError)   a missing optional extra (plot, onnx, pretrained)

Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = [
    "AnalysisError",
    "ClothingClfError",
    "DatasetError",
    "DatasetNotFoundError",
    "DuplicateImageError",
    "EmptyDatasetError",
    "ExportError",
    "ImageNotFoundError",
    "InvalidImageError",
    "InvalidParameterError",
    "MissingColumnsError",
    "MissingDependencyError",
    "ModelFileError",
    "NotFittedError",
    "SaveError",
    "TrainingDivergedError",
    "UnsafePathError",
    "UnsupportedFormatError",
    "WeightsUnavailableError",
    "did_you_mean",
    "first_line",
]


class ClothingClfError(Exception):
    """Base class of every error that clothingclf raises on purpose."""


class DatasetError(ClothingClfError, ValueError):
    """A table or folder that cannot be used as a dataset."""


class MissingColumnsError(DatasetError):
    """A table lacks a column that is required."""


class EmptyDatasetError(DatasetError):
    """Nothing is left to split or train on (empty table, every row excluded, ...)."""


class DuplicateImageError(DatasetError):
    """Two rows of a table name the same image id."""


class UnsafePathError(DatasetError):
    """An image id contains a path separator or ``..`` and would read outside the root."""


class DatasetNotFoundError(ClothingClfError, FileNotFoundError):
    """The dataset folder, or its ``images.csv``, does not exist."""


class InvalidImageError(ClothingClfError, ValueError):
    """A file, byte string or array that is not a decodable image."""


class ImageNotFoundError(ClothingClfError, FileNotFoundError):
    """An image path that does not exist."""


class ModelFileError(ClothingClfError, ValueError):
    """A file that is not a clothingclf model file (corrupt, truncated, foreign or unsafe)."""


class UnsupportedFormatError(ModelFileError):
    """A model file written by a newer clothingclf, in a format version this one cannot read."""


class WeightsUnavailableError(ClothingClfError, RuntimeError):
    """Pretrained weights could not be downloaded or read."""


class InvalidParameterError(ClothingClfError, ValueError):
    """An option value that cannot work: an unknown backbone name, device or choice."""


class SaveError(ClothingClfError, OSError):
    """A model or checkpoint file could not be written (disk full, no permission, ...).

    The previous file at that path, if any, is left as it was.
    """


class NotFittedError(ClothingClfError, ValueError, AttributeError):
    """A classifier was used before ``fit`` was called."""


class TrainingDivergedError(ClothingClfError, FloatingPointError):
    """The training loss became NaN or infinite."""


class AnalysisError(ClothingClfError, ValueError):
    """A model or input that the analysis cannot handle."""


class ExportError(ClothingClfError, RuntimeError):
    """Exporting a model to ONNX or TorchScript failed."""


class MissingDependencyError(ClothingClfError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def did_you_mean(
    name: str, known: Iterable[str], *, most: int = 1, show: Callable[[str], str] = repr
) -> str:
    """``" Did you mean 'x'?"`` (up to ``most`` of the names in ``known`` closest to
    ``name``, each written by ``show``), or ``""`` when none is close: the hint of every
    "no such name" message.

    Example:
        >>> did_you_mean("engnie", ["engine", "precision"])
        " Did you mean 'engine'?"
    """
    import difflib

    close = difflib.get_close_matches(name, list(known), n=most)
    return f" Did you mean {', '.join(map(show, close))}?" if close else ""


def first_line(error: BaseException | str, default: str = "") -> str:
    """The first line of an error's message (or of a text): what one-line messages quote
    of an exception they wrap."""
    text = str(error).strip()
    return text.splitlines()[0] if text else default
