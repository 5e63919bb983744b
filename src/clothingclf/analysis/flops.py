"""Exact multiply-accumulates (MACs) and FLOPs of a model, from its traced operations.

Conventions, the same as :class:`torch.utils.flop_counter.FlopCounterMode` so that the two
agree to the last FLOP:

* A multiply-accumulate (MAC) is one multiplication and one addition; **FLOPs = 2 x MACs**.
  Convolutions, ``linear``, ``matmul``/``bmm``/``baddbmm``/``einsum`` (which PyTorch lowers to
  ``bmm``) and scaled-dot-product attention are counted in MACs. Biases are not counted.
* Every other operation (element-wise arithmetic and activations, normalisation, pooling,
  softmax, reductions) is counted apart, in
  :attr:`~clothingclf.analysis.FlopReport.other_ops`: one per output element for element-wise
  operations, two per element for inference batch norm (a folded
  scale and shift), four per element for layer and group norm, three per element for softmax,
  kernel area per output element for pooling, one per input element for adaptive pooling and
  reductions. Reshapes, copies and concatenations cost nothing.

Popular numbers such as "ResNet-18 = 1.8 GFLOPs" are MACs: ResNet-18 at 224 x 224 performs
1,814,073,344 MACs, that is 3.63 GFLOPs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod
from typing import TYPE_CHECKING, Any

from torch import nn

from .tracing import InputSize, OpRecord, TensorInfo, Trace, trace

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FlopReport", "LayerFlops", "OpTypeTotals", "count_flops"]

_CONV = {
    "convolution",
    "_convolution",
    "cudnn_convolution",
    "_slow_conv2d_forward",
    "convolution_overrideable",
}
_ATTENTION = {
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
}
_ATTENTION_BSHD = {"_flash_attention_forward", "_efficient_attention_forward"}
_BATCH_NORM = {
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional",
    "cudnn_batch_norm",
    "miopen_batch_norm",
}
_OTHER_NORM = {"native_layer_norm": "layer_norm", "native_group_norm": "group_norm"}
_SOFTMAX = {"_softmax", "_safe_softmax", "softmax", "_log_softmax", "log_softmax"}
_POOL = {
    "max_pool2d_with_indices": "max_pool2d",
    "max_pool2d": "max_pool2d",
    "avg_pool2d": "avg_pool2d",
    "max_pool3d_with_indices": "max_pool3d",
    "avg_pool3d": "avg_pool3d",
    "max_pool1d": "max_pool1d",
    "avg_pool1d": "avg_pool1d",
}
_ADAPTIVE = {
    "_adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "adaptive_max_pool2d": "adaptive_max_pool2d",
    "_adaptive_avg_pool3d": "adaptive_avg_pool3d",
    "adaptive_max_pool3d": "adaptive_max_pool3d",
}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "prod"}
_ELEMENTWISE = {
    "add",
    "sub",
    "rsub",
    "mul",
    "div",
    "relu",
    "relu6",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "hardtanh",
    "hardswish",
    "hardsigmoid",
    "leaky_relu",
    "elu",
    "mish",
    "threshold",
    "clamp",
    "clamp_min",
    "clamp_max",
    "neg",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "pow",
    "abs",
    "erf",
    "where",
    "masked_fill",
    "reciprocal",
    "sign",
    "floor",
    "ceil",
    "round",
    "maximum",
    "minimum",
    "lerp",
    "addcmul",
    "addcdiv",
}


@dataclass(frozen=True)
class LayerFlops:
    """The cost of one operation of the forward pass.

    Attributes:
        name: Path of the module that ran it (``"layer1.0.conv1"``); ``""`` for an operation
            in the model's own ``forward``.
        op: What it is: ``conv2d``, ``linear``, ``matmul``, ``attention``, ``add``,
            ``batch_norm``, ``max_pool2d``, ...
        module_type: Class name of that module (``"Conv2d"``).
        input_shapes: Shapes of its input tensors (parameters left out), batch included.
        output_shape: Shape of its (first) output.
        kernel: Kernel size of a convolution or pooling, else ``None``.
        macs: Multiply-accumulates.
        flops: ``2 * macs``.
        other_ops: Operations that are not multiply-accumulates (see the module docs).
        params: Parameters it reads, each counted at its first use only.
    """

    name: str
    op: str
    module_type: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, ...] | None
    macs: int
    flops: int
    other_ops: int
    params: int


@dataclass(frozen=True)
class OpTypeTotals:
    """Totals of one kind of operation (see :attr:`FlopReport.by_type`).

    Attributes:
        op: The kind (``"conv2d"``).
        count: How many operations of this kind ran.
        macs: Their multiply-accumulates.
        flops: Their FLOPs.
        other_ops: Their other operations.
        params: The parameters they read.
    """

    op: str
    count: int
    macs: int
    flops: int
    other_ops: int
    params: int


def _fmt(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


@dataclass(frozen=True)
class FlopReport:
    """What one forward pass of a model costs, operation by operation.

    Attributes:
        model: The model's torchvision name, or its class name.
        input_size: ``(C, H, W)`` of the input it was counted for.
        batch_size: The batch size (totals are for the whole batch).
        layers: One row per operation that costs something or reads a parameter first, in
            execution order. Every
            convolution is listed, including the 1 x 1 "downsample" convolutions of a ResNet's
            shortcuts, and so are functional operations such as the residual additions.
        total_macs: Multiply-accumulates of convolutions, linear layers, matrix products and
            attention.
        total_flops: ``2 * total_macs``; equal to ``FlopCounterMode``'s total.
        other_ops: Element-wise, normalisation, pooling and softmax operations.
        params: Parameters of the model (all of them, used in this pass or not).
        note: Why the model was not traced on the ``meta`` device, or ``None``.
    """

    model: str
    input_size: tuple[int, int, int]
    batch_size: int
    layers: tuple[LayerFlops, ...]
    total_macs: int
    total_flops: int
    other_ops: int
    params: int
    note: str | None = None

    @property
    def by_type(self) -> dict[str, OpTypeTotals]:
        """Totals per kind of operation, most MACs first."""
        totals: dict[str, list[int]] = {}
        for row in self.layers:
            t = totals.setdefault(row.op, [0, 0, 0, 0, 0])
            t[0] += 1
            t[1] += row.macs
            t[2] += row.flops
            t[3] += row.other_ops
            t[4] += row.params
        ordered = sorted(totals.items(), key=lambda kv: (-kv[1][1], -kv[1][3], kv[0]))
        return {op: OpTypeTotals(op, *t) for op, t in ordered}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per operation, the columns of :class:`LayerFlops`."""
        import pandas as pd

        return pd.DataFrame([asdict(row) for row in self.layers], columns=list(_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the totals, and the rows under ``"layers"``."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "params": self.params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "other_ops": self.other_ops,
            "note": self.note,
            "layers": [
                {
                    **asdict(row),
                    "input_shapes": [list(s) for s in row.input_shapes],
                    "output_shape": list(row.output_shape),
                    "kernel": list(row.kernel) if row.kernel else None,
                }
                for row in self.layers
            ],
        }

    def summary(self) -> str:
        """The totals in a few lines, without the per-operation table."""
        c, h, w = self.input_size
        lines = [
            f"{self.model} at {self.batch_size} x {c} x {h} x {w}",
            f"  parameters:        {self.params:>16,}",
            f"  MACs:              {self.total_macs:>16,}  ({_fmt(self.total_macs)})",
            f"  FLOPs (2 x MACs):  {self.total_flops:>16,}  ({_fmt(self.total_flops)})",
            f"  other operations:  {self.other_ops:>16,}  ({_fmt(self.other_ops)})",
        ]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    def table(self, *, macs_only: bool = False) -> str:
        """The per-operation table as text.

        Args:
            macs_only: Keep only the rows with multiply-accumulates (convolutions, linear
                layers, matrix products, attention).
        """
        rows = [r for r in self.layers if r.macs or not macs_only]
        header = ("layer", "op", "input", "output", "kernel", "MACs", "params")
        body = [
            (
                r.name or "(model)",
                r.op,
                "x".join(map(str, r.input_shapes[0])) if r.input_shapes else "",
                "x".join(map(str, r.output_shape)),
                "x".join(map(str, r.kernel)) if r.kernel else "",
                f"{r.macs:,}",
                f"{r.params:,}",
            )
            for r in rows
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
        right = {5, 6}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(header), line(tuple("-" * w for w in widths))]
        out += [line(b) for b in body]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary() + "\n\n" + self.table()


_COLUMNS = LayerFlops.__dataclass_fields__.keys()


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, TensorInfo) else ()


def _cost(op: OpRecord) -> tuple[str, int, int, tuple[int, ...] | None]:
    """(kind, MACs, other operations, kernel) of one operation."""
    name, args = op.name, op.args
    out = op.outputs[0].shape if op.outputs else ()
    numel = prod(out) if op.outputs else 0
    if name in _CONV:
        x, w, transposed = _shape(args[0]), _shape(args[1]), bool(args[6])
        spatial = (x if transposed else out)[2:]
        macs = prod(spatial) * prod(w[2:]) * x[0] * w[0] * w[1]
        kind = f"conv{'_transpose' if transposed else ''}{len(w) - 2}d"
        return kind, macs, 0, tuple(w[2:])
    if name in ("mm", "addmm", "_scaled_mm"):
        a, b = (args[0], args[1]) if name != "addmm" else (args[1], args[2])
        (m, k), n = _shape(a), _shape(b)[1]
        is_linear = name == "addmm" or (isinstance(b, TensorInfo) and b.param is not None)
        return ("linear" if is_linear else "matmul"), m * k * n, 0, None
    if name in ("bmm", "baddbmm"):
        a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
        (bs, m, k), n = _shape(a), _shape(b)[2]
        return "matmul", bs * m * k * n, 0, None
    if name in _ATTENTION or name in _ATTENTION_BSHD:
        qs, ks, vs = (_shape(a) for a in args[:3])
        if name in _ATTENTION_BSHD:  # (batch, seq, heads, dim)
            qs, ks, vs = ((s[0], s[2], s[1], s[3]) for s in (qs, ks, vs))
        b, h, s_q, d_q = qs[0], qs[1], qs[2], qs[3]
        s_k, d_v = ks[-2], vs[-1]
        return "attention", b * h * s_q * s_k * (d_q + d_v), 0, None
    base = name.rstrip("_").lstrip("_")
    if name in _BATCH_NORM:
        return "batch_norm", 0, 2 * numel, None
    if name in _OTHER_NORM:
        return _OTHER_NORM[name], 0, 4 * numel, None
    if name in _SOFTMAX:
        return "softmax", 0, 3 * numel, None
    if name in _POOL:
        kernel = tuple(args[1]) if len(args) > 1 else ()
        return _POOL[name], 0, numel * prod(kernel), kernel or None
    if name in _ADAPTIVE:
        return _ADAPTIVE[name], 0, prod(_shape(args[0])), None
    if base in _REDUCTIONS:
        return base, 0, prod(_shape(args[0])), None
    if name.rstrip("_") in _ELEMENTWISE or base in _ELEMENTWISE:
        return base, 0, numel, None
    return base, 0, 0, None


def flops_from_trace(t: Trace) -> FlopReport:
    """Build a :class:`FlopReport` from a :class:`~clothingclf.analysis.tracing.Trace`."""
    rows: list[LayerFlops] = []
    seen_params: set[str] = set()
    param_sizes = t.param_numels
    for op in t.ops:
        kind, macs, other, kernel = _cost(op)
        inputs = op.tensor_inputs()
        params = 0
        if op.outputs and all(o.node < 0 and o.param for o in op.outputs):
            continue  # a view of a parameter: its consumer counts the parameter
        for i in inputs:
            if i.param is not None and i.param not in seen_params:
                seen_params.add(i.param)
                # The size of the parameter itself, not of the view the op read.
                params += param_sizes.get(i.param, prod(i.shape))
        if not macs and not other and not params:
            continue
        rows.append(
            LayerFlops(
                name=op.module,
                op=kind,
                module_type=op.module_type,
                input_shapes=tuple(i.shape for i in inputs if i.param is None),
                output_shape=op.outputs[0].shape if op.outputs else (),
                kernel=kernel,
                macs=macs,
                flops=2 * macs,
                other_ops=other,
                params=params,
            )
        )
    total_macs = sum(r.macs for r in rows)
    return FlopReport(
        model=t.model_name,
        input_size=t.input_size,
        batch_size=t.batch_size,
        layers=tuple(rows),
        total_macs=total_macs,
        total_flops=2 * total_macs,
        other_ops=sum(r.other_ops for r in rows),
        params=t.params,
        note=t.note,
    )


def count_flops(
    model: nn.Module | str, *, input_size: InputSize = (3, 224, 224), batch_size: int = 1
) -> FlopReport:
    """Count the multiply-accumulates and FLOPs of one forward pass, operation by operation.

    The model is traced on the ``meta`` device (see :mod:`clothingclf.analysis.tracing`):
    nothing is computed, the model you pass is not changed, and every operation is seen,
    functional ones included (residual additions, ``matmul`` in attention). The total equals
    :class:`torch.utils.flop_counter.FlopCounterMode`'s for every torchvision classification
    model; on top of it you get the per-layer rows, the parameters each layer reads, and the
    element-wise and normalisation work counted apart.

    Args:
        model: A module (on any device, or on ``meta``), or a torchvision model name.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side.
        batch_size: Batch size; the totals are for the whole batch.

    Returns:
        The :class:`FlopReport`.

    Raises:
        AnalysisError: If the model cannot run on an input of that size.

    Example:
        >>> from clothingclf import analysis
        >>> r = analysis.count_flops("resnet18", input_size=(3, 224, 224))
        >>> r.total_macs, r.total_flops, r.params
        (1814073344, 3628146688, 11689512)
        >>> r.layers[0].name, r.layers[0].op, r.layers[0].macs
        ('conv1', 'conv2d', 118013952)
        >>> r.by_type["conv2d"].count, r.by_type["add"].count   # downsample convs included
        (20, 8)
    """
    return flops_from_trace(trace(model, input_size=input_size, batch_size=batch_size))
