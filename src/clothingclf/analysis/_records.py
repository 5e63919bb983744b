"""What a trace is made of: the tensors, operations and module calls of one forward pass.

These records are what the recorder (``_recorder``) writes and what the FLOP and receptive
field analyses read; :mod:`clothingclf.analysis.tracing` exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["VIEW_WRITE", "ModuleCall", "OpRecord", "TensorInfo", "Trace"]

# Name of the records the trace adds after an in-place operation, one for every other
# tensor that shares memory with the tensor it wrote to (the base of a written slice, or the
# views of a written tensor): ``args`` are (that tensor before, the written tensor after),
# ``kwargs["op"]`` names the operation. They cost nothing and read no parameter.
VIEW_WRITE = "written_through_view"


def _leaves(value: Any, kind: type, out: list[Any] | None = None) -> list[Any]:
    """The leaves of type ``kind`` in nested lists, tuples and dicts, in order."""
    out = [] if out is None else out
    if isinstance(value, kind):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, kind, out)
    elif isinstance(value, dict):
        for v in value.values():
            _leaves(v, kind, out)
    return out


@dataclass(frozen=True)
class TensorInfo:
    """One tensor seen by the trace.

    Attributes:
        node: Which recorded value it is (0 is the input), or -1 for a tensor that does not
            depend on the input (a parameter, a buffer, a constant).
        shape: Its shape, batch dimension included.
        param: The name of the parameter it is, or is a view of; ``None`` otherwise.
    """

    node: int
    shape: tuple[int, ...]
    param: str | None = None


@dataclass(frozen=True)
class OpRecord:
    """One ATen operation of the forward pass.

    Attributes:
        index: Its position in execution order.
        func: The ATen operator overload (``aten.convolution.default``); ``None`` for a
            :data:`VIEW_WRITE` record.
        name: The operator's name without namespace and overload (``"convolution"``).
        module: Path of the innermost module that was running (``""`` for the model itself).
        module_type: That module's class name.
        args: The positional arguments, with tensors replaced by :class:`TensorInfo`.
        kwargs: The keyword arguments, likewise.
        outputs: The tensors it returned, flattened.
    """

    index: int
    func: Any
    name: str
    module: str
    module_type: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[TensorInfo, ...]

    def tensor_inputs(self) -> list[TensorInfo]:
        """The tensors among the arguments, in order."""
        return _leaves((self.args, self.kwargs), TensorInfo)


@dataclass(frozen=True)
class ModuleCall:
    """One call of a module, recorded when it returned.

    Attributes:
        name: The module's path (``""`` for the model itself).
        module_type: Its class name.
        output: Its first output tensor, or ``None`` if it returned none.
        first_op: Index of the first operation recorded during the call.
        end_op: One past the index of the last one.
    """

    name: str
    module_type: str
    output: TensorInfo | None
    first_op: int
    end_op: int


@dataclass(frozen=True)
class Trace:
    """The operations and module calls of one forward pass.

    Attributes:
        model_name: The model's torchvision name if it was given by name, else its class name.
        input_size: ``(C, H, W)`` of the dummy input.
        batch_size: Its batch size.
        input: The input tensor (node 0).
        ops: The operations in execution order.
        modules: The module calls in the order they returned.
        params: The number of parameters of the model (shared ones counted once).
        note: Why the trace could not run on the ``meta`` device and ran for real instead;
            ``None`` when it ran on ``meta``.
        outputs: The model's output tensors.
        param_numels: Size of each parameter, by name.
    """

    model_name: str
    input_size: tuple[int, int, int]
    batch_size: int
    input: TensorInfo
    ops: tuple[OpRecord, ...]
    modules: tuple[ModuleCall, ...]
    params: int
    note: str | None = None
    outputs: tuple[TensorInfo, ...] = ()
    param_numels: dict[str, int] = field(default_factory=dict)
