"""Carry receptive fields along a traced graph (the machinery of ``receptive_field``).

Every value of the :class:`~clothingclf.analysis.tracing.Trace` gets a state: where its two
spatial axes are (which dimension, and how far inside a merged dimension), the field of one
unit along each axis, whether it depends on the whole input, and, when the layout could not be
followed, why. :class:`_Propagator` updates the states operation by operation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from math import prod
from typing import Any

import torch

from .tracing import VIEW_WRITE, OpRecord, TensorInfo, Trace

__all__: list[str] = []

Pair = tuple[int, int]


@dataclass(frozen=True)
class _Axis:
    size: int
    stride: int
    padding: int

    def centre2(self) -> int:
        """Twice the centre of unit 0's field, in input pixels (an integer)."""
        return self.size - 1 - 2 * self.padding


_Field = tuple[_Axis, _Axis]
# A range [start, end) of a dimension and its field (None: no local field).
_Range = tuple[int, int, "_Field | None"]


@dataclass(frozen=True)
class _Parts:
    """Fields that differ along one non-spatial dimension: the channels of a concatenation of
    branches with different fields (MixNet's mixed kernels), so that a slice of them gets the
    field of the channels it takes, not that of the whole map."""

    dim: int
    ranges: tuple[_Range, ...]


# A value's state: where its spatial axes are, their fields, and whether it sees everything.
@dataclass(frozen=True)
class _State:
    # For H and W: (dimension, inner): position = (index along dimension // inner) % extent.
    layout: tuple[Pair, Pair] | None
    axes: _Field | None  # the field of a unit: the union over the channels
    whole: bool = False  # depends on a value computed from the whole input
    lost: str | None = None  # why the spatial layout is no longer known
    parts: _Parts | None = None  # where the channels' fields differ, if they do


_WHOLE = _State(None, None, whole=True)


def _lost(reason: str, whole: bool = False) -> _State:
    # A value that depends on the whole input sees it, wherever its positions went; but its
    # local positions are still unknown, so a map it joins has no known field either.
    return _State(None, None, whole=whole, lost=reason)


def _conv_update(axis: _Axis, kernel: int, stride: int, padding: int, dilation: int = 1) -> _Axis:
    return _Axis(
        axis.size + dilation * (kernel - 1) * axis.stride,
        axis.stride * stride,
        axis.padding + padding * axis.stride,
    )


def _aligned(axes: list[_Axis]) -> bool:
    best = max(axes, key=lambda a: a.size)
    return all(a.stride == best.stride and a.centre2() == best.centre2() for a in axes)


def _union_axis(axes: list[_Axis]) -> _Axis:
    """The largest field if all share stride and centre, else the union of their extents."""
    if _aligned(axes):
        return max(axes, key=lambda a: a.size)
    start = min(-a.padding for a in axes)
    end = max(-a.padding + a.size - 1 for a in axes)
    return _Axis(end - start + 1, max(a.stride for a in axes), -start)


def _union(fields: list[_Field | None]) -> _Field | None:
    known = [f for f in fields if f is not None]
    if not known:
        return None
    return (_union_axis([f[0] for f in known]), _union_axis([f[1] for f in known]))


def _make_parts(dim: int, ranges: list[_Range]) -> _Parts | None:
    """Parts from ranges in order, neighbours with equal fields joined; None if uniform."""
    merged: list[_Range] = []
    for a, b, f in ranges:
        if a >= b:
            continue
        if merged and merged[-1][2] == f and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b, f)
        else:
            merged.append((a, b, f))
    return _Parts(dim, tuple(merged)) if len({f for _, _, f in merged}) > 1 else None


def _ranges(s: _State, dim: int, size: int) -> list[_Range]:
    if s.parts is not None and s.parts.dim == dim:
        return list(s.parts.ranges)
    return [(0, size, s.axes)]


def _select(ranges: list[_Range], start: int, end: int, step: int = 1) -> list[_Range]:
    """The ranges of the indices ``start, start + step, ...`` below ``end``, renumbered."""
    out = []
    for a, b, f in ranges:
        lo, hi = max(a, start), min(b, end)
        first, last = -(-(lo - start) // step), -(-(hi - start) // step)
        if lo < hi and first < last:
            out.append((first, last, f))
    return out


def _selection(
    s: _State, layout: tuple[Pair, Pair], dim: int | None, ranges: list[_Range]
) -> _State | None:
    """The state of the channels ``ranges`` of ``s`` (``dim`` None: that dimension is gone)."""
    axes = _union([f for _, _, f in ranges])
    if axes is None:
        return _WHOLE if s.whole else None
    parts = _make_parts(dim, ranges) if dim is not None else None
    return _State(layout, axes, s.whole, None, parts)


def _mapped(parts: _Parts | None, fn: Any) -> _Parts | None:
    """``parts`` with ``fn`` applied to the field of each range."""
    if parts is None:
        return None
    return _Parts(parts.dim, tuple((a, b, f if f is None else fn(f)) for a, b, f in parts.ranges))


def _moved_parts(parts: _Parts | None, mapping: dict[int, int]) -> _Parts | None:
    if parts is None:
        return None
    return _Parts(mapping.get(parts.dim, parts.dim), parts.ranges)


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
        for k in range(2):
            axes = [a[k] for a in spatial]
            if not _aligned(axes):
                self.misalignments.append(
                    f"{op.module or '(model)'}: {op.name} joins paths whose receptive fields "
                    f"do not line up along {'HW'[k]} (size/stride/padding "
                    + ", ".join(f"{a.size}/{a.stride}/{a.padding}" for a in axes)
                    + "); the union of the fields is carried on"
                )
        merged = _union(list(spatial))
        assert merged is not None
        return _State(layout, merged, whole=whole)

    def elementwise(
        self, op: OpRecord, out_shape: tuple[int, ...], sources: list[Any] | None = None
    ) -> _State | None:
        """Broadcasting element-wise rule, used for every operation not handled otherwise
        (pointwise ones; any other ends the tracking). ``sources``: the inputs to follow, if
        not all of them (and the operation is known to be element-wise in them)."""
        generic = sources is None
        candidates = op.tensor_inputs() if sources is None else sources
        inputs = [i for i in candidates if isinstance(i, TensorInfo) and i.node >= 0]
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
        shifts: list[int] = []
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
            shifts.append(shift)
        if not spatial:
            return _WHOLE if whole else None
        if generic and not _is_pointwise(op):
            # Assuming an unknown operation keeps positions could report a wrong field.
            return _lost(f"{op.name} is not modelled ({op.module or 'model'})", whole=whole)
        if len(layouts) > 1:
            return _lost(f"{op.name} combines differently laid out maps", whole=whole)
        result = self.merge(op, spatial, layouts.pop())
        parts = _pointwise_parts(spatial, shifts, out_shape)
        return _State(result.layout, result.axes, whole=whole, parts=parts)

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
            if isinstance(new, list):  # a split: one state per output
                for o, piece in zip(op.outputs, new, strict=True):
                    if piece is not None and o.node >= 0:
                        self.states[o.node] = piece
                continue
            if new is None:
                continue
            for o in outs:
                self.states[o.node] = new

    def apply(self, op: OpRecord) -> _State | list[_State | None] | None:
        name, args = op.name, op.args
        x: Any = args[0] if args else None
        sx = self.state(x)
        out_shape = op.outputs[0].shape
        if name in _CONVOLUTIONS:
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
            dim = op.kwargs.get("dim", args[1] if len(args) > 1 else 0) % len(out_shape)
            states = [self.state(t) for t in tensors]
            if name == "stack":  # a new dimension at ``dim``: the later ones move up
                states = [_shifted(s, dim) for s in states]
            for s in states:
                if s is not None and s.layout is not None and dim in {d for d, _ in s.layout}:
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
            result = self.merge(op, known, spatial[0].layout)
            ranges: list[_Range] = []
            offset = 0
            for t, s in zip(tensors, states, strict=True):
                size = 1 if name == "stack" else t.shape[dim]
                if s is None or s.axes is None:
                    ranges.append((offset, offset + size, None))
                else:
                    ranges += [(a + offset, b + offset, f) for a, b, f in _ranges(s, dim, size)]
                offset += size
            return replace(result, parts=_make_parts(dim, ranges))
        if name == VIEW_WRITE:
            return self.view_write(op)
        if name == "copy_":  # the destination now holds the source, broadcast to its shape
            return self.elementwise(op, out_shape, [args[1]])
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
            parts = sx.parts
            if parts is not None and x.shape[: parts.dim + 1] != out_shape[: parts.dim + 1]:
                parts = None  # the channels moved: their fields are taken together
            return _State(new_layout, sx.axes, sx.whole, parts=parts)
        if name == "permute":
            perm = {p % len(x.shape): new for new, p in enumerate(args[1])}
            return _State(
                _move(layout, perm), sx.axes, sx.whole, parts=_moved_parts(sx.parts, perm)
            )
        if name in ("transpose", "t"):
            n = len(x.shape)
            a, b = (args[1] % n, args[2] % n) if name == "transpose" else (0, 1)
            swap = {a: b, b: a}
            return _State(
                _move(layout, swap), sx.axes, sx.whole, parts=_moved_parts(sx.parts, swap)
            )
        # A value normalised with statistics of the whole map keeps its local field and
        # also sees the whole input, like a map multiplied by a squeeze-and-excitation gate.
        if name == "native_layer_norm":
            normed = set(range(len(x.shape) - len(args[1]), len(x.shape)))
            return replace(sx, whole=True) if normed & dims else sx
        if name == "native_group_norm":
            return replace(sx, whole=True)
        if name == "native_batch_norm" and len(args) > 5 and args[5]:
            return replace(sx, whole=True)  # batch statistics: training mode
        if name in ("_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax"):
            return replace(sx, whole=True) if args[1] % len(x.shape) in dims else sx
        if name in _CUMULATIVE:
            if op.kwargs.get("dim", args[1] if len(args) > 1 else 0) % len(x.shape) in dims:
                return _lost(f"{name} along a spatial axis ({op.module or 'model'})", sx.whole)
            return sx
        if name in _REDUCTIONS:
            where = _REDUCTIONS[name]
            reduced = op.kwargs.get("dim", args[where] if len(args) > where else None)
            if reduced is None or isinstance(reduced, bool):
                return _WHOLE
            reduced_dims = {d % len(x.shape) for d in _pairs(reduced, 1)}
            if reduced_dims & dims:
                return _WHOLE
            keepdim = len(out_shape) == len(x.shape)
            parts = sx.parts if sx.parts is not None and sx.parts.dim not in reduced_dims else None
            if keepdim:
                return replace(sx, parts=parts)
            mapping = {d: d - sum(r < d for r in reduced_dims) for d in range(len(x.shape))}
            return _State(
                _move(layout, mapping), sx.axes, sx.whole, parts=_moved_parts(parts, mapping)
            )
        if name in ("slice", "select", "split", "split_with_sizes", "unbind", "chunk", "narrow"):
            # split(x, size, dim), chunk(x, chunks, dim): the dim comes second; else first.
            where = 2 if name in ("split", "split_with_sizes", "chunk") else 1
            dim = op.kwargs.get("dim", args[where] if len(args) > where else 0) % len(x.shape)
            if dim not in dims:
                return self.channel_slice(op, sx, dim)
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

                def crop(f: _Field) -> _Field:
                    b = f[k]
                    moved = _Axis(b.size, b.stride * step, b.padding - start * b.stride)
                    return (moved, f[1]) if k == 0 else (f[0], moved)

                return _State(layout, (axes[0], axes[1]), sx.whole, parts=_mapped(sx.parts, crop))
            return _lost(f"{name} of a spatial axis ({op.module or 'model'})", sx.whole)
        if name in ("constant_pad_nd", "reflection_pad2d", "replication_pad2d"):
            # Reflected or replicated borders are read like zeros: exact for every unit whose
            # field is centred inside the image.
            pad = list(args[1])
            n = len(x.shape)
            shifts = [0, 0]  # padding added before each spatial axis
            for i in range(0, len(pad), 2):
                d = n - 1 - i // 2
                if d in dims:
                    if not _exclusive(layout, d, x.shape):
                        return _lost(f"padding of a merged spatial axis ({op.module})", sx.whole)
                    shifts[0 if layout[0][0] == d else 1] += pad[i]
                elif sx.parts is not None and d == sx.parts.dim and pad[i]:
                    sx = replace(sx, parts=None)  # channels padded: their fields taken together

            def padded(f: _Field) -> _Field:
                a, b = (
                    _Axis(f[k].size, f[k].stride, f[k].padding + shifts[k] * f[k].stride)
                    for k in (0, 1)
                )
                return (a, b)

            assert sx.axes is not None
            return _State(layout, padded(sx.axes), sx.whole, parts=_mapped(sx.parts, padded))
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

    def channel_slice(
        self, op: OpRecord, sx: _State, dim: int
    ) -> _State | list[_State | None] | None:
        """A slice or split along a non-spatial dimension: each piece keeps the field of the
        channels it takes (one state per output for a split)."""
        name, args, x = op.name, op.args, op.args[0]
        assert sx.layout is not None
        removes = name in ("select", "unbind")
        mapping = {d: d - (d > dim) for d in range(len(x.shape))} if removes else {}
        layout = _move(sx.layout, mapping)
        if sx.parts is None or sx.parts.dim != dim:
            parts = _moved_parts(sx.parts, mapping)
            return _State(layout, sx.axes, sx.whole, parts=parts)
        size = x.shape[dim]
        ranges = list(sx.parts.ranges)
        keep = None if removes else dim
        if name == "slice":
            start = args[2] if len(args) > 2 and args[2] is not None else 0
            end = args[3] if len(args) > 3 and args[3] is not None else size
            start, end = (v + size if v < 0 else v for v in (start, end))
            step = args[4] if len(args) > 4 else 1
            return _selection(
                sx, layout, keep, _select(ranges, max(0, start), min(end, size), step)
            )
        if name in ("select", "narrow"):
            start = args[2] + size if args[2] < 0 else args[2]
            end = start + (args[3] if name == "narrow" else 1)
            return _selection(sx, layout, keep, _select(ranges, start, end))
        pieces: list[_State | None] = []
        offset = 0
        for o in op.outputs:
            length = 1 if removes else o.shape[dim]
            pieces.append(_selection(sx, layout, keep, _select(ranges, offset, offset + length)))
            offset += length
        return pieces

    def view_write(self, op: OpRecord) -> _State | None:
        """A tensor that shares memory with one an in-place operation wrote to."""
        old, written = self.state(op.args[0]), self.state(op.args[1])
        known = [s for s in (old, written) if s is not None]
        if not known:
            return None
        whole = any(s.whole for s in known)
        if all(s.layout is None and not s.lost for s in known):
            return _WHOLE
        lost = next((s.lost for s in known if s.lost), None)
        if lost is None:
            lost = (
                f"{op.kwargs['op']} writes into memory shared with another view "
                f"({op.module or 'model'})"
            )
        return _lost(lost, whole)

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

        def update(f: _Field | None) -> _Field | None:
            if f is None:
                return None
            a, b = (
                _conv_update(f[k], kernel[k], stride[k], padding[k], dilation[k]) for k in (0, 1)
            )
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


_CONVOLUTIONS = frozenset(
    {"convolution", "_convolution", "cudnn_convolution", "convolution_overrideable"}
)


def _pointwise_parts(
    spatial: list[_State], shifts: list[int], out_shape: tuple[int, ...]
) -> _Parts | None:
    """The parts of an element-wise result: at each channel, the union of the inputs' fields."""
    dims = {s.parts.dim + shift for s, shift in zip(spatial, shifts, strict=True) if s.parts}
    if len(dims) != 1:
        return None  # none, or along different dimensions: the union is carried on
    dim = dims.pop()
    size = out_shape[dim]
    inputs = [
        _ranges(s, dim - shift, size) if s.parts is not None else [(0, size, s.axes)]
        for s, shift in zip(spatial, shifts, strict=True)
    ]
    cuts = sorted({c for rs in inputs for a, b, _ in rs for c in (a, b)})
    ranges: list[_Range] = []
    for lo, hi in pairwise(cuts):
        fields = [f for rs in inputs for a, b, f in rs if a <= lo and hi <= b]
        ranges.append((lo, hi, _union(fields)))
    return _make_parts(dim, ranges)


# Reductions, and which positional argument is their ``dim``.
_REDUCTIONS: dict[str, int] = {
    **dict.fromkeys(
        (
            "mean",
            "sum",
            "amax",
            "amin",
            "max",
            "min",
            "var",
            "std",
            "var_mean",
            "std_mean",
            "prod",
            "argmax",
            "argmin",
            "logsumexp",
            "nansum",
            "nanmean",
            "aminmax",
            "median",
            "nanmedian",
            "mode",
            "any",
            "all",
            "count_nonzero",
        ),
        1,
    ),
    **dict.fromkeys(("linalg_vector_norm", "norm", "kthvalue"), 2),
}
_CUMULATIVE = frozenset(
    {"cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "_cummax_helper", "_cummin_helper"}
)
# Not tagged pointwise by ATen, yet they keep every position where it is.
_KEEPS_POSITIONS = frozenset(
    {
        "alias",
        "expand",
        "clone",
        "_to_copy",
        "detach",
        "lift_fresh",
        "contiguous",
        "native_batch_norm",
        "_native_batch_norm_legit_no_training",
        "hardswish",
        "hardswish_",
        "native_dropout",
        "dropout",
        "alpha_dropout",
        "feature_dropout",
        "bernoulli",
        "_prelu_kernel",
        "prelu",
        "rrelu_with_noise",
        "log_sigmoid_forward",
        "where",
        "masked_fill",
        "masked_fill_",
        "fill",
        "fill_",
        "zero_",
        "rsub",
        "type_as",
        "copy",
        "lift_fresh_copy",
    }
)


def _is_pointwise(op: OpRecord) -> bool:
    """True when the operation computes each output element from the same position of its
    inputs (broadcasting allowed)."""
    if op.name in _KEEPS_POSITIONS:
        return True
    tags = getattr(op.func, "tags", ())
    return torch.Tag.pointwise in tags


def _shifted(s: _State | None, dim: int) -> _State | None:
    """``s`` after a new dimension is inserted at ``dim`` (``stack``)."""
    if s is None or s.layout is None:
        return s
    mapping = {d: d + (d >= dim) for d in range(max(d for d, _ in s.layout) + 1)}
    if s.parts is not None:
        mapping.setdefault(s.parts.dim, s.parts.dim + (s.parts.dim >= dim))
    return _State(_move(s.layout, mapping), s.axes, s.whole, s.lost, _moved_parts(s.parts, mapping))


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
