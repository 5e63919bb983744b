"""Copies of a network's weights: on the CPU (:func:`cpu_state`), and their exponential
moving average as training goes (:class:`Average`).

The weight average is our own because its decay ramps up over the first steps,
``min(decay, (1 + t) / (10 + t))``, where torch's ``get_ema_multi_avg_fn`` has a fixed
decay.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__: list[str] = []


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state on the CPU: what a checkpoint saves and a fit keeps."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class Average:
    """An exponential moving average of ``model``'s weights, as a model of its own.

    ``update`` after every optimiser step moves each floating-point entry of the state
    toward the model's by ``1 - d``, with ``d = min(decay, (1 + t) / (10 + t))`` at update
    ``t`` (so the first steps are not drowned by the starting weights); other entries
    (BatchNorm's step counters) are copied. The pairs of tensors are found once: the
    optimiser and ``load_state_dict`` change both models' tensors in place.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        theirs_by_name = model.state_dict()
        pairs = [(mine, theirs_by_name[name]) for name, mine in self.model.state_dict().items()]
        self._averages = [mine for mine, theirs in pairs if mine.is_floating_point()]
        self._targets = [theirs for mine, theirs in pairs if mine.is_floating_point()]
        self._copies = [(mine, theirs) for mine, theirs in pairs if not mine.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        if self._averages:
            torch._foreach_lerp_(self._averages, self._targets, 1.0 - decay)
        for mine, theirs in self._copies:
            mine.copy_(theirs)

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "state": cpu_state(self.model)}

    def load(self, saved: Mapping[str, Any]) -> None:
        self.model.load_state_dict(saved["state"])
        self.steps = int(saved["steps"])
