"""The receptive field measured from gradients: an independent check of the traced one.

The gradient of one output unit with respect to the input is non-zero exactly on the pixels
that unit can see, provided nothing cancels or blocks the gradient on the way. A copy of the
model is therefore prepared so that nothing does:

* every weight is positive (``1 / (in_channels * sqrt(kernel area))`` for convolutions,
  ``1 / in_features`` for linear layers, 1 for scales, 0 for biases), and the input is all
  ones, so no sum cancels and values neither explode nor vanish too fast with depth;
* activations (ReLU, ReLU6, hard-swish, sigmoid, GELU, ...) and layer/group norms become the
  identity, so none saturates or zeroes a gradient; batch norm uses mean 0 and variance 1;
* max pooling becomes average pooling with the same window, so the gradient reaches the
  whole window and not only the maximum;
* the gradient is taken in float32; a field whose edge contributions underflow (a network
  far deeper than the torchvision ones) would be measured too small.

Near the border of the input the measured field can be smaller than the traced one: input
rows that no unit reads at all (the last row dropped by a stride-2 convolution without
padding) have no gradient. Compare fields that lie inside the image.

The network keeps its topology, kernels, strides, paddings and dilations, which is all the
receptive field depends on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..exceptions import AnalysisError
from .receptive_field import receptive_field
from .tracing import InputSize, _normalise_size

__all__ = ["EmpiricalReceptiveField", "empirical_receptive_field"]

Pair = tuple[int, int]


@dataclass(frozen=True)
class EmpiricalReceptiveField:
    """Where the gradient of one output unit reaches the input.

    Attributes:
        layer: The module whose output was measured.
        unit: ``(i, j)`` of the unit, the centre of that output map.
        rows: First and last input row with a non-zero gradient.
        cols: First and last input column with a non-zero gradient.
        size: ``(h, w)`` extent of that support, clipped to the input.
        clipped: True when the support touches the border of the input, so the true field
            may be larger than ``size``.
        input_size: ``(C, H, W)`` of the input.
    """

    layer: str
    unit: Pair
    rows: Pair
    cols: Pair
    size: Pair
    clipped: bool
    input_size: tuple[int, int, int]


_IDENTITY = {
    F.relu,
    F.relu_,
    F.relu6,
    F.hardtanh,
    F.hardtanh_,
    F.hardswish,
    F.hardsigmoid,
    F.silu,
    F.gelu,
    F.mish,
    F.elu,
    F.leaky_relu,
    F.sigmoid,
    F.tanh,
    F.layer_norm,
    F.group_norm,
    F.dropout,
    torch.relu,
    torch.relu_,
    torch.sigmoid,
    torch.tanh,
    torch.Tensor.relu,
    torch.Tensor.relu_,
    torch.Tensor.sigmoid,
    torch.Tensor.sigmoid_,
    torch.Tensor.tanh,
}
_MAX_POOL = {F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d}
_ADAPTIVE_MAX_POOL = {F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices}


class _Linearise(TorchFunctionMode):
    """Turn activations and norms into the identity, and max pooling into average pooling."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _IDENTITY:
            return args[0] if args else kwargs["input"]
        if func in _MAX_POOL:
            return self._avg(*args, **kwargs)
        if func in _ADAPTIVE_MAX_POOL:
            x, size = args[0], args[1] if len(args) > 1 else kwargs["output_size"]
            return F.adaptive_avg_pool2d(x, size)
        return func(*args, **kwargs)

    @staticmethod
    def _avg(
        input: torch.Tensor,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> torch.Tensor:
        if dilation not in (1, (1, 1), [1, 1]):
            raise AnalysisError(
                "empirical_receptive_field cannot replace a dilated max pooling; expected "
                f"dilation 1, found {dilation}. Use receptive_field() for this model."
            )
        stride = stride if stride not in (None, [], ()) else kernel_size
        return F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad=True)


def _positive_copy(model: nn.Module) -> nn.Module:
    memo: dict[int, Any] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        value = torch.zeros(p.shape)
        if name.endswith("bias"):
            pass
        elif p.dim() >= 2:
            value.fill_(1.0 / (p.shape[1] * p.shape[2:].numel() ** 0.5))
        else:
            value.fill_(1.0)
        memo[id(p)] = nn.Parameter(value, requires_grad=False)
    for name, b in model.named_buffers(remove_duplicate=False):
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            value = torch.ones(b.shape)
        elif b.device.type == "meta" or leaf == "running_mean":
            value = torch.zeros(b.shape, dtype=torch.float32 if b.is_floating_point() else b.dtype)
        else:
            value = b.detach().to("cpu", torch.float32 if b.is_floating_point() else b.dtype)
        memo[id(b)] = value
    return copy.deepcopy(model, memo).eval()


def empirical_receptive_field(
    model: nn.Module | str,
    *,
    input_size: InputSize = (3, 224, 224),
    layer: str | None = None,
) -> EmpiricalReceptiveField:
    """Measure the receptive field of one unit from the gradient of the input.

    Runs a forward and a backward pass on the CPU on a copy of the model with
    positive weights (see the module docs); your model is not changed, and a model on the
    ``meta`` device works as well. Squeeze-and-excitation gates and attention make every unit
    see the whole input, and this measurement shows it.

    Args:
        model: A module, or a torchvision model name.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side. Choose it larger than the field
            to measure the field unclipped.
        layer: Path of the module whose output to measure; by default the last module with a
            spatial output, as found by :func:`receptive_field`.

    Returns:
        The :class:`EmpiricalReceptiveField` of the centre unit of that output.

    Raises:
        AnalysisError: If the layer does not exist or its output is not a spatial map.

    Example:
        >>> from clothingclf import analysis
        >>> e = analysis.empirical_receptive_field("alexnet", input_size=256, layer="features")
        >>> e.size, e.clipped, e.rows
        ((195, 195), False, (30, 224))
        >>> analysis.receptive_field("alexnet", input_size=256).unit_box(*e.unit)
        ((30, 224), (30, 224))
    """
    size = _normalise_size(input_size)
    if isinstance(model, str):
        from .tracing import meta_model

        model = meta_model(model)
    if layer is None:
        layer = receptive_field(model, input_size=size).layer
    modules = dict(model.named_modules())
    if layer not in modules:
        raise AnalysisError(
            f"the model has no module {layer!r}; expected a path of model.named_modules(), "
            f"e.g. {next(iter(n for n in modules if n), '')!r}."
        )
    net = _positive_copy(model)
    captured: list[torch.Tensor] = []
    target = dict(net.named_modules())[layer]
    handle = target.register_forward_hook(lambda _m, _a, out: captured.append(out))
    x = torch.ones((1, *size), requires_grad=True)
    try:
        with _Linearise(), torch.enable_grad():
            net(x)
    finally:
        handle.remove()
    out = captured[0] if captured else None
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise AnalysisError(
            f"the output of {layer!r} is not an N x C x H x W map (found "
            f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}); "
            "pass layer= naming a convolutional stage."
        )
    i, j = (out.shape[2] - 1) // 2, (out.shape[3] - 1) // 2
    (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x)
    if not torch.isfinite(grad).all():
        raise AnalysisError(
            f"the gradient from {layer!r} overflowed; the network is too deep for this "
            "measurement. Measure an earlier layer with layer=..."
        )
    support = grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        raise AnalysisError(f"no gradient reached the input from {layer!r}; cannot measure it")
    r = (int(rows[0]), int(rows[-1]))
    c = (int(cols[0]), int(cols[-1]))
    _, h, w = size
    return EmpiricalReceptiveField(
        layer=layer,
        unit=(i, j),
        rows=r,
        cols=c,
        size=(r[1] - r[0] + 1, c[1] - c[0] + 1),
        clipped=r[0] == 0 or c[0] == 0 or r[1] == h - 1 or c[1] == w - 1,
        input_size=size,
    )
