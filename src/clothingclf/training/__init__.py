"""Training: fine-tune networks on a training table, choosing epochs on a validation table.

The rooms:

* ``training/loop.py``: :func:`train_model`, one network's fit (the head-only
  stage, the epochs over all layers, validation, checkpoints and resume);
* ``training/prepare.py``: what a fit is made of before its first step (the data, the
  loss, the optimiser and its schedule);
* ``training/steps.py``: the schedule, the loss, the optimiser, the validation pass, the
  head-only stage and the progress output;
* ``training/state.py`` and ``training/averaging.py``: the state of a fit as it trains and
  its checkpoint, and the moving average of the weights;
* ``training/inputs.py`` and ``training/augment.py``: the decoded-image cache of each
  split, and the batches (random resized crops, flips, colour jitter, Mixup/CutMix) and the
  progressive-resizing schedule;
* ``training/precision.py``: bfloat16 autocast and the memory layout;
* ``training/ensemble.py``: several networks, one per view, averaged;
* ``training/memory.py`` and ``training/processes.py``: how a
  fit runs: memory reuse on the heap, and torchrun process groups.

A name without a leading underscore in these modules is this package's internal API, which
its other modules import; a name with one is private to its module. What the rest of the
library uses is exported here.

What a fit learns with and how it runs are declared in :mod:`clothingclf.settings`
(:class:`~clothingclf.settings.TrainConfig`, :class:`~clothingclf.settings.RunOptions`,
re-exported here).
"""

from __future__ import annotations

from ..settings import RECIPES, RunOptions, TrainConfig, resolve_config, resolve_options
from .ensemble import Ensemble, fit_networks, network_file
from .loop import TrainResult, train_model
from .precision import speed_settings
from .tables import FitTables, fit_tables, require_columns

__all__ = [
    "RECIPES",
    "Ensemble",
    "FitTables",
    "RunOptions",
    "TrainConfig",
    "TrainResult",
    "fit_networks",
    "fit_tables",
    "network_file",
    "require_columns",
    "resolve_config",
    "resolve_options",
    "speed_settings",
    "train_model",
]
