"""The receptive-field state of one traced value, and the algebra on states.

A state says where a value's two spatial axes are (which dimension, and how far inside a
merged dimension), the field of one unit along each axis, whether the value depends on the
whole input, and, when the layout could not be followed, why. Where the channels of a map
have different fields (a concatenation of branches), it keeps them per range of channels.

Everything here is a pure function of states and shapes; which operation does what to a
state is decided by the rules (``_rules_*``) that ``_propagation`` dispatches to.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from math import prod
from typing import Any

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


# -- fields ------------------------------------------------------------------------------
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


# -- per-channel parts -------------------------------------------------------------------
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


# -- spatial layouts ---------------------------------------------------------------------
def _pairs(value: Any, n: int = 2) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    return values * n if len(values) == 1 else values


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
