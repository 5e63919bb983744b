"""Receptive-field rules for operations that join values or write one into another.

A concatenation or stack merges the fields of its inputs (reporting joins that do not line
up) and keeps, per range of channels, the field of the input they came from. ``copy_``
makes the destination hold its source. A write into memory that another tensor shares ends
the tracking of that tensor, whose positions are not followed.
"""

from __future__ import annotations

from dataclasses import replace

from ._field_state import _WHOLE, _lost, _make_parts, _Range, _ranges, _shifted, _State
from ._value_states import _Result, _Rule, _ValueStates
from .tracing import VIEW_WRITE, OpRecord, TensorInfo

__all__ = ["RULES"]


def _concatenation(values: _ValueStates, op: OpRecord) -> _Result:
    """``cat`` and ``stack``: one map whose channels keep the fields of their inputs."""
    name, args, out_shape = op.name, op.args, op.outputs[0].shape
    tensors = [t for t in args[0] if isinstance(t, TensorInfo)]
    dim = op.kwargs.get("dim", args[1] if len(args) > 1 else 0) % len(out_shape)
    states = [values.state(t) for t in tensors]
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
        return _lost(next(s.lost for s in known if s.lost) or "", any(s.whole for s in known))
    spatial = [s for s in known if s.layout is not None]
    if not spatial:
        return _WHOLE if known else None
    if len({s.layout for s in spatial}) != 1:
        return _lost(f"{name} of differently laid out maps", any(s.whole for s in known))
    assert spatial[0].layout is not None
    result = values.merge(op, known, spatial[0].layout)
    return replace(result, parts=_make_parts(dim, _joined_ranges(op, tensors, states, dim)))


def _joined_ranges(
    op: OpRecord, tensors: list[TensorInfo], states: list[_State | None], dim: int
) -> list[_Range]:
    """The field of each range of ``dim`` of a concatenation, input after input."""
    ranges: list[_Range] = []
    offset = 0
    for t, s in zip(tensors, states, strict=True):
        size = 1 if op.name == "stack" else t.shape[dim]
        if s is None or s.axes is None:
            ranges.append((offset, offset + size, None))
        else:
            ranges += [(a + offset, b + offset, f) for a, b, f in _ranges(s, dim, size)]
        offset += size
    return ranges


def _copy(values: _ValueStates, op: OpRecord) -> _Result:
    """``copy_``: the destination now holds the source, broadcast to its shape."""
    return values.elementwise(op, op.outputs[0].shape, [op.args[1]])


def _view_write(values: _ValueStates, op: OpRecord) -> _Result:
    """A tensor that shares memory with one an in-place operation wrote to."""
    old, written = values.state(op.args[0]), values.state(op.args[1])
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


RULES: dict[str, _Rule] = {
    "cat": _concatenation,
    "stack": _concatenation,
    "copy_": _copy,
    VIEW_WRITE: _view_write,
}
