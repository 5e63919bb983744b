"""The receptive field measured from gradients: an independent check of the traced one.

The gradient of one output unit with respect to the input is non-zero exactly on the pixels
that unit can see, provided nothing cancels or blocks the gradient on the way. The model is
therefore run with other weights, put back afterwards, so that nothing does:

* every weight is positive (``1 / (in_channels * sqrt(kernel area))`` for convolutions,
  ``1 / in_features`` for linear layers, 1 for scales, 0 for biases), and the input is all
  ones, so no sum cancels and values neither explode nor vanish too fast with depth;
* activations (ReLU, ReLU6, hard-swish, sigmoid, GELU, ...) and layer/group norms become the
  identity, so none saturates or zeroes a gradient; batch norm uses mean 0 and variance 1;
* max pooling becomes average pooling with the same window, so the gradient reaches the
  whole window and not only the maximum;
* weight standardisation (timm's ``StdConv2d``/``ScaledStdConv2d`` of NFNets and BiT, a
  batch norm of the weights) is skipped: equal weights would standardise to zero;
* the forward pass stops when the measured layer returns, so nothing after it runs (and no
  later in-place operation, such as MobileOne's ``out = scale_out; out += ...``, can change
  the measured output); the weights are broadcast views of one number each and the model is
  not copied, so even a 600-million-parameter network costs no memory;
* the gradient is taken in float32; a field whose edge contributions underflow (a network
  far deeper than the torchvision ones) would be measured too small.

Near the border of the input the measured field can be smaller than the traced one: input
rows that no unit reads at all (the last row dropped by a stride-2 convolution without
padding) have no gradient. Compare fields that lie inside the image.

A normalisation written out of elementary operations (timm's ``RmsNorm2d``:
``x * rsqrt(mean(x ** 2))``) is not recognised; being scale-invariant, its gradient cancels
(zero, or an overflow reported as an error), and such a layer cannot be measured.

With ``ignore_global_paths=True`` every value computed from a whole map passes no gradient:
reductions over two or more dimensions or over all of them, adaptive pooling to 1 x 1, and
products (``matmul``, ``einsum``, attention) of two operands that depend on the input or on
such a value. Each is replaced by ones cut from the input. What remains is the local,
convolutional field, which :func:`~clothingclf.analysis.receptive_field` reports beside
``sees_whole_input`` for maps behind squeeze-and-excitation gates or attention.

The network keeps its topology, kernels, strides, paddings and dilations, which is all the
receptive field depends on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..exceptions import AnalysisError
from .fields import receptive_field
from .tracing import _MAX_REAL_PIXELS, InputSize, _normalise_size

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
    *([F.rms_norm] if hasattr(F, "rms_norm") else []),
}
_MAX_POOL = {F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d}
_ADAPTIVE_MAX_POOL = {F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices}
_ADAPTIVE_AVG_POOL = {F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d}
# Reductions: global when they reduce two or more dimensions, or all of them.
_REDUCTIONS = {
    torch.mean,
    torch.sum,
    torch.amax,
    torch.amin,
    torch.std,
    torch.var,
    torch.norm,
    torch.logsumexp,
    torch.linalg.vector_norm,
    torch.Tensor.mean,
    torch.Tensor.sum,
    torch.Tensor.amax,
    torch.Tensor.amin,
    torch.Tensor.std,
    torch.Tensor.var,
    torch.Tensor.norm,
    torch.Tensor.logsumexp,
}
# Products that mix positions when both operands depend on the input (attention).
_PRODUCTS = {
    torch.matmul,
    torch.bmm,
    torch.baddbmm,
    torch.einsum,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.Tensor.bmm,
    F.scaled_dot_product_attention,
}


def _reduced_dims(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``dim`` argument of a reduction (``None``: all dimensions)."""
    if "dim" in kwargs:
        return kwargs["dim"]
    # norm(x, p, dim) and vector_norm(x, ord, dim) take the order first.
    where = 2 if func in (torch.norm, torch.Tensor.norm, torch.linalg.vector_norm) else 1
    return args[where] if len(args) > where else None


def _is_global_reduction(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    dim = _reduced_dims(func, args, kwargs)
    if dim is None:
        return True
    return not isinstance(dim, int) and len(dim) >= 2


def _depends_on_input(value: Any) -> int:
    """How many tensors in ``value`` (nested lists and tuples) require a gradient."""
    if isinstance(value, torch.Tensor):
        return int(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return sum(_depends_on_input(v) for v in value)
    return 0


class _Linearise(TorchFunctionMode):
    """Turn activations and norms into the identity, and max pooling into average pooling;
    with ``ignore_global_paths``, also detach every value computed from a whole map."""

    def __init__(self, ignore_global_paths: bool = False) -> None:
        super().__init__()
        self.ignore_global_paths = ignore_global_paths

    def __torch_function__(
        self,
        func: Any,
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _IDENTITY:
            return args[0] if args else kwargs["input"]
        if func is F.batch_norm and not _depends_on_input(args[0] if args else kwargs["input"]):
            return args[0] if args else kwargs["input"]  # weight standardisation: skip it
        if func in _MAX_POOL:
            return self._avg(*args, **kwargs)
        if func in _ADAPTIVE_MAX_POOL:
            x, size = args[0], args[1] if len(args) > 1 else kwargs["output_size"]
            func, args, kwargs = F.adaptive_avg_pool2d, (x, size), {}
        if self.ignore_global_paths and self._is_global(func, args, kwargs):
            # Cut from the input; ones (a gate of one) keep values from growing gate after
            # gate. It requires a gradient, so that a product with it counts as global.
            return torch.ones_like(func(*args, **kwargs)).requires_grad_(True)
        return func(*args, **kwargs)

    @staticmethod
    def _is_global(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if func in _ADAPTIVE_AVG_POOL:
            size = args[1] if len(args) > 1 else kwargs["output_size"]
            return size in (1, (1, 1), [1, 1])
        if func in _REDUCTIONS:
            return _is_global_reduction(func, args, kwargs)
        if func in _PRODUCTS:
            return _depends_on_input((args, list(kwargs.values()))) >= 2
        return False

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


class _Reached(Exception):
    """Raised by the hook on the measured layer: the rest of the forward pass is not needed."""


def _positive_values(model: nn.Module) -> dict[int, torch.Tensor]:
    """The positive weights and the buffers of the module docs, by the id of the tensor they
    stand in for (each weight a broadcast view of one number: no memory is allocated)."""
    values: dict[int, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            fill = 0.0
        elif p.dim() >= 2:
            fill = 1.0 / (p.shape[1] * p.shape[2:].numel() ** 0.5)
        else:
            fill = 1.0
        values[id(p)] = torch.full((), fill).expand(p.shape)
    for name, b in model.named_buffers():
        values[id(b)] = _buffer_value(name, b)
    return values


@contextlib.contextmanager
def _substituted(model: nn.Module, values: dict[int, torch.Tensor]) -> Iterator[None]:
    """Run the block with ``values`` in place of the model's parameters and buffers, and
    leave the model as it was: its own tensors back, and every other attribute a module sets
    or fills during the pass (timm's LeViT caches attention biases in a dict in evaluation
    mode) restored. (torch.func.functional_call would leave the values in place when one
    module appears twice in the model, as in ``Sequential(conv, relu, conv)``.)"""
    saved: list[tuple[dict[str, Any], str, Any]] = []
    attributes: list[tuple[nn.Module, dict[str, Any], list[tuple[Any, Any]]]] = []
    try:
        for module in model.modules():  # each module once
            contents = [(v, v.copy()) for v in vars(module).values() if isinstance(v, (dict, list))]
            attributes.append((module, dict(vars(module)), contents))
            stores: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for store in stores:
                for key, tensor in store.items():
                    if tensor is not None and id(tensor) in values:
                        saved.append((store, key, tensor))
                        store[key] = values[id(tensor)]
        yield
    finally:
        for store, key, tensor in reversed(saved):
            store[key] = tensor
        for module, before, contents in attributes:
            for container, copied in contents:
                container.clear()
                if isinstance(container, dict):
                    container.update(copied)
                else:
                    container.extend(copied)
            vars(module).clear()
            vars(module).update(before)


def _buffer_value(name: str, b: torch.Tensor) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    dtype = torch.float32 if b.is_floating_point() else b.dtype
    if leaf == "running_var":
        return torch.ones(b.shape)
    if leaf == "running_mean" or (b.device.type == "meta" and not b.is_floating_point()):
        return torch.zeros(b.shape, dtype=dtype)
    if b.device.type == "meta":  # a fixed filter (timm's blur pool), a scale: positive
        fill = 1.0 / (b.shape[1] * b.shape[2:].numel() ** 0.5) if b.dim() >= 2 else 1.0
        return torch.full(b.shape, fill)
    return b.detach().to("cpu", dtype)


def empirical_receptive_field(
    model: nn.Module | str,
    *,
    input_size: InputSize = (3, 224, 224),
    layer: str | None = None,
    ignore_global_paths: bool = False,
) -> EmpiricalReceptiveField:
    """Measure the receptive field of one unit from the gradient of the input.

    Runs a forward pass up to ``layer`` and a backward pass on the CPU, with positive weights
    in place of the model's (see the module docs); your model is not changed (its weights,
    modes and hooks are as before), and a model on the ``meta`` device works as well.
    Squeeze-and-excitation gates and attention make every unit see the whole input, and this
    measurement shows it, unless ``ignore_global_paths`` is set.

    Args:
        model: A module, or a torchvision model name.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side. Choose it larger than the field
            to measure the field unclipped.
        layer: Path of the module whose output to measure; by default the last module with a
            spatial output, as found by :func:`receptive_field`, at its last call. A module
            named here that runs more than once is measured at its first call.
        ignore_global_paths: Let no gradient through values computed from a whole map
            (see the module docs), to measure the local field of a map that also sees the
            whole input.

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
    if size[1] * size[2] > _MAX_REAL_PIXELS:
        raise AnalysisError(
            f"empirical_receptive_field runs the model forward and backward on a real input, "
            f"so it takes at most {_MAX_REAL_PIXELS:,} pixels ({size[1]} x {size[2]} given); use "
            "receptive_field, which traces any size on the meta device."
        )
    if isinstance(model, str):
        from .tracing import meta_model

        model = meta_model(model)
    layer, call, target = _layer_to_measure(model, size, layer)
    x = torch.ones((1, *size), requires_grad=True)
    out = _output_of(model, target, call, x, ignore_global_paths)
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise AnalysisError(
            f"the output of {layer!r} is not an N x C x H x W map (found "
            f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}); "
            "pass layer= naming a convolutional stage."
        )
    i, j = (out.shape[2] - 1) // 2, (out.shape[3] - 1) // 2
    r, c = _gradient_support(out, x, (i, j), layer)
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


def _layer_to_measure(
    model: nn.Module, size: tuple[int, int, int], layer: str | None
) -> tuple[str, int, nn.Module]:
    """The path of the module to measure, which of its calls (from 1), and the module."""
    call = 1
    if layer is None:  # the map receptive_field reports: the last call of its module
        rf = receptive_field(model, input_size=size)
        layer, call = rf.layer, sum(r.name == rf.layer for r in rf.layers)
    modules = dict(model.named_modules(remove_duplicate=False))
    if layer not in modules:
        raise AnalysisError(
            f"the model has no module {layer!r}; expected a path of model.named_modules(), "
            f"e.g. {next(iter(n for n in modules if n), '')!r}."
        )
    return layer, call, modules[layer]


def _output_of(
    model: nn.Module, target: nn.Module, call: int, x: torch.Tensor, ignore_global_paths: bool
) -> Any:
    """What ``target`` returns at its ``call``-th call (``None`` if it is not called that
    often); the forward pass from ``x`` stops there.

    The model itself runs, in evaluation mode, with the positive values in place of its own,
    and its tensors, modes and hooks are restored afterwards: no copy of the model is needed,
    which is most of the cost for a large one.
    """
    captured: list[Any] = []
    calls = [0]

    def stop(_m: nn.Module, _a: Any, out: Any) -> None:
        calls[0] += 1
        if calls[0] == call:
            captured.append(out)
            raise _Reached

    values = _positive_values(model)
    modes = [(m, m.training) for m in model.modules()]
    handle = target.register_forward_hook(stop)
    try:
        with (
            _substituted(model.eval(), values),
            _Linearise(ignore_global_paths),
            torch.enable_grad(),
        ):
            model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
        for m, training in modes:
            m.training = training
    return captured[0] if captured else None


def _gradient_support(
    out: torch.Tensor, x: torch.Tensor, unit: Pair, layer: str
) -> tuple[Pair, Pair]:
    """First and last input row, and column, where the gradient of ``unit`` is non-zero."""
    i, j = unit
    (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x)
    if not torch.isfinite(grad).all():
        raise AnalysisError(
            f"the gradient from {layer!r} overflowed: the network is too deep for this "
            "measurement, or it normalises with elementary operations (see the module docs). "
            "Measure an earlier layer with layer=..."
        )
    support = grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        raise AnalysisError(f"no gradient reached the input from {layer!r}; cannot measure it")
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))
