"""Carry receptive fields along a traced graph (the machinery of ``receptive_field``).

Every value of the :class:`~clothingclf.analysis.tracing.Trace` gets a state: where its two
spatial axes are (which dimension, and how far inside a merged dimension), the field of one
unit along each axis, whether it depends on the whole input, and, when the layout could not be
followed, why. :class:`_Propagator` updates the states operation by operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

from .tracing import OpRecord, TensorInfo, Trace

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
            # split(x, size, dim), chunk(x, chunks, dim): the dim comes second; else first.
            where = 2 if name in ("split", "split_with_sizes", "chunk") else 1
            dim = op.kwargs.get("dim", args[where] if len(args) > where else 0) % len(x.shape)
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
