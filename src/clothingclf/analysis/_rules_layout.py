"""Receptive-field rules for operations that move a map's positions or take some of them.

Reshapes and permutes carry the spatial axes to their new dimensions (a reshape that splits
one ends the tracking); a slice of a spatial axis shifts and strides the field, and a slice
or split of the channels gives each piece the field of the channels it takes; padding moves
the field's start. Operations that reorder positions (``roll``, ``gather``, ``sort``, ...)
end the tracking, and tensors created only from another's shape (``zeros_like``) do not
depend on the input. Each rule applies to a map whose spatial axes are known.
"""

from __future__ import annotations

from dataclasses import replace

from ._field_state import (
    _Axis,
    _exclusive,
    _Field,
    _lost,
    _mapped,
    _move,
    _moved_parts,
    _reshape_layout,
    _select,
    _selection,
    _State,
)
from ._value_states import _Map, _MapRule, _Result, _ValueStates
from .tracing import OpRecord

__all__ = ["MAP_RULES"]

_RESHAPES = (
    "view",
    "_unsafe_view",
    "reshape",
    "unsqueeze",
    "squeeze",
    "flatten",
    "_reshape_alias",
    "unflatten",
)
_SLICES = ("slice", "select", "split", "split_with_sizes", "unbind", "chunk", "narrow")
_PADDING = ("constant_pad_nd", "reflection_pad2d", "replication_pad2d")
_MOVES_POSITIONS = (
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
)
_SHAPE_ONLY = (
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
)


def _reshape(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    sx, x, out_shape = m.state, m.x, m.out_shape
    new_layout = _reshape_layout(x.shape, out_shape, m.layout)
    if new_layout is None:
        return _lost(f"{op.name} splits a spatial axis ({op.module or 'model'})", sx.whole)
    parts = sx.parts
    if parts is not None and x.shape[: parts.dim + 1] != out_shape[: parts.dim + 1]:
        parts = None  # the channels moved: their fields are taken together
    return _State(new_layout, sx.axes, sx.whole, parts=parts)


def _permute(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    sx = m.state
    perm = {p % len(m.x.shape): new for new, p in enumerate(op.args[1])}
    return _State(_move(m.layout, perm), sx.axes, sx.whole, parts=_moved_parts(sx.parts, perm))


def _transpose(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    sx, args = m.state, op.args
    n = len(m.x.shape)
    a, b = (args[1] % n, args[2] % n) if op.name == "transpose" else (0, 1)
    swap = {a: b, b: a}
    return _State(_move(m.layout, swap), sx.axes, sx.whole, parts=_moved_parts(sx.parts, swap))


def _slice_or_split(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    name, args, x = op.name, op.args, m.x
    # split(x, size, dim), chunk(x, chunks, dim): the dim comes second; else first.
    where = 2 if name in ("split", "split_with_sizes", "chunk") else 1
    dim = op.kwargs.get("dim", args[where] if len(args) > where else 0) % len(x.shape)
    if dim not in m.dims:
        return _channel_slice(op, m.state, dim)
    if name == "slice" and _exclusive(m.layout, dim, x.shape):
        return _spatial_slice(op, m, dim)
    return _lost(f"{name} of a spatial axis ({op.module or 'model'})", m.state.whole)


def _spatial_slice(op: OpRecord, m: _Map, dim: int) -> _State | None:
    """A slice of the dimension that holds one spatial axis: a shifted, strided field."""
    sx, args, x, layout = m.state, op.args, m.x, m.layout
    start = args[2] if len(args) > 2 and args[2] is not None else 0
    step = args[4] if len(args) > 4 else 1
    k = 0 if layout[0][0] == dim else 1
    axes = list(sx.axes or ())
    a = axes[k]
    start = max(0, start + x.shape[dim] if start < 0 else start)
    axes[k] = _Axis(a.size, a.stride * step, a.padding - start * a.stride)
    if m.out_shape[dim] == 0:
        return None

    def crop(f: _Field) -> _Field:
        b = f[k]
        moved = _Axis(b.size, b.stride * step, b.padding - start * b.stride)
        return (moved, f[1]) if k == 0 else (f[0], moved)

    return _State(layout, (axes[0], axes[1]), sx.whole, parts=_mapped(sx.parts, crop))


def _channel_slice(op: OpRecord, sx: _State, dim: int) -> _Result:
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
        return _selection(sx, layout, keep, _select(ranges, max(0, start), min(end, size), step))
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


def _pad(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    """Padding before a spatial axis moves the start of its field.

    Reflected or replicated borders are read like zeros: exact for every unit whose field is
    centred inside the image.
    """
    sx, layout = m.state, m.layout
    pad = list(op.args[1])
    n = len(m.x.shape)
    shifts = [0, 0]  # padding added before each spatial axis
    for i in range(0, len(pad), 2):
        d = n - 1 - i // 2
        if d in m.dims:
            if not _exclusive(layout, d, m.x.shape):
                return _lost(f"padding of a merged spatial axis ({op.module})", sx.whole)
            shifts[0 if layout[0][0] == d else 1] += pad[i]
        elif sx.parts is not None and d == sx.parts.dim and pad[i]:
            sx = replace(sx, parts=None)  # channels padded: their fields taken together

    def padded(f: _Field) -> _Field:
        a, b = (
            _Axis(f[k].size, f[k].stride, f[k].padding + shifts[k] * f[k].stride) for k in (0, 1)
        )
        return (a, b)

    assert sx.axes is not None
    return _State(layout, padded(sx.axes), sx.whole, parts=_mapped(sx.parts, padded))


def _moves_positions(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    return _lost(f"{op.name} moves spatial positions ({op.module or 'model'})", m.state.whole)


def _shape_only(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    return None


MAP_RULES: dict[str, _MapRule] = {
    **dict.fromkeys(_RESHAPES, _reshape),
    "permute": _permute,
    "transpose": _transpose,
    "t": _transpose,
    **dict.fromkeys(_SLICES, _slice_or_split),
    **dict.fromkeys(_PADDING, _pad),
    **dict.fromkeys(_MOVES_POSITIONS, _moves_positions),
    **dict.fromkeys(_SHAPE_ONLY, _shape_only),
}
