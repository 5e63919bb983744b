"""Training: fine-tune networks on a training table, choosing epochs on a validation table.

The rooms:

* ``training/loop.py``: :func:`train_model`, one network's fit (the head-only
  stage, the epochs over all layers, validation, checkpoints and resume);
* ``training/augment.py``: the batches (random resized crops, flips, colour
  jitter, Mixup/CutMix on the decoded-image cache) and the progressive-resizing schedule;
* ``training/precision.py``: bfloat16 autocast and the memory layout;
* ``training/ensemble.py``: several networks, one per view, averaged;
* ``training/memory.py`` and ``training/processes.py``: how a
  fit runs: memory reuse on the heap, and torchrun process groups.

What a fit learns with and how it runs are declared in :mod:`clothingclf.settings`
(:class:`~clothingclf.settings.TrainConfig`, :class:`~clothingclf.settings.RunOptions`,
re-exported here).
"""

from __future__ import annotations

from ..settings import RECIPES, RunOptions, TrainConfig, resolve_config, resolve_options
from .ensemble import Ensemble, fit_networks, network_file
from .loop import TrainResult, train_model
from .precision import speed_settings

__all__ = [
    "RECIPES",
    "Ensemble",
    "RunOptions",
    "TrainConfig",
    "TrainResult",
    "fit_networks",
    "network_file",
    "resolve_config",
    "resolve_options",
    "speed_settings",
    "train_model",
]
