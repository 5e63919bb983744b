"""Receptive fields over the whole traced graph, branches and shortcuts included.

For every value of the forward pass the analysis carries, per spatial axis, three numbers in
input pixels (the notation of Araujo et al., "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019):

* **size** ``r``: how many input pixels one output unit sees;
* **stride** ``j``: how far apart, in input pixels, two neighbouring units are;
* **padding** ``p``: how far the field of the first unit starts before the image, so that
  unit ``i`` sees input pixels ``i * j - p`` to ``i * j - p + r - 1``.

A convolution or pooling of kernel ``k``, stride ``s``, padding ``q`` and dilation ``d`` maps
``(r, j, p)`` to ``(r + (d (k - 1)) j, j s, p + q j)``. Element-wise operations keep them.
Where paths meet (a residual addition, a concatenation) the fields must have the same stride
and the same centre, ``(r - 1) / 2 - p``; then the larger one is kept. Paths that do not line
up are not silently reconciled: the join is reported in
:attr:`~clothingclf.analysis.ReceptiveField.misalignments` (and the union of the fields is
carried on).

A value computed from the whole image (global pooling, a fully connected layer on a flattened
map, attention between positions) has no size: the analysis says it *sees the whole input*.
A spatial map that was multiplied by such a value (the squeeze-and-excitation gates of
EfficientNet, MobileNetV3 and RegNetY) keeps its convolutional field and is flagged
``sees_whole_input`` as well. Spatial positions are followed through reshapes and permutes
(ConvNeXt's channels-last linear layers, ViT's patch tokens); a reshape that splits a spatial
axis (window partitions) or a concatenation along one ends the tracking, and the layer says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

from torch import nn

from ..exceptions import AnalysisError
from .tracing import InputSize, OpRecord, TensorInfo, Trace, trace

__all__ = ["LayerReceptiveField", "ReceptiveField", "receptive_field"]

Pair = tuple[int, int]


@dataclass(frozen=True)
class _Axis:
    size: int
    stride: int
    padding: int

    def centre2(self) -> int:
        """Twice the centre of unit 0's field, in input pixels (an integer)."""
        return self.size - 1 - 2 * self.padding


# A value's state: where its spatial axes are, their fields, and whether it sees everything.
@dataclass(frozen=True)
class _State:
    # For H and W: (dimension, inner): position = (index along dimension // inner) % extent.
    layout: tuple[Pair, Pair] | None
    axes: tuple[_Axis, _Axis] | None
    whole: bool = False  # depends on a value computed from the whole input
    lost: str | None = None  # why the spatial layout is no longer known


_WHOLE = _State(None, None, whole=True)


def _lost(reason: str, whole: bool = False) -> _State:
    # A value that depends on the whole input sees it, wherever its positions went.
    return _WHOLE if whole else _State(None, None, lost=reason)


def _conv_update(axis: _Axis, kernel: int, stride: int, padding: int, dilation: int = 1) -> _Axis:
    return _Axis(
        axis.size + dilation * (kernel - 1) * axis.stride,
        axis.stride * stride,
        axis.padding + padding * axis.stride,
    )


def _pairs(value: Any, n: int = 2) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    return values * n if len(values) == 1 else values


class _Propagator:
    def __init__(self, t: Trace) -> None:
        self.trace = t
        self.states: dict[int, _State] = {}
        self.misalignments: list[str] = []
        self.states[t.input.node] = _State(((2, 1), (3, 1)), (_Axis(1, 1, 0), _Axis(1, 1, 0)))

    def state(self, info: Any) -> _State | None:
        if isinstance(info, TensorInfo) and info.node >= 0:
            return self.states.get(info.node)
        return None

    # -- merging -----------------------------------------------------------------------
    def merge(self, op: OpRecord, states: list[_State], layout: tuple[Pair, Pair]) -> _State:
        whole = any(s.whole for s in states)
        spatial = [s.axes for s in states if s.axes is not None]
        merged: list[_Axis] = []
        for k in range(2):
            axes = [a[k] for a in spatial]
            best = max(axes, key=lambda a: a.size)
            bad = [a for a in axes if a.stride != best.stride or a.centre2() != best.centre2()]
            if bad:
                start = min(-a.padding for a in axes)
                end = max(-a.padding + a.size - 1 for a in axes)
                self.misalignments.append(
                    f"{op.module or '(model)'}: {op.name} joins paths whose receptive fields "
                    f"do not line up along {'HW'[k]} (size/stride/padding "
                    + ", ".join(f"{a.size}/{a.stride}/{a.padding}" for a in axes)
                    + "); the union of the fields is carried on"
                )
                best = _Axis(end - start + 1, max(a.stride for a in axes), -start)
            merged.append(best)
        return _State(layout, (merged[0], merged[1]), whole=whole)

    def elementwise(self, op: OpRecord, out_shape: tuple[int, ...]) -> _State | None:
        """Broadcasting element-wise rule, used for every operation not handled otherwise."""
        inputs = [i for i in op.tensor_inputs() if i.node >= 0]
        states = [(i, self.states.get(i.node)) for i in inputs]
        known = [(i, s) for i, s in states if s is not None]
        if not known:
            return None
        lost = [s for _, s in known if s.lost]
        whole = any(s.whole for _, s in known)
        if lost:
            return _lost(lost[0].lost or "", whole=whole)
        layouts: set[tuple[Pair, Pair]] = set()
        spatial: list[_State] = []
        for info, s in known:
            if s.layout is None:
                continue
            shift = len(out_shape) - len(info.shape)
            ok = shift >= 0 and all(info.shape[d] == out_shape[d + shift] for d, _ in s.layout)
            if not ok:
                return _lost(f"{op.name} changes the spatial shape", whole=whole)
            layouts.add(
                ((s.layout[0][0] + shift, s.layout[0][1]), (s.layout[1][0] + shift, s.layout[1][1]))
            )
            spatial.append(s)
        if not spatial:
            return _WHOLE if whole else None
        if len(layouts) > 1:
            return _lost(f"{op.name} combines differently laid out maps", whole=whole)
        result = self.merge(op, spatial, layouts.pop())
        return _State(result.layout, result.axes, whole=whole)

    # -- the operations ----------------------------------------------------------------
    def run(self) -> None:
        for op in self.trace.ops:
            outs = [o for o in op.outputs if o.node >= 0]
            if not outs:
                continue
            try:
                new = self.apply(op)
            except (IndexError, TypeError, ValueError, KeyError) as error:
                new = _lost(f"{op.name} not understood ({error})")
            if new is None:
                continue
            for o in outs:
                self.states[o.node] = new

    def apply(self, op: OpRecord) -> _State | None:
        name, args = op.name, op.args
        x: Any = args[0] if args else None
        sx = self.state(x)
        out_shape = op.outputs[0].shape
        if name in ("convolution", "_convolution", "cudnn_convolution", "convolution_overrideable"):
            kernel = list(args[1].shape[2:])
            return self.window(
                op, sx, kernel, _pairs(args[3]), _pairs(args[4]), _pairs(args[5]), bool(args[6])
            )
        if name in ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d"):
            kernel = _pairs(args[1])
            stride = _pairs(args[2]) if len(args) > 2 and list(_pairs(args[2])) else kernel
            padding = _pairs(args[3]) if len(args) > 3 else [0, 0]
            dilation = _pairs(args[4]) if name != "avg_pool2d" and len(args) > 4 else [1, 1]
            return self.window(op, sx, kernel, stride, padding, dilation, False)
        if name in ("_adaptive_avg_pool2d", "adaptive_max_pool2d"):
            return self.adaptive(op, sx, x.shape, out_shape)
        if name in (
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_flash_attention_for_cpu",
            "_flash_attention_forward",
            "_efficient_attention_forward",
        ):
            return _WHOLE
        if name in ("mm", "addmm", "bmm", "baddbmm"):
            return self.matmul(op)
        if name in ("cat", "stack"):
            tensors = [t for t in args[0] if isinstance(t, TensorInfo)]
            dim = op.kwargs.get("dim", args[1] if len(args) > 1 else 0)
            states = [self.state(t) for t in tensors]
            for s in states:
                if (
                    s is not None
                    and s.layout is not None
                    and (name == "stack" or dim % len(out_shape) in {d for d, _ in s.layout})
                ):
                    return _lost(
                        f"{name} along a spatial axis ({op.module or 'model'})",
                        any(s2.whole for s2 in states if s2 is not None),
                    )
            known = [s for s in states if s is not None]
            if any(s.lost for s in known):
                return _lost(
                    next(s.lost for s in known if s.lost) or "", any(s.whole for s in known)
                )
            spatial = [s for s in known if s.layout is not None]
            if not spatial:
                return _WHOLE if known else None
            if len({s.layout for s in spatial}) != 1:
                return _lost(f"{name} of differently laid out maps", any(s.whole for s in known))
            assert spatial[0].layout is not None
            return self.merge(op, known, spatial[0].layout)
        if sx is None:
            return self.elementwise(op, out_shape)
        if sx.layout is None:  # whole or lost: stays so
            return self.elementwise(op, out_shape)
        layout = sx.layout
        dims = {d for d, _ in layout}
        if name in (
            "view",
            "_unsafe_view",
            "reshape",
            "unsqueeze",
            "squeeze",
            "flatten",
            "_reshape_alias",
            "unflatten",
        ):
            new_layout = _reshape_layout(x.shape, out_shape, layout)
            if new_layout is None:
                return _lost(f"{name} splits a spatial axis ({op.module or 'model'})", sx.whole)
            return _State(new_layout, sx.axes, sx.whole)
        if name == "permute":
            perm = [p % len(x.shape) for p in args[1]]
            return _State(
                _move(layout, {old: new for new, old in enumerate(perm)}), sx.axes, sx.whole
            )
        if name in ("transpose", "t"):
            n = len(x.shape)
            a, b = (args[1] % n, args[2] % n) if name == "transpose" else (0, 1)
            return _State(_move(layout, {a: b, b: a}), sx.axes, sx.whole)
        if name in ("native_layer_norm",):
            normed = set(range(len(x.shape) - len(args[1]), len(x.shape)))
            return _WHOLE if normed & dims else sx
        if name in ("native_group_norm",):
            return _WHOLE
        if name in ("_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax"):
            return _WHOLE if args[1] % len(x.shape) in dims else sx
        if name in (
            "mean",
            "sum",
            "amax",
            "amin",
            "max",
            "min",
            "var",
            "std",
            "var_mean",
            "prod",
            "argmax",
            "argmin",
            "logsumexp",
        ):
            reduced = op.kwargs.get("dim", args[1] if len(args) > 1 else None)
            if reduced is None or isinstance(reduced, bool):
                return _WHOLE
            reduced_dims = {d % len(x.shape) for d in _pairs(reduced, 1)}
            if reduced_dims & dims:
                return _WHOLE
            keepdim = len(out_shape) == len(x.shape)
            if keepdim:
                return sx
            return _State(
                _move(layout, {d: d - sum(r < d for r in reduced_dims) for d in dims}),
                sx.axes,
                sx.whole,
            )
        if name in ("slice", "select", "split", "split_with_sizes", "unbind", "chunk", "narrow"):
            dim = (args[1] if len(args) > 1 else 0) % len(x.shape)
            if dim not in dims:
                if name in ("select", "unbind"):
                    return _State(
                        _move(layout, {d: d - (d > dim) for d in dims}), sx.axes, sx.whole
                    )
                return sx
            if name == "slice" and _exclusive(layout, dim, x.shape):
                start = args[2] if len(args) > 2 and args[2] is not None else 0
                step = args[4] if len(args) > 4 else 1
                k = 0 if layout[0][0] == dim else 1
                axes = list(sx.axes or ())
                a = axes[k]
                start = max(0, start + x.shape[dim] if start < 0 else start)
                axes[k] = _Axis(a.size, a.stride * step, a.padding - start * a.stride)
                if out_shape[dim] == 0:
                    return None
                return _State(layout, (axes[0], axes[1]), sx.whole)
            return _lost(f"{name} of a spatial axis ({op.module or 'model'})", sx.whole)
        if name == "constant_pad_nd":
            pad = list(args[1])
            axes = list(sx.axes or ())
            n = len(x.shape)
            for i in range(0, len(pad), 2):
                d = n - 1 - i // 2
                before = pad[i]
                if d in dims:
                    if not _exclusive(layout, d, x.shape):
                        return _lost(f"padding of a merged spatial axis ({op.module})", sx.whole)
                    k = 0 if layout[0][0] == d else 1
                    a = axes[k]
                    axes[k] = _Axis(a.size, a.stride, a.padding + before * a.stride)
            return _State(layout, (axes[0], axes[1]), sx.whole)
        if name == "copy_":
            return self.state(args[1]) or sx
        if name in (
            "roll",
            "flip",
            "index",
            "gather",
            "index_select",
            "scatter",
            "index_put",
            "take",
            "masked_select",
            "nonzero",
            "sort",
            "topk",
        ):
            return _lost(f"{name} moves spatial positions ({op.module or 'model'})", sx.whole)
        if name in (
            "empty_like",
            "zeros_like",
            "ones_like",
            "full_like",
            "new_zeros",
            "new_empty",
            "new_ones",
            "new_full",
            "rand_like",
            "randn_like",
        ):
            return None
        return self.elementwise(op, out_shape)

    def window(
        self,
        op: OpRecord,
        sx: _State | None,
        kernel: list[int],
        stride: list[int],
        padding: list[int],
        dilation: list[int],
        transposed: bool,
    ) -> _State | None:
        if sx is None or sx.layout is None:
            return sx
        x = op.args[0]
        n = len(x.shape)
        if len(kernel) != 2 or sx.layout != ((n - 2, 1), (n - 1, 1)):
            return _lost(f"{op.name} over a non-2D or rearranged map ({op.module})", sx.whole)
        if transposed:
            return _lost(f"transposed convolution ({op.module})", sx.whole)
        assert sx.axes is not None
        axes = tuple(
            _conv_update(sx.axes[k], kernel[k], stride[k], padding[k], dilation[k])
            for k in range(2)
        )
        return _State(sx.layout, (axes[0], axes[1]), sx.whole)

    def adaptive(
        self, op: OpRecord, sx: _State | None, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> _State | None:
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

    def matmul(self, op: OpRecord) -> _State | None:
        a, b = (op.args[1], op.args[2]) if op.name in ("addmm", "baddbmm") else op.args[:2]
        sa, sb = self.state(a), self.state(b)
        if sa is not None and sb is not None:
            return _WHOLE  # both operands depend on the input: positions are mixed
        s, info = (sa, a) if sa is not None else (sb, b)
        if s is None:
            return None
        if s.layout is None:
            if s.lost and s is sa and info.shape[0] == self.trace.batch_size:
                return _WHOLE  # (batch, everything else): a fully connected layer
            return s
        n = len(info.shape)
        contracted = n - 1 if s is sa else n - 2
        if contracted in {d for d, _ in s.layout}:
            return _WHOLE
        return s


def _exclusive(layout: tuple[Pair, Pair], dim: int, shape: tuple[int, ...]) -> bool:
    """True when ``dim`` holds exactly one spatial axis and nothing else."""
    return sum(d == dim for d, _ in layout) == 1 and any(
        d == dim and inner == 1 for d, inner in layout
    )


def _move(layout: tuple[Pair, Pair], mapping: dict[int, int]) -> tuple[Pair, Pair]:
    return (
        (mapping.get(layout[0][0], layout[0][0]), layout[0][1]),
        (mapping.get(layout[1][0], layout[1][0]), layout[1][1]),
    )


def _reshape_layout(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], layout: tuple[Pair, Pair]
) -> tuple[Pair, Pair] | None:
    """Where the spatial axes land after a reshape, or ``None`` if one is split."""
    result = []
    for k, (dim, inner) in enumerate(layout):
        extent = _extent(in_shape, layout, k)
        flat_stride = inner * prod(in_shape[dim + 1 :])
        found = None
        for d in range(len(out_shape)):
            q = prod(out_shape[d + 1 :])
            if flat_stride % q == 0 and flat_stride >= q:
                new_inner = flat_stride // q
                if out_shape[d] % (new_inner * extent) == 0:
                    found = (d, new_inner)
                    break
        if found is None:
            return None
        result.append(found)
    return (result[0], result[1])


def _extent(shape: tuple[int, ...], layout: tuple[Pair, Pair], k: int) -> int:
    """Number of positions along spatial axis ``k``."""
    dim, inner = layout[k]
    other_dim, other_inner = layout[1 - k]
    size = shape[dim] // inner
    if other_dim == dim and other_inner > inner:
        size = other_inner // inner
    return size


@dataclass(frozen=True)
class LayerReceptiveField:
    """The receptive field of one module's output.

    Attributes:
        name: The module's path (``"layer1.0"``; ``""`` for the whole model).
        module_type: Its class name.
        output_shape: Shape of its output.
        size: ``(h, w)`` input pixels one output unit sees; ``None`` when it sees the whole
            input or the spatial layout is no longer known.
        stride: ``(h, w)`` distance in input pixels between neighbouring units, or ``None``.
        padding: ``(h, w)`` effective padding: unit 0's field starts this many pixels before
            the image, or ``None``.
        sees_whole_input: True when the output depends on every input pixel: global pooling,
            fully connected layers on a flattened map, attention, or a gate computed from
            such a value.
        note: Why ``size`` is missing when it is, else ``None``.
    """

    name: str
    module_type: str
    output_shape: tuple[int, ...]
    size: Pair | None
    stride: Pair | None
    padding: Pair | None
    sees_whole_input: bool
    note: str | None = None

    def describe(self) -> str:
        """The field in words: ``"435 x 435 px, stride 32"``, ``"whole input"``, ..."""
        if self.size is None:
            return "whole input" if self.sees_whole_input else f"unknown ({self.note})"
        assert self.stride is not None
        text = f"{_hw(self.size)} px, stride {_hw(self.stride)}"
        return text + " (and the whole input through a global path)" * self.sees_whole_input


def _hw(pair: Pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]} x {pair[1]}"


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of a model's last spatial feature map, and of every layer.

    Attributes:
        model: The model's torchvision name or class name.
        input_size: ``(C, H, W)`` it was computed for.
        size: ``(h, w)`` input pixels one unit of the last spatial feature map sees. It may
            exceed the input: it is a property of the architecture.
        stride: ``(h, w)`` its effective stride in input pixels.
        padding: ``(h, w)`` its effective padding.
        layer: The module whose output is that map: the last module call that returns an
            ``N x C x H x W`` map with a known field (``"layer4"`` of a ResNet).
        sees_whole_input: True when that map also depends on every input pixel (through
            squeeze-and-excitation gates or attention).
        output_sees_whole_input: True when the model's output depends on every input pixel
            (global pooling, a fully connected head, attention): true of every classifier.
        misalignments: One line per join of paths whose fields do not line up.
        layers: The field of every module's output, in the order the modules returned.
    """

    model: str
    input_size: tuple[int, int, int]
    size: Pair
    stride: Pair
    padding: Pair
    layer: str
    sees_whole_input: bool
    output_sees_whole_input: bool
    misalignments: tuple[str, ...]
    layers: tuple[LayerReceptiveField, ...]

    def unit_box(self, i: int, j: int, *, layer: str | None = None) -> tuple[Pair, Pair]:
        """Rows and columns (first, last, inclusive) of the input that unit ``(i, j)`` sees.

        Clipped to the image; compare it with :func:`empirical_receptive_field`.

        Args:
            i: Row of the unit in the feature map.
            j: Its column.
            layer: A module path of :attr:`layers`; by default the last spatial map.

        Raises:
            AnalysisError: If that layer has no receptive field of finite size.
        """
        size, stride, padding = self.size, self.stride, self.padding
        if layer is not None:
            rows = [r for r in self.layers if r.name == layer]
            if not rows or rows[-1].size is None:
                raise AnalysisError(
                    f"no finite receptive field for layer {layer!r}; expected one of the "
                    "layers whose size is not None."
                )
            row = rows[-1]
            assert row.stride is not None and row.padding is not None and row.size is not None
            size, stride, padding = row.size, row.stride, row.padding
        _, h, w = self.input_size
        top = i * stride[0] - padding[0]
        left = j * stride[1] - padding[1]
        return (
            (max(0, top), min(h - 1, top + size[0] - 1)),
            (max(0, left), min(w - 1, left + size[1] - 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "layer": self.layer,
            "sees_whole_input": self.sees_whole_input,
            "output_sees_whole_input": self.output_sees_whole_input,
            "misalignments": list(self.misalignments),
        }

    def table(self) -> str:
        """The per-layer fields as text, one module per line."""
        width = max((len(r.name) for r in self.layers), default=0)
        width = max(width, len("(model)"))
        lines = [f"{'layer'.ljust(width)}  {'output':<18}  receptive field"]
        for r in self.layers:
            shape = "x".join(map(str, r.output_shape))
            padding = f", padding {_hw(r.padding)}" if r.padding is not None else ""
            lines.append(
                f"{(r.name or '(model)').ljust(width)}  {shape:<18}  {r.describe()}{padding}"
            )
        return "\n".join(lines)

    def describe(self) -> str:
        """The field in one line: ``"435 px, stride 32, padding 217 (output of layer4); ..."``."""
        text = (
            f"{_hw(self.size)} px, stride {_hw(self.stride)}, padding {_hw(self.padding)} "
            f"(output of {self.layer or 'the model'})"
        )
        if self.sees_whole_input:
            text += "; it also sees the whole input through a global path"
        if self.output_sees_whole_input:
            text += "; the model's output sees the whole input"
        return text

    def __str__(self) -> str:
        head = f"{self.model} at {'x'.join(map(str, self.input_size))}: {self.describe()}"
        return "\n".join([head, *[f"misaligned: {m}" for m in self.misalignments]])


def receptive_field_from_trace(t: Trace) -> ReceptiveField:
    """Build a :class:`ReceptiveField` from a :class:`~clothingclf.analysis.tracing.Trace`."""
    prop = _Propagator(t)
    prop.run()
    rows = []
    for call in t.modules:
        out = call.output
        state = prop.states.get(out.node) if out is not None and out.node >= 0 else None
        if out is None:
            continue
        if state is None or state.axes is None:
            rows.append(
                LayerReceptiveField(
                    call.name,
                    call.module_type,
                    out.shape,
                    None,
                    None,
                    None,
                    sees_whole_input=state is not None and state.whole and not state.lost,
                    note=(state.lost if state is not None else "does not depend on the input"),
                )
            )
            continue
        h, w = state.axes
        rows.append(
            LayerReceptiveField(
                call.name,
                call.module_type,
                out.shape,
                (h.size, w.size),
                (h.stride, w.stride),
                (h.padding, w.padding),
                sees_whole_input=state.whole,
            )
        )
    maps = [r for r in rows if r.size is not None and len(r.output_shape) == 4]
    if len(maps) > 1 and maps[-1].name == "":  # prefer the submodule that made the same map
        a, b = maps[-1], maps[-2]
        if (a.size, a.stride, a.padding, a.output_shape) == (
            b.size,
            b.stride,
            b.padding,
            b.output_shape,
        ):
            maps = maps[:-1]
    last: tuple[Pair, Pair, Pair, bool] | None = None
    layer = ""
    if maps:
        row = maps[-1]
        assert row.stride is not None and row.padding is not None and row.size is not None
        last, layer = (row.size, row.stride, row.padding, row.sees_whole_input), row.name
    else:  # no module returns a spatial map: take the last spatial value of the graph
        for op in t.ops:
            for o in op.outputs:
                s = prop.states.get(o.node) if o.node >= 0 else None
                if s is not None and s.axes is not None and s.layout is not None:
                    if s.layout[0][0] == s.layout[1][0]:
                        continue  # a flattened map: no longer an image
                    h, w = s.axes
                    last = ((h.size, w.size), (h.stride, w.stride), (h.padding, w.padding), s.whole)
    if last is None:
        raise AnalysisError(
            f"{t.model_name} has no spatial feature map to measure at input size {t.input_size}; "
            "expected a network of 2-D convolutions or pooling over N x C x H x W images."
        )
    outs = [prop.states.get(o.node) for o in t.outputs if o.node >= 0]
    output_whole = bool(outs) and all(s is not None and s.whole and s.axes is None for s in outs)
    return ReceptiveField(
        model=t.model_name,
        input_size=t.input_size,
        size=last[0],
        stride=last[1],
        padding=last[2],
        layer=layer,
        sees_whole_input=last[3],
        output_sees_whole_input=output_whole,
        misalignments=tuple(dict.fromkeys(prop.misalignments)),
        layers=tuple(rows),
    )


def receptive_field(
    model: nn.Module | str, *, input_size: InputSize = (3, 224, 224)
) -> ReceptiveField:
    """Compute the receptive field of every layer by carrying it along the traced graph.

    Every path is followed (residual shortcuts, Inception branches, DenseNet concatenations),
    dilation is honoured, and joins of paths that do not line up are reported. The input size
    matters only where the architecture depends on it (adaptive pooling).

    Args:
        model: A module (on any device, or on ``meta``), or a torchvision model name.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side.

    Returns:
        The :class:`ReceptiveField`.

    Raises:
        AnalysisError: If the model has no spatial feature map, or cannot run at that size.

    Example:
        >>> from clothingclf import analysis
        >>> rf = analysis.receptive_field("resnet18")
        >>> rf.size, rf.stride, rf.padding, rf.layer
        ((435, 435), (32, 32), (217, 217), 'layer4')
        >>> analysis.receptive_field("vgg16").size, analysis.receptive_field("alexnet").size
        ((212, 212), (195, 195))
        >>> rf.output_sees_whole_input, rf.layers[-1].describe()
        (True, 'whole input')
    """
    return receptive_field_from_trace(trace(model, input_size=input_size))
