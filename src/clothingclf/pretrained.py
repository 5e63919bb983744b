"""What ships inside the package: trained clothing models and a few real photos.

:meth:`ClothingClassifier.pretrained() <clothingclf.ClothingClassifier.pretrained>` loads a
model named here from the installed package: no download and no training. Each model's
card (data, licence, recipe, test metrics per class, what it suits and where it fails) is
in ``docs/model_card.rst`` and in the file itself (``model_card_``).

:func:`sample_photos` lists the photos that ``clothingclf demo`` labels: real photos of
the clothing-dataset's test split (CC0), stored as small JPEGs.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from .exceptions import InvalidParameterError, ModelFileError, did_you_mean

__all__ = ["DEFAULT_MODEL", "list_pretrained", "pretrained_file", "sample_photos"]

#: The model :meth:`~clothingclf.ClothingClassifier.pretrained` loads when given no name.
DEFAULT_MODEL = "clothing18-lite0"

_MODELS = {
    DEFAULT_MODEL: "clothing18-lite0.safetensors",
    # the 0.2 model, two networks with mirror passes (four passes per photo): the teacher
    # the default was distilled from, kept by name (its model card says when to choose it)
    f"{DEFAULT_MODEL}-pair": "clothing18-lite0-pair.safetensors",
}


def _package_folder(name: str) -> Path:
    return Path(str(resources.files("clothingclf"))) / name


def list_pretrained() -> list[str]:
    """The names of the models inside the package.

    Example:
        >>> list_pretrained()
        ['clothing18-lite0', 'clothing18-lite0-pair']
    """
    return sorted(_MODELS)


def pretrained_file(name: str = DEFAULT_MODEL) -> Path:
    """The file of the bundled model ``name``.

    Args:
        name: One of :func:`list_pretrained`.

    Returns:
        The path of its safetensors file inside the installed package.

    Raises:
        InvalidParameterError: No model of that name ships with this release.
        ModelFileError: The package is installed without its model file (a broken
            install or a source tree without it).

    Example:
        >>> pretrained_file().name
        'clothing18-lite0.safetensors'
    """
    if not isinstance(name, str):
        raise InvalidParameterError(
            f"The bundled model's name must be a str, one of {', '.join(list_pretrained())}; "
            f"found {type(name).__name__}."
        )
    if name not in _MODELS:
        hint = did_you_mean(name, _MODELS)
        raise InvalidParameterError(
            f"No bundled model named {name!r}; this release has {', '.join(list_pretrained())}."
            f"{hint}"
        )
    path = _package_folder("models") / _MODELS[name]
    if not path.is_file():
        raise ModelFileError(
            f"The bundled model file {str(path)!r} is missing from this installation of "
            "clothingclf. Reinstall it: pip install --force-reinstall clothingclf."
        )
    return path


def sample_photos() -> pd.DataFrame:
    """The real photos bundled with the package, with their true labels.

    Returns:
        A table with columns ``path`` (absolute) and ``label``, one row per photo, in a
        fixed order: the first photo of each class in the clothing-dataset's test split
        (seed 42), resized to 288 px on the shorter side.

    Example:
        >>> photos = sample_photos()
        >>> list(photos.columns), len(photos) >= 12
        (['path', 'label'], True)
    """
    folder = _package_folder("samples")
    table = pd.read_csv(folder / "samples.csv")
    table["path"] = [str(folder / name) for name in table["image"]]
    return table[["path", "label"]]
