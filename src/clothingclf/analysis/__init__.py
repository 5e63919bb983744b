"""What a network costs and what it sees: exact FLOPs and receptive fields, by tracing.

Both reports come from one recorded forward pass on the ``meta`` device
(:mod:`clothingclf.analysis.tracing`), so they work for any PyTorch model, cost no memory,
take well under a second for a ResNet-50, and never change the model you pass.

* :func:`count_flops` -> :class:`FlopReport`: multiply-accumulates and FLOPs per operation,
  equal in total to :class:`torch.utils.flop_counter.FlopCounterMode`.
* :func:`receptive_field` -> :class:`ReceptiveField`: size, stride and padding of every
  layer's receptive field, over every branch of the graph.
* :func:`empirical_receptive_field` -> :class:`EmpiricalReceptiveField`: the same measured
  from gradients, an independent check.
* :func:`meta_model`: a torchvision model with its weights on ``meta``, to analyse big models
  for free.

Example:
    >>> from clothingclf import analysis
    >>> r = analysis.count_flops("resnet18", input_size=(3, 224, 224))
    >>> f"{r.total_macs / 1e9:.2f} GMACs = {r.total_flops / 1e9:.2f} GFLOPs"
    '1.81 GMACs = 3.63 GFLOPs'
    >>> analysis.receptive_field("resnet18").size
    (435, 435)
"""

from __future__ import annotations

from .empirical import EmpiricalReceptiveField, empirical_receptive_field
from .fields import LayerReceptiveField, ReceptiveField, receptive_field
from .flops import FlopReport, LayerFlops, OpTypeTotals, count_flops
from .tracing import meta_model

__all__ = [
    "EmpiricalReceptiveField",
    "FlopReport",
    "LayerFlops",
    "LayerReceptiveField",
    "OpTypeTotals",
    "ReceptiveField",
    "count_flops",
    "empirical_receptive_field",
    "meta_model",
    "receptive_field",
]
