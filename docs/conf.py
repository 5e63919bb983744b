"""Sphinx configuration. Builds offline with warnings as errors: ``sphinx-build -W docs out``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import clothingclf
from clothingclf.settings import settings_table

# The settings table of the training page is derived from the declarations in
# clothingclf.settings, like the estimator's parameters and the CLI flags.
_generated = Path(__file__).resolve().parent / "_generated"
_generated.mkdir(exist_ok=True)
(_generated / "settings_table.rst").write_text(settings_table(), encoding="utf-8")

project = "clothingclf"
author = "clothingclf developers"
copyright = "2026, clothingclf developers"
release = clothingclf.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
]

# No network on the build machines: intersphinx inventories (python, numpy, torch,
# torchvision, pandas) cannot be fetched, so references to those projects stay plain
# text. Nitpicky mode still checks every reference into clothingclf itself.
nitpicky = True
_EXTERNAL = (
    "torch|torchvision|numpy|np|pandas|pd|PIL|sklearn|timm|os|pathlib|collections|typing|"
    "typing_extensions|argparse|io|enum|dataclasses|concurrent|onnx|onnxruntime|matplotlib"
)
_BARE_NAMES = (
    "Path|Module|Tensor|DataFrame|ndarray|Image|Sequence|Mapping|Iterable|Iterator|Callable|"
    "Literal|Any|Self|PathLike|ImageInput|Dataset|DataLoader|NDArray|dtype|device|Transform|"
    "Compose|int|float|str|bool|bytes|list|dict|tuple|set|None|object|type|optional|callable"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({_EXTERNAL})(\..*)?"),
    (r"py:.*", rf"({_BARE_NAMES})"),
    (r"py:.*", r"clothingclf\._kinds\..*"),  # the kinds of values a Setting takes
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Defaults as values: ClothingClassifier's settings are in its signature, not its source.
autodoc_preserve_defaults = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"clothingclf {release}"
exclude_patterns = ["_build"]
