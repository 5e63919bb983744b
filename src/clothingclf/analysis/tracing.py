"""Record every tensor operation of one forward pass, on the ``meta`` device.

Both reports of :mod:`clothingclf.analysis` start from the same ``Trace``: the model is
copied with its parameters on PyTorch's ``meta`` device (shapes without data, so a 600-million
parameter network costs no memory), a dummy input is passed through it, and a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` records each ATen operation with the
shapes of its inputs and outputs, which earlier operation produced each input, which parameter
it reads, and which module (by its path, ``layer1.0.conv1``) was running.

Tracing at the ATen level sees what module hooks miss (the residual ``+`` of a ResNet block,
``matmul`` and ``softmax`` inside attention, ``torch.flatten`` in ``forward``) and needs no
symbolic tracing, so models with data-independent control flow work as they are. It sees the
same operations as :class:`torch.utils.flop_counter.FlopCounterMode` (composite operations
are decomposed the same way), which is what makes the FLOP totals agree exactly.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from ..exceptions import AnalysisError

__all__ = [
    "VIEW_WRITE",
    "InputSize",
    "ModuleCall",
    "OpRecord",
    "TensorInfo",
    "Trace",
    "meta_model",
    "trace",
]

InputSize = int | tuple[int, int] | tuple[int, int, int]
"""An input size: ``224`` (3 x 224 x 224), ``(H, W)`` (3 channels) or ``(C, H, W)``."""

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


# Name of the records the trace adds after an in-place operation, one for every other
# tensor that shares memory with the tensor it wrote to (the base of a written slice, or the
# views of a written tensor): ``args`` are (that tensor before, the written tensor after),
# ``kwargs["op"]`` names the operation. They cost nothing and read no parameter.
VIEW_WRITE = "written_through_view"


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


# A side above this would ask the (meta-device) trace for absurd shapes; no CNN input is
# near it.
_MAX_SIDE = 65_536


def _normalise_size(input_size: InputSize) -> tuple[int, int, int]:
    size: tuple[Any, ...] = ()
    if isinstance(input_size, int):
        size = (3, input_size, input_size)
    elif isinstance(input_size, (tuple, list)):
        size = tuple(input_size)
        if len(size) == 2:
            size = (3, *size)
    valid = all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= _MAX_SIDE for s in size)
    if len(size) != 3 or not valid:
        raise AnalysisError(
            f"input_size must be an int, (H, W) or (C, H, W) of positive ints; found "
            f"{input_size!r}. Pass for example input_size=(3, 224, 224)."
        )
    return (size[0], size[1], size[2])


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


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Make every parameter and buffer registered inside the block live on ``meta``.

    Unlike ``with torch.device("meta")``, other tensors are still real, so a constructor
    that computes its layer widths with torch (RegNet) still works.
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def on_meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def on_meta_buffer(
        self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True
    ) -> None:
        if tensor is not None and tensor.device.type != "meta":
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent)

    nn.Module.register_parameter = on_meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = on_meta_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def meta_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a torchvision model by name with its parameters on the ``meta`` device.

    No memory is allocated for weights and no initialisation is run, so even ``vit_h_14``
    builds in a fraction of a second. Such a model can be analysed, not run on data.

    Args:
        name: A name of :func:`torchvision.models.list_models`, e.g. ``"resnet18"``.
        **kwargs: Passed to :func:`torchvision.models.get_model` (``num_classes=18``).

    Returns:
        The model, in evaluation mode.

    Raises:
        AnalysisError: If torchvision has no model of that name.

    Example:
        >>> from clothingclf.analysis import meta_model
        >>> model = meta_model("resnet18", num_classes=18)
        >>> model.fc.weight.shape, model.fc.weight.device.type
        (torch.Size([18, 512]), 'meta')
    """
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=4)
        raise AnalysisError(
            f"torchvision has no model named {name!r}"
            + (f" (close: {', '.join(close)})" if close else "")
            + ". Use a name of torchvision.models.list_models(), e.g. 'resnet18'."
        )
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("init_weights", True)  # silences torchvision's FutureWarning
    with _parameters_on_meta():
        model: nn.Module = torchvision.models.get_model(name, weights=None, **kwargs)
    return model.eval()


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are on ``meta`` (no data copied)."""
    memo: dict[int, Any] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    for tensor in _cached_tensors(model):
        memo.setdefault(id(tensor), torch.empty_like(tensor, device="meta"))
    return copy.deepcopy(model, memo)


def _plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``; tensors it caches outside its parameters and buffers (which
    deepcopy refuses when they were computed with gradients) are copied detached."""
    memo: dict[int, Any] = {id(t): t.detach().clone() for t in _cached_tensors(model)}
    return copy.deepcopy(model, memo)


def _cached_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Tensors that modules keep as plain attributes or in dicts and lists of them (timm's
    LeViT, EfficientFormer and TinyViT cache attention biases so after a forward pass)."""
    found: list[torch.Tensor] = []

    def collect(value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            found.append(value)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                collect(item, depth + 1)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                collect(item, depth + 1)

    for module in model.modules():
        for key, value in vars(module).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                collect(value, 0)
    return found


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def trace(model: nn.Module | str, *, input_size: InputSize = 224, batch_size: int = 1) -> Trace:
    """Record one forward pass of ``model`` on a dummy input.

    The model is copied with its parameters on the ``meta`` device, so nothing is computed
    and the caller's model is left untouched (a model already on ``meta`` is run as it is,
    in evaluation mode, and its modes are restored afterwards). A model
    that cannot run on ``meta`` (it reads tensor values, say) is run for real on a copy, on
    its own device, and :attr:`Trace.note` says why.

    Args:
        model: A module, or the name of a torchvision model.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side; 3 channels unless given.
        batch_size: Batch size of the dummy input.

    Returns:
        The :class:`Trace`.

    Raises:
        AnalysisError: If the model cannot run on an input of that size.

    Example:
        >>> from clothingclf.analysis.tracing import trace
        >>> t = trace("resnet18", input_size=64)
        >>> t.ops[0].name, t.ops[0].module, t.ops[0].outputs[0].shape
        ('convolution', 'conv1', (1, 64, 32, 32))
    """
    size = _normalise_size(input_size)
    if isinstance(model, str):
        model_name = model
        model = meta_model(model)
    else:
        if not isinstance(model, nn.Module):
            raise AnalysisError(
                f"expected a torch.nn.Module or a torchvision model name; found "
                f"{type(model).__name__}. Pass the network itself, e.g. classifier.model_."
            )
        model_name = type(model).__name__
    params = _count_params(model)
    note = None
    try:
        x = torch.empty((batch_size, *size), device="meta")
        if all(t.device.type == "meta" for t in (*model.parameters(), *model.buffers())):
            # Nothing to protect from computation: run the model itself in evaluation mode,
            # then restore each module's mode (hooks are removed by _run).
            modes = [(m, m.training) for m in model.modules()]
            try:
                ops, calls, x_info, outputs = _run(model.eval(), x)
            finally:
                for m, training in modes:
                    m.training = training
        else:
            ops, calls, x_info, outputs = _run(_meta_copy(model).eval(), x)
    except Exception as error:  # any failure on meta: retry for real, and say so
        reason = _first_line(error)
        tensors = list(model.parameters()) + list(model.buffers())
        if any(t.device.type == "meta" for t in tensors):
            raise AnalysisError(
                f"could not trace {model_name} at input size {size} on the meta device "
                f"({reason}), and its parameters hold no data to run it for real. Check "
                f"the input size, or pass the model with real weights."
            ) from error
        device = tensors[0].device if tensors else torch.device("cpu")
        note = f"could not run on the meta device ({reason}); traced by running it on {device}"
        try:
            copied = _plain_copy(model).eval()
            x = torch.zeros((batch_size, *size), device=device)
            ops, calls, x_info, outputs = _run(copied, x)
        except Exception as error2:
            raise AnalysisError(
                f"could not run {model_name} on an input of size {(batch_size, *size)}: "
                f"{_first_line(error2)}. Check that the input size suits the model."
            ) from error2
    return Trace(
        model_name=model_name,
        input_size=size,
        batch_size=batch_size,
        input=x_info,
        ops=tuple(ops),
        modules=tuple(calls),
        params=params,
        note=note,
        outputs=outputs,
        param_numels={n: p.numel() for n, p in model.named_parameters(remove_duplicate=False)},
    )
