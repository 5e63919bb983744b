"""The recorder of a trace: every ATen operation and module call of one forward pass.

:class:`_Recorder` is a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that records
each ATen operation, seen through composite operations exactly as
:class:`torch.utils.flop_counter.FlopCounterMode` sees them, with which earlier operation
produced each input, which parameter it reads and which module was running; :func:`_run`
adds the module calls, from forward hooks. On the ``meta`` device a few slow meta kernels
are short-cut (``_fast_meta``), since the trace needs only the shapes they return.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from ._records import VIEW_WRITE, ModuleCall, OpRecord, TensorInfo, _leaves

__all__ = ["MAC_OPS"]

_aten = torch.ops.aten

# Operations whose cost is counted as multiply-accumulates. They are recorded as they are
# (never decomposed), exactly like FlopCounterMode's registry.
MAC_OPS: frozenset[Any] = frozenset(
    {
        _aten.mm,
        _aten.addmm,
        _aten.bmm,
        _aten.baddbmm,
        _aten._scaled_mm,
        _aten.convolution,
        _aten._convolution,
        _aten.cudnn_convolution,
        _aten._slow_conv2d_forward,
        _aten.convolution_overrideable,
        _aten._scaled_dot_product_efficient_attention,
        _aten._scaled_dot_product_flash_attention,
        _aten._scaled_dot_product_cudnn_attention,
        _aten._scaled_dot_product_flash_attention_for_cpu,
        _aten._flash_attention_forward,
        _aten._efficient_attention_forward,
    }
)

# Operations that FlopCounterMode decomposes but whose decomposition holds no
# multiply-accumulates: recording them whole gives the same count, faster.
# (Padding is also kept whole: its decomposition writes into a view of a new tensor, which
# would hide from the receptive-field analysis that the result depends on the input.)
_KEEP_WHOLE: frozenset[Any] = frozenset(
    {_aten.native_batch_norm.default, _aten.constant_pad_nd.default}
)

# Operations whose output is the parameter they read, reshaped or converted: a linear
# layer's ``t(weight)`` still counts as reading ``weight``.
_PARAM_VIEWS = frozenset(
    {
        "t",
        "view",
        "_unsafe_view",
        "reshape",
        "transpose",
        "permute",
        "expand",
        "unsqueeze",
        "squeeze",
        "alias",
        "detach",
        "_to_copy",
        "clone",
        "slice",
        "select",
        "split",
        "split_with_sizes",
        "unbind",
        "chunk",
        "lift_fresh",
    }
)


def _map_tensors(value: Any, fn: Any) -> Any:
    """Replace the tensors in nested lists, tuples and dicts (faster than torch's pytree)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        mapped = [_map_tensors(v, fn) for v in value]
        return mapped if isinstance(value, list) else tuple(mapped)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


class _Recorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Record each ATen operation with its inputs' provenance and the running module."""

    def __init__(self, param_names: dict[int, str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.param_names = param_names
        self.values: dict[int, tuple[torch.Tensor, TensorInfo]] = {}
        self.ops: list[OpRecord] = []
        self.stack: list[tuple[str, str]] = [("", "")]
        self.next_node = 0
        # The recorded tensors that share memory, by the id of their common base.
        self.aliases: dict[int, list[torch.Tensor]] = {}

    def info(self, tensor: torch.Tensor) -> TensorInfo:
        entry = self.values.get(id(tensor))
        if entry is not None and entry[0] is tensor:
            return entry[1]
        return TensorInfo(-1, tuple(tensor.shape), self.param_names.get(id(tensor)))

    def new_value(self, tensor: torch.Tensor, param: str | None) -> TensorInfo:
        info = TensorInfo(self.next_node, tuple(tensor.shape), param)
        self.next_node += 1
        self.remember(tensor, info)
        return info

    def remember(self, tensor: torch.Tensor, info: TensorInfo) -> None:
        if id(tensor) not in self.values:
            base = tensor._base if tensor._base is not None else tensor
            self.aliases.setdefault(id(base), []).append(tensor)
        self.values[id(tensor)] = (tensor, info)

    def record(
        self,
        func: Any,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outputs: list[TensorInfo],
    ) -> None:
        module, module_type = self.stack[-1]
        self.ops.append(
            OpRecord(
                index=len(self.ops),
                func=func,
                name=name,
                module=module,
                module_type=module_type,
                args=args,
                kwargs=kwargs,
                outputs=tuple(outputs),
            )
        )

    def written_through(self, written: torch.Tensor, name: str) -> None:
        """After an in-place write to ``written``, give every other recorded tensor that
        shares its memory a new value: otherwise its later readers would see it unchanged
        (a slice written into a ``zeros`` buffer would leave the buffer "constant")."""
        base = written._base if written._base is not None else written
        new = self.info(written)
        for other in self.aliases.get(id(base), []):
            entry = self.values.get(id(other))
            if other is written or entry is None or entry[0] is not other:
                continue
            old = entry[1]
            self.record(None, VIEW_WRITE, (old, new), {"op": name}, [self.new_value(other, None)])

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if (
            func not in MAC_OPS
            and func not in _KEEP_WHOLE
            and func is not torch.ops.prim.device.default
        ):
            # Same rule as FlopCounterMode: see through composite operations.
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = _fast_meta(func, args)
        if out is None:
            out = func(*args, **kwargs)
        arg_infos = _map_tensors(args, self.info)
        kwarg_infos = _map_tensors(kwargs, self.info) if kwargs else {}
        name = func._overloadpacket.__name__
        inputs = _leaves(arg_infos, TensorInfo)
        param = None
        if name in _PARAM_VIEWS and inputs and inputs[0].node < 0:
            param = inputs[0].param
        depends = any(i.node >= 0 for i in inputs)
        outputs: list[TensorInfo] = []
        for leaf in _leaves(out, torch.Tensor):
            if depends:
                outputs.append(self.new_value(leaf, None))
            else:
                # A constant, or a view of a parameter: not a value of the graph.
                info = TensorInfo(-1, tuple(leaf.shape), param)
                self.remember(leaf, info)
                outputs.append(info)
        self.record(func, name, tuple(arg_infos), dict(kwarg_infos), outputs)
        if depends and func._schema.is_mutable:
            for written in _written_outputs(func, args, kwargs, out):
                self.written_through(written, name)
        return out


def _fast_meta(func: Any, args: tuple[Any, ...]) -> Any:
    """The outputs of an operation on ``meta`` without running its meta kernel, where that
    kernel is a slow Python decomposition that computes nothing the trace needs (batch and
    layer norm: half the time of tracing an EfficientNet or a ConvNeXt; in-place pointwise
    operations, which return their first argument); ``None`` where no shortcut applies.
    Operations with a FLOP formula are never short-cut: an outer FlopCounterMode sees them."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or x.dtype != torch.float32:
        return None
    kind = _FAST_KINDS.get(func)
    if kind is None:
        kind = _FAST_KINDS[func] = _fast_kind(func)
    if kind == "inplace":
        others = [a for a in args[1:] if isinstance(a, torch.Tensor)]
        if any(o.device.type != "meta" or not o.is_floating_point() for o in others):
            return None
        if not all(_broadcasts_to(o.shape, x.shape) for o in others):
            return None  # let the kernel raise
        return x
    if kind in ("batch_norm", "layer_norm") and _dense(x):
        with _disable_current_modes():
            if kind == "batch_norm":
                stats = torch.empty((x.shape[1],), dtype=x.dtype, device="meta")
            else:
                kept = x.dim() - len(args[1])
                stats = torch.empty((*x.shape[:kept], *[1] * len(args[1])), device="meta")
            return (torch.empty_like(x), stats, torch.empty_like(stats))
    return None


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    return len(shape) <= len(target) and all(
        a in (b, 1) for a, b in zip(reversed(shape), reversed(target), strict=False)
    )


def _dense(x: torch.Tensor) -> bool:
    """Non-overlapping and dense, so that ``empty_like`` keeps its strides (as a meta kernel's
    element-wise output does)."""
    expected = 1
    for stride, size in sorted(
        (st, sz) for st, sz in zip(x.stride(), x.shape, strict=True) if sz != 1
    ):
        if stride != expected:
            return False
        expected *= size
    return True


def _fast_kind(func: Any) -> str:
    if func is _aten.native_batch_norm.default:
        return "batch_norm"
    if func is _aten.native_layer_norm.default:
        return "layer_norm"
    schema = func._schema
    first = schema.arguments[0].alias_info if schema.arguments else None
    if (
        torch.Tag.pointwise in func.tags
        and first is not None
        and first.is_write
        and len(schema.returns) == 1
        and func not in MAC_OPS
    ):
        return "inplace"
    return ""


_FAST_KINDS: dict[Any, str] = {}


def _written_outputs(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> list[torch.Tensor]:
    """The tensors an in-place (or ``out=``) operation wrote to and returned."""
    returned = _leaves(out, torch.Tensor)
    written = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is None or not arg.alias_info.is_write:
            continue
        value = args[i] if i < len(args) and not arg.kwarg_only else kwargs.get(arg.name)
        if isinstance(value, torch.Tensor) and any(value is r for r in returned):
            written.append(value)
    return written


def _run(
    model: nn.Module, x: torch.Tensor
) -> tuple[list[OpRecord], list[ModuleCall], TensorInfo, tuple[TensorInfo, ...]]:
    param_names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    recorder = _Recorder(param_names)
    calls: list[ModuleCall] = []
    starts: list[int] = []
    handles = []

    for mod_name, module in model.named_modules(remove_duplicate=False):
        type_name = type(module).__name__

        def pre_hook(_m: nn.Module, _a: Any, n: str = mod_name, t: str = type_name) -> None:
            recorder.stack.append((n, t))
            starts.append(len(recorder.ops))

        def post_hook(
            _m: nn.Module, _a: Any, out: Any, n: str = mod_name, t: str = type_name
        ) -> None:
            recorder.stack.pop()
            first = starts.pop()
            tensors = _leaves(out, torch.Tensor)
            info = recorder.info(tensors[0]) if tensors else None
            calls.append(ModuleCall(n, t, info, first, len(recorder.ops)))

        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))
    try:
        x_info = recorder.new_value(x, None)
        with torch.no_grad(), recorder:
            out = model(x)
        outputs = tuple(recorder.info(leaf) for leaf in _leaves(out, torch.Tensor))
    finally:
        for handle in handles:
            handle.remove()
    return recorder.ops, calls, x_info, outputs
