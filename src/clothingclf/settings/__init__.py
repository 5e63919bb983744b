"""Every setting of a fit, declared once: its type, default per recipe, bounds and help.

Two groups, kept apart:

* :class:`TrainConfig`: what the model learns with (epochs, learning rate, augmentation,
  views, ...). It is saved in model files and training checkpoints, and a resumed fit must
  keep it. :func:`resolve_config` fills it from a recipe (:data:`RECIPES`) and overrides.
* :class:`RunOptions`: how this run executes (decoding workers, progress, the image cache,
  precision, compilation, memory reuse). Never saved; a resumed run may change it.

Each field is declared with ``setting(...)`` or ``option(...)``, and everything else is
derived from that declaration: the recipes, the validation and its messages, the
:class:`~clothingclf.ClothingClassifier` parameters, the ``clothingclf train`` flags, the
settings table of the docs (:func:`settings_table`), the settings a resumed fit must keep
(:func:`resume_settings`) and the values older files are read with (:func:`implied_values`).
Adding a setting means adding one field to :class:`TrainConfig` (``settings/config.py``)
or :class:`RunOptions` (``settings/options.py``), with ``resume=True`` if a resumed fit
must keep it, and ``added=`` the coming release with ``implied=`` the value older files
ran with (:class:`Setting`), and using it where it acts. ``settings/declaration.py`` holds
how a declaration is made, ``settings/derived.py`` what is derived from all of them.
"""

from __future__ import annotations

from typing import Any

from .config import RECIPE_NAMES, TrainConfig, resolve_config
from .declaration import Setting, declared_settings
from .derived import all_settings, implied_values, resume_settings, settings_table
from .options import RunOptions, resolve_options

__all__ = [
    "RECIPES",
    "RECIPE_BACKBONES",
    "RECIPE_NAMES",
    "RunOptions",
    "Setting",
    "TrainConfig",
    "all_settings",
    "implied_values",
    "resolve_config",
    "resolve_options",
    "resume_settings",
    "settings_table",
]

#: The backbone each recipe was measured with, used when none is given (the study's
#: ResNet-18 for ``"seed"``, EfficientNet-Lite0 with ImageNet weights from pip for ``"fast"``).
RECIPE_BACKBONES: dict[str, str] = {"seed": "resnet18", "fast": "efficientnet_lite0"}

#: The named recipes, each a dict of every field of :class:`TrainConfig` except ``recipe``:
#: ``"seed"``, the original study exactly, and ``"fast"``, two networks (the centre square
#: and the whole photo) averaged, more accurate than the study in 40 % of its image-passes.
RECIPES: dict[str, dict[str, Any]] = {
    recipe: {s.name: s.defaults[recipe] for s in declared_settings(TrainConfig)}
    for recipe in RECIPE_NAMES
}
