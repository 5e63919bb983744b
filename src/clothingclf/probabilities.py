"""From network outputs to the model's probabilities, written once.

A model of one or several networks (each with its own view of the photo) gives, for a
batch of photos, the probabilities

1. of each network: the softmax of its outputs;
2. of the model: their mean over the networks (:func:`network_mean`);
3. with test-time augmentation, the mean of (2) for the photos and for their mirror
   images (:func:`mirror_mean`; :func:`~clothingclf.backbones.mirrored` is the one flip);
4. calibrated (:class:`~clothingclf.calibration.Calibration`; the identity by default).

Validation in :meth:`~clothingclf.ClothingClassifier.fit`, every engine of ``predict``
(:mod:`clothingclf.engines`) and the exported graph (:class:`ProbabilityGraph`) go through
these functions, so the temperature ``fit`` calibrates is fitted on the numbers
``predict_proba`` computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .backbones import mirrored
from .calibration import Calibration

__all__ = [
    "INFERENCE_LAYOUT",
    "ProbabilityGraph",
    "Runner",
    "TorchRunner",
    "mirror_mean",
    "network_mean",
    "to_inference_layout",
]

#: Normalised float batches, one per network -> ``N x C`` probabilities, the mean over
#: the networks (steps 1 and 2).
Runner = Callable[[Sequence[torch.Tensor]], torch.Tensor]


#: Prediction runs in float32 in the channels-last layout, faster than the default layout
#: on the CPU (oneDNN) and on GPUs (cuDNN) with probabilities equal to ~1e-7. Fitted and
#: loaded models both use it, so save -> load gives identical probabilities.
INFERENCE_LAYOUT = torch.channels_last


def to_inference_layout(model: torch.nn.Module, device: torch.device) -> None:
    """Move ``model`` to ``device`` in the layout prediction uses, in evaluation mode."""
    model.to(device)
    model.to(memory_format=INFERENCE_LAYOUT).eval()


def network_mean(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The softmax of each network's outputs (``N x C`` each), averaged over the networks.

    Example:
        >>> network_mean([torch.zeros(1, 4)]).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """
    total: torch.Tensor | None = None
    for scores in outputs:
        probabilities = scores.softmax(1)
        total = probabilities if total is None else total + probabilities
    if total is None:
        raise ValueError("network_mean needs the outputs of at least one network")
    return total if len(outputs) == 1 else total / len(outputs)


def mirror_mean(
    run: Runner, inputs: Sequence[torch.Tensor], *, tta: bool, together: bool = True
) -> torch.Tensor:
    """``run(inputs)``, or with ``tta`` its mean with ``run`` on the mirror images.

    ``together`` runs the photos and their mirror images as one batch of twice the size
    (one call's overhead instead of two); the traced graph runs them apart, so that its
    batch axis stays free.

    Example:
        >>> run = lambda batches: network_mean([batches[0].sum((1, 2))])  # a score per column
        >>> x = torch.tensor([[[[0.0, 2.0]]]])
        >>> [round(p, 3) for p in run([x])[0].tolist()]
        [0.119, 0.881]
        >>> [round(p, 3) for p in mirror_mean(run, [x], tta=True)[0].tolist()]
        [0.5, 0.5]
    """
    if not tta:
        return run(inputs)
    if not together:
        return (run(inputs) + run([mirrored(batch) for batch in inputs])) / 2
    count = len(inputs[0])
    both = run([torch.cat([batch, mirrored(batch)]) for batch in inputs])
    return (both[:count] + both[count:]) / 2


class TorchRunner:
    """A :data:`Runner` of networks in eager PyTorch on their device: inputs in ``layout``
    (:data:`INFERENCE_LAYOUT` unless a fit runs without it), float32 (or under bfloat16
    autocast with ``bf16``), the softmax in float64 (on the CPU for a device without
    float64, such as Apple's MPS)."""

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        device: torch.device,
        *,
        bf16: bool,
        layout: torch.memory_format = INFERENCE_LAYOUT,
    ) -> None:
        self.models = list(models)
        self.device = device
        self.bf16 = bf16
        self.layout = layout

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for model, batch in zip(self.models, batches, strict=True):
            batch = batch.contiguous(memory_format=self.layout)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                scores = model(batch)
            outputs.append((scores.cpu() if scores.device.type == "mps" else scores).double())
        return network_mean(outputs)


class ProbabilityGraph(nn.Module):
    """The networks with steps 1 to 4 as one module, each network on its own input: what
    the compiled engines and the export trace.

    Example:
        >>> graph = ProbabilityGraph([nn.Flatten(), nn.Flatten()], tta=True)
        >>> graph(torch.zeros(2, 3, 1, 1), torch.ones(2, 3, 1, 1)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        networks: Sequence[torch.nn.Module],
        *,
        tta: bool,
        calibration: Calibration | None = None,
    ) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.tta = tta
        self.calibration = calibration or Calibration()

    def _run(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        return network_mean([network(x) for network, x in zip(self.networks, batches, strict=True)])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        mean = mirror_mean(self._run, inputs, tta=self.tta, together=False)
        return self.calibration.apply_tensor(mean)
