"""Receptive-field rules for operations that read a window of positions, or all of them.

Convolutions and pooling grow the field by their kernel, per group of channels where the
channels' fields differ; adaptive pooling does so when its windows are even, and to 1 x 1
makes a value that sees the whole input, as attention does. A matrix product sees the whole
input when it contracts a spatial axis or multiplies two values that depend on the input.
"""

from __future__ import annotations

from ._field_state import (
    _WHOLE,
    _conv_update,
    _Field,
    _lost,
    _make_parts,
    _pairs,
    _select,
    _State,
    _union,
)
from ._value_states import _Result, _Rule, _ValueStates
from .tracing import OpRecord

__all__ = ["RULES"]

_CONVOLUTIONS = frozenset(
    {"convolution", "_convolution", "cudnn_convolution", "convolution_overrideable"}
)
_POOLING = ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d")
_ADAPTIVE_POOLING = ("_adaptive_avg_pool2d", "adaptive_max_pool2d")
_ATTENTION = (
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_flash_attention_forward",
    "_efficient_attention_forward",
)
_MATMUL = ("mm", "addmm", "bmm", "baddbmm")


def _convolution(values: _ValueStates, op: OpRecord) -> _Result:
    args = op.args
    kernel = list(args[1].shape[2:])
    return _window(
        op,
        values.state(args[0]),
        kernel,
        _pairs(args[3]),
        _pairs(args[4]),
        _pairs(args[5]),
        bool(args[6]),
    )


def _pooling(values: _ValueStates, op: OpRecord) -> _Result:
    name, args = op.name, op.args
    kernel = _pairs(args[1])
    stride = _pairs(args[2]) if len(args) > 2 and list(_pairs(args[2])) else kernel
    padding = _pairs(args[3]) if len(args) > 3 else [0, 0]
    dilation = _pairs(args[4]) if name != "avg_pool2d" and len(args) > 4 else [1, 1]
    return _window(op, values.state(args[0]), kernel, stride, padding, dilation, False)


def _window(
    op: OpRecord,
    sx: _State | None,
    kernel: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
) -> _State | None:
    """A convolution or pooling of ``kernel``, ``stride``, ``padding`` and ``dilation``."""
    if sx is None or sx.layout is None:
        return sx
    x = op.args[0]
    n = len(x.shape)
    if len(kernel) != 2 or sx.layout != ((n - 2, 1), (n - 1, 1)):
        return _lost(f"{op.name} over a non-2D or rearranged map ({op.module})", sx.whole)
    if transposed:
        return _lost(f"transposed convolution ({op.module})", sx.whole)
    assert sx.axes is not None

    def update(f: _Field | None) -> _Field | None:
        if f is None:
            return None
        a, b = (_conv_update(f[k], kernel[k], stride[k], padding[k], dilation[k]) for k in (0, 1))
        return (a, b)

    axes = update(sx.axes)
    assert axes is not None
    if sx.parts is None or sx.parts.dim != 1:
        return _State(sx.layout, axes, sx.whole)
    ranges = [(a, b, update(f)) for a, b, f in sx.parts.ranges]  # pooling: per channel
    if op.name in _CONVOLUTIONS:
        groups = op.args[8] if len(op.args) > 8 else 1
        if groups == 1:
            return _State(sx.layout, axes, sx.whole)  # every output reads every channel
        c_in, c_out = x.shape[1] // groups, op.outputs[0].shape[1] // groups
        ranges = [
            (
                g * c_out,
                (g + 1) * c_out,
                _union([f for _, _, f in _select(ranges, g * c_in, (g + 1) * c_in)]),
            )
            for g in range(groups)
        ]
    return _State(
        sx.layout, _union([f for _, _, f in ranges]), sx.whole, parts=_make_parts(1, ranges)
    )


def _adaptive_pooling(values: _ValueStates, op: OpRecord) -> _Result:
    x = op.args[0]
    sx = values.state(x)
    in_shape, out_shape = x.shape, op.outputs[0].shape
    if sx is None or sx.layout is None:
        return sx
    n = len(in_shape)
    if sx.layout != ((n - 2, 1), (n - 1, 1)):
        return _lost(f"{op.name} over a rearranged map ({op.module})", sx.whole)
    assert sx.axes is not None
    axes = []
    for k in range(2):
        i, o = in_shape[n - 2 + k], out_shape[n - 2 + k]
        if o == 1 and i > 1:
            return _WHOLE
        if i == o:
            axes.append(sx.axes[k])
        elif i % o == 0:
            axes.append(_conv_update(sx.axes[k], i // o, i // o, 0))
        else:
            return _lost(
                f"adaptive pooling from {i} to {o} has uneven windows ({op.module})", sx.whole
            )
    return _State(sx.layout, (axes[0], axes[1]), sx.whole)


def _attention(values: _ValueStates, op: OpRecord) -> _Result:
    return _WHOLE


def _matmul(values: _ValueStates, op: OpRecord) -> _Result:
    a, b = (op.args[1], op.args[2]) if op.name in ("addmm", "baddbmm") else op.args[:2]
    sa, sb = values.state(a), values.state(b)
    if sa is not None and sb is not None:
        return _WHOLE  # both operands depend on the input: positions are mixed
    s, info = (sa, a) if sa is not None else (sb, b)
    if s is None:
        return None
    if s.layout is None:
        if s.lost and s is sa and info.shape[0] == values.trace.batch_size:
            return _WHOLE  # (batch, everything else): a fully connected layer
        return s
    n = len(info.shape)
    contracted = n - 1 if s is sa else n - 2
    if contracted in {d for d, _ in s.layout}:
        return _WHOLE
    return s


RULES: dict[str, _Rule] = {
    **dict.fromkeys(_CONVOLUTIONS, _convolution),
    **dict.fromkeys(_POOLING, _pooling),
    **dict.fromkeys(_ADAPTIVE_POOLING, _adaptive_pooling),
    **dict.fromkeys(_ATTENTION, _attention),
    **dict.fromkeys(_MATMUL, _matmul),
}
