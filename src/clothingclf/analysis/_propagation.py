"""Carry receptive fields along a traced graph (the machinery of ``receptive_field``).

Every value of the :class:`~clothingclf.analysis.tracing.Trace` gets a state (see
``_field_state``). :class:`_Propagator` updates the states operation by operation: it looks
each operation up by name among the rules of every family (``_rules_windows``,
``_rules_joins``, ``_rules_layout``, ``_rules_statistics``), and applies the broadcasting
element-wise rule of ``_value_states`` to any other operation, and to those whose rule needs
a map with known spatial axes when the first input is not one.
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import _rules_joins, _rules_layout, _rules_statistics, _rules_windows
from ._field_state import _lost
from ._value_states import _Map, _MapRule, _Result, _Rule, _ValueStates
from .tracing import OpRecord

__all__: list[str] = []

_AnyRule = TypeVar("_AnyRule", _Rule, _MapRule)


def _one_table(*tables: dict[str, _AnyRule]) -> dict[str, _AnyRule]:
    """The rules of several families in one table; no operation may have two rules."""
    merged: dict[str, _AnyRule] = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        assert not twice, f"operations with two rules: {sorted(twice)}"
        merged.update(table)
    return merged


# Rules applied whatever the operation's inputs are.
_RULES = _one_table(_rules_windows.RULES, _rules_joins.RULES)
# Rules applied when the first input is a map whose spatial axes are known.
_MAP_RULES = _one_table(_rules_layout.MAP_RULES, _rules_statistics.MAP_RULES)
assert not _RULES.keys() & _MAP_RULES.keys(), "an operation in both tables"


class _Propagator(_ValueStates):
    """The states of a trace's values, computed by :meth:`run` in execution order."""

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

    def apply(self, op: OpRecord) -> _Result:
        """The state of the outputs of ``op``, by the rule for its name."""
        rule = _RULES.get(op.name)
        if rule is not None:
            return rule(self, op)
        map_rule = _MAP_RULES.get(op.name)
        x: Any = op.args[0] if op.args else None
        sx = self.state(x)
        out_shape = op.outputs[0].shape
        if map_rule is not None and sx is not None and sx.layout is not None:
            return map_rule(self, op, _Map(x, sx, sx.layout, out_shape))
        return self.elementwise(op, out_shape)
