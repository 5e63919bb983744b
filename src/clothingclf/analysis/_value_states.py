"""The states of a trace's values, and the rules every operation can fall back on.

:class:`_ValueStates` holds the receptive-field state of each value of a
:class:`~clothingclf.analysis.tracing.Trace` and the two rules the operation-specific ones
build on: merging paths where they meet (reporting those whose fields do not line up), and
the broadcasting element-wise rule, which is also applied to any operation that no rule
claims (it ends the tracking unless the operation is known to keep positions). It also
defines the signatures of those rules, so that each family of them can live in its own
module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._field_state import _WHOLE, Pair, _aligned, _Axis, _lost, _pointwise_parts, _State, _union
from .tracing import OpRecord, TensorInfo, Trace

__all__: list[str] = []

# What a rule returns: the state of every output, one state per output (a split), or None
# when the outputs do not depend on the input.
_Result = _State | list[_State | None] | None


@dataclass(frozen=True)
class _Map:
    """An operation's first input when it is a map whose spatial axes are known."""

    x: TensorInfo
    state: _State
    layout: tuple[Pair, Pair]  # ``state.layout``, known
    out_shape: tuple[int, ...]  # the shape of the operation's first output

    @property
    def dims(self) -> set[int]:
        """The dimensions that hold a spatial axis."""
        return {d for d, _ in self.layout}


class _ValueStates:
    """The state of every value of a trace seen so far, and the misaligned joins found."""

    def __init__(self, t: Trace) -> None:
        self.trace = t
        self.states: dict[int, _State] = {}
        self.misalignments: list[str] = []
        self.states[t.input.node] = _State(((2, 1), (3, 1)), (_Axis(1, 1, 0), _Axis(1, 1, 0)))

    def state(self, info: Any) -> _State | None:
        if isinstance(info, TensorInfo) and info.node >= 0:
            return self.states.get(info.node)
        return None

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


# A rule for an operation whatever its inputs are, and one for an operation on a map.
_Rule = Callable[[_ValueStates, OpRecord], _Result]
_MapRule = Callable[[_ValueStates, OpRecord, _Map], _Result]


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
