"""Receptive-field rules for normalisations, softmax, cumulative operations and reductions.

A value normalised with statistics of the whole map (group norm, a layer norm or softmax
over a spatial axis, batch norm in training mode) keeps its local field and also sees the
whole input, like a map multiplied by a squeeze-and-excitation gate. A cumulative operation
along a spatial axis ends the tracking; a reduction over one sees the whole input, and one
over other dimensions keeps the field where the spatial axes now are. Each rule applies to
a map whose spatial axes are known.
"""

from __future__ import annotations

from dataclasses import replace

from ._field_state import _WHOLE, _lost, _move, _moved_parts, _pairs, _State
from ._value_states import _Map, _MapRule, _Result, _ValueStates
from .tracing import OpRecord

__all__ = ["MAP_RULES"]

_SOFTMAX = ("_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax")
_CUMULATIVE = frozenset(
    {"cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "_cummax_helper", "_cummin_helper"}
)
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


def _layer_norm(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    n = len(m.x.shape)
    normed = set(range(n - len(op.args[1]), n))
    return replace(m.state, whole=True) if normed & m.dims else m.state


def _group_norm(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    return replace(m.state, whole=True)


def _batch_norm(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    """With batch statistics (training mode) it sees the whole input; else it is
    element-wise."""
    if len(op.args) > 5 and op.args[5]:
        return replace(m.state, whole=True)
    return values.elementwise(op, m.out_shape)


def _softmax(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    return replace(m.state, whole=True) if op.args[1] % len(m.x.shape) in m.dims else m.state


def _cumulative(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    args = op.args
    if op.kwargs.get("dim", args[1] if len(args) > 1 else 0) % len(m.x.shape) in m.dims:
        return _lost(f"{op.name} along a spatial axis ({op.module or 'model'})", m.state.whole)
    return m.state


def _reduction(values: _ValueStates, op: OpRecord, m: _Map) -> _Result:
    sx, x, args = m.state, m.x, op.args
    where = _REDUCTIONS[op.name]
    reduced = op.kwargs.get("dim", args[where] if len(args) > where else None)
    if reduced is None or isinstance(reduced, bool):
        return _WHOLE
    reduced_dims = {d % len(x.shape) for d in _pairs(reduced, 1)}
    if reduced_dims & m.dims:
        return _WHOLE
    keepdim = len(m.out_shape) == len(x.shape)
    parts = sx.parts if sx.parts is not None and sx.parts.dim not in reduced_dims else None
    if keepdim:
        return replace(sx, parts=parts)
    mapping = {d: d - sum(r < d for r in reduced_dims) for d in range(len(x.shape))}
    return _State(_move(m.layout, mapping), sx.axes, sx.whole, parts=_moved_parts(parts, mapping))


MAP_RULES: dict[str, _MapRule] = {
    "native_layer_norm": _layer_norm,
    "native_group_norm": _group_norm,
    "native_batch_norm": _batch_norm,
    **dict.fromkeys(_SOFTMAX, _softmax),
    **dict.fromkeys(_CUMULATIVE, _cumulative),
    **dict.fromkeys(_REDUCTIONS, _reduction),
}
