"""Receptive fields over the whole traced graph, branches and shortcuts included.

For every value of the forward pass the analysis carries, per spatial axis, three numbers in
input pixels (the notation of Araujo et al., "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019):

* **size** ``r``: how many input pixels one output unit sees;
* **stride** ``j``: how far apart, in input pixels, two neighbouring units are;
* **padding** ``p``: how far the field of the first unit starts before the image, so that
  unit ``i`` sees input pixels ``i * j - p`` to ``i * j - p + r - 1``.

A convolution or pooling of kernel ``k``, stride ``s``, padding ``q`` and dilation ``d`` maps
``(r, j, p)`` to ``(r + (d (k - 1)) j, j s, p + q j)``. Element-wise operations keep them.
Where paths meet (a residual addition, a concatenation) the fields must have the same stride
and the same centre, ``(r - 1) / 2 - p``; then the larger one is kept. Paths that do not line
up are not silently reconciled: the join is reported in
:attr:`~clothingclf.analysis.ReceptiveField.misalignments` (and the union of the fields is
carried on).

A value computed from the whole image (global pooling, a fully connected layer on a flattened
map, attention between positions) has no size: the analysis says it *sees the whole input*.
A spatial map that was multiplied by such a value (the squeeze-and-excitation gates of
EfficientNet, MobileNetV3 and RegNetY) keeps its convolutional field and is flagged
``sees_whole_input`` as well. Spatial positions are followed through reshapes and permutes
(ConvNeXt's channels-last linear layers, ViT's patch tokens); a reshape that splits a spatial
axis (window partitions) or a concatenation along one ends the tracking, and the layer says so.
Normalisation with statistics of the whole map (group norm, a layer norm or softmax over a
spatial axis) keeps the local field and flags ``sees_whole_input``, like a gate. The channels
of a concatenation keep their own fields through element-wise operations, pooling and grouped
convolutions, so a slice of them (MixNet's mixed kernels) gets the field of the channels it
takes; a map's field is that of its widest channel.

Only operations known to keep positions are treated as element-wise (ATen's pointwise
operations, copies, inference batch norm); any other operation on a spatial map ends the
tracking with a note naming it, rather than passing on a field that may be wrong. So does
an in-place write into memory shared with another tensor (a slice of a buffer filled with
``buffer[..., 1:] = x[..., :-1]``): the other tensor's positions are not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..exceptions import AnalysisError
from ._field_state import Pair, _State
from ._propagation import _Propagator
from .tracing import InputSize, ModuleCall, TensorInfo, Trace, trace

__all__ = ["LayerReceptiveField", "ReceptiveField", "receptive_field"]


@dataclass(frozen=True)
class LayerReceptiveField:
    """The receptive field of one module's output.

    Attributes:
        name: The module's path (``"layer1.0"``; ``""`` for the whole model).
        module_type: Its class name.
        output_shape: Shape of its output.
        size: ``(h, w)`` input pixels one output unit sees; ``None`` when it sees the whole
            input or the spatial layout is no longer known.
        stride: ``(h, w)`` distance in input pixels between neighbouring units, or ``None``.
        padding: ``(h, w)`` effective padding: unit 0's field starts this many pixels before
            the image, or ``None``.
        sees_whole_input: True when the output depends on every input pixel: global pooling,
            fully connected layers on a flattened map, attention, or a gate computed from
            such a value.
        note: Why ``size`` is missing when it is, else ``None``.
    """

    name: str
    module_type: str
    output_shape: tuple[int, ...]
    size: Pair | None
    stride: Pair | None
    padding: Pair | None
    sees_whole_input: bool
    note: str | None = None

    def describe(self) -> str:
        """The field in words: ``"435 x 435 px, stride 32"``, ``"whole input"``, ..."""
        if self.size is None:
            return "whole input" if self.sees_whole_input else f"unknown ({self.note})"
        assert self.stride is not None
        text = f"{_hw(self.size)} px, stride {_hw(self.stride)}"
        return text + " (and the whole input through a global path)" * self.sees_whole_input


def _hw(pair: Pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]} x {pair[1]}"


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of a model's last spatial feature map, and of every layer.

    Attributes:
        model: The model's torchvision name or class name.
        input_size: ``(C, H, W)`` it was computed for.
        size: ``(h, w)`` input pixels one unit of the last spatial feature map sees. It may
            exceed the input: it is a property of the architecture.
        stride: ``(h, w)`` its effective stride in input pixels.
        padding: ``(h, w)`` its effective padding.
        layer: The module whose output is that map: the last module call that returns an
            ``N x C x H x W`` map with a known field (``"layer4"`` of a ResNet).
        sees_whole_input: True when that map also depends on every input pixel (through
            squeeze-and-excitation gates or attention).
        output_sees_whole_input: True when the model's output depends on every input pixel
            (global pooling, a fully connected head, attention): true of every classifier.
        misalignments: One line per join of paths whose fields do not line up.
        layers: The field of every module's output, in the order the modules returned.
        lost_after: ``None``, or why the field is not known for the spatial maps after
            :attr:`layer` (an upsampling, a window partition): then :attr:`size` is that of
            an earlier map, not of the network's last one.
    """

    model: str
    input_size: tuple[int, int, int]
    size: Pair
    stride: Pair
    padding: Pair
    layer: str
    sees_whole_input: bool
    output_sees_whole_input: bool
    misalignments: tuple[str, ...]
    layers: tuple[LayerReceptiveField, ...]
    lost_after: str | None = None

    def unit_box(self, i: int, j: int, *, layer: str | None = None) -> tuple[Pair, Pair]:
        """Rows and columns (first, last, inclusive) of the input that unit ``(i, j)`` sees.

        Clipped to the image; compare it with :func:`empirical_receptive_field`.

        Args:
            i: Row of the unit in the feature map.
            j: Its column.
            layer: A module path of :attr:`layers`; by default the last spatial map.

        Raises:
            AnalysisError: If that layer has no receptive field of finite size.
        """
        size, stride, padding = self.size, self.stride, self.padding
        if layer is not None:
            rows = [r for r in self.layers if r.name == layer]
            if not rows or rows[-1].size is None:
                raise AnalysisError(
                    f"no finite receptive field for layer {layer!r}; expected one of the "
                    "layers whose size is not None."
                )
            row = rows[-1]
            assert row.stride is not None and row.padding is not None and row.size is not None
            size, stride, padding = row.size, row.stride, row.padding
        _, h, w = self.input_size
        top = i * stride[0] - padding[0]
        left = j * stride[1] - padding[1]
        return (
            (max(0, top), min(h - 1, top + size[0] - 1)),
            (max(0, left), min(w - 1, left + size[1] - 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "layer": self.layer,
            "sees_whole_input": self.sees_whole_input,
            "output_sees_whole_input": self.output_sees_whole_input,
            "misalignments": list(self.misalignments),
            "lost_after": self.lost_after,
        }

    def table(self) -> str:
        """The per-layer fields as text, one module per line."""
        width = max((len(r.name) for r in self.layers), default=0)
        width = max(width, len("(model)"))
        lines = [f"{'layer'.ljust(width)}  {'output':<18}  receptive field"]
        for r in self.layers:
            shape = "x".join(map(str, r.output_shape))
            padding = f", padding {_hw(r.padding)}" if r.padding is not None else ""
            lines.append(
                f"{(r.name or '(model)').ljust(width)}  {shape:<18}  {r.describe()}{padding}"
            )
        return "\n".join(lines)

    def describe(self) -> str:
        """The field in one line: ``"435 px, stride 32, padding 217 (output of layer4); ..."``.

        Where the field of the network's last map is not known (:attr:`lost_after`), the
        line starts by saying so, and the numbers are named as those of an earlier map."""
        text = (
            f"{_hw(self.size)} px, stride {_hw(self.stride)}, padding {_hw(self.padding)} "
            f"(output of {self.layer or 'the model'})"
        )
        if self.lost_after:
            text = (
                f"not known for the network's last map (unknown after {self.lost_after}); "
                f"the last map with a known field is earlier: {text}"
            )
        if self.sees_whole_input:
            text += "; it also sees the whole input through a global path"
        if self.output_sees_whole_input:
            text += "; the model's output sees the whole input"
        return text

    def __str__(self) -> str:
        head = f"{self.model} at {'x'.join(map(str, self.input_size))}: {self.describe()}"
        return "\n".join([head, *[f"misaligned: {m}" for m in self.misalignments]])


def receptive_field_from_trace(t: Trace) -> ReceptiveField:
    """Build a :class:`ReceptiveField` from a :class:`~clothingclf.analysis.tracing.Trace`."""
    prop = _Propagator(t)
    prop.run()
    rows = _layer_rows(t, prop)
    row = _last_map_row(rows)
    last: _Measured | None
    if row is not None:
        assert row.stride is not None and row.padding is not None and row.size is not None
        last = (row.size, row.stride, row.padding, row.sees_whole_input)
        layer, lost_after = row.name, _lost_after(rows, row)
    else:  # no module returns a spatial map: take the last spatial value of the graph
        last, layer, lost_after = _last_spatial_value(t, prop), "", None
    if last is None:
        raise _no_spatial_map(t, prop)
    outs = [prop.states.get(o.node) for o in t.outputs if o.node >= 0]
    output_whole = bool(outs) and all(s is not None and s.whole and s.axes is None for s in outs)
    return ReceptiveField(
        model=t.model_name,
        input_size=t.input_size,
        size=last[0],
        stride=last[1],
        padding=last[2],
        layer=layer,
        sees_whole_input=last[3],
        output_sees_whole_input=output_whole,
        misalignments=tuple(dict.fromkeys(prop.misalignments)),
        layers=tuple(rows),
        lost_after=lost_after,
    )


# A field as reported: size, stride, padding, and whether it also sees the whole input.
_Measured = tuple[Pair, Pair, Pair, bool]


def _layer_rows(t: Trace, prop: _Propagator) -> list[LayerReceptiveField]:
    """The field of every module call's output, in the order the calls returned."""
    rows = []
    for call in t.modules:
        out = call.output
        if out is None:
            continue
        state = prop.states.get(out.node) if out.node >= 0 else None
        rows.append(_layer_row(call, out, state))
    return rows


def _layer_row(call: ModuleCall, out: TensorInfo, state: _State | None) -> LayerReceptiveField:
    if state is None or state.axes is None:
        return LayerReceptiveField(
            call.name,
            call.module_type,
            out.shape,
            None,
            None,
            None,
            sees_whole_input=state is not None and state.whole,
            note=(state.lost if state is not None else "does not depend on the input"),
        )
    h, w = state.axes
    return LayerReceptiveField(
        call.name,
        call.module_type,
        out.shape,
        (h.size, w.size),
        (h.stride, w.stride),
        (h.padding, w.padding),
        sees_whole_input=state.whole,
    )


def _last_map_row(rows: list[LayerReceptiveField]) -> LayerReceptiveField | None:
    """The last module output that is an N x C x H x W map with a known field."""
    maps = [r for r in rows if r.size is not None and len(r.output_shape) == 4]
    if len(maps) > 1 and maps[-1].name == "":  # prefer the submodule that made the same map
        a, b = maps[-1], maps[-2]
        if (a.size, a.stride, a.padding, a.output_shape) == (
            b.size,
            b.stride,
            b.padding,
            b.output_shape,
        ):
            maps = maps[:-1]
    return maps[-1] if maps else None


def _lost_after(rows: list[LayerReceptiveField], row: LayerReceptiveField) -> str | None:
    """Why the field is unknown for a spatial map after ``row``, if it is for one."""
    later = rows[next(i for i, r in enumerate(rows) if r is row) + 1 :]
    unknown = [
        r for r in later if len(r.output_shape) == 4 and r.size is None and not r.sees_whole_input
    ]
    if unknown:
        return f"{unknown[0].name or 'the model'} ({unknown[0].note})"
    return None


def _last_spatial_value(t: Trace, prop: _Propagator) -> _Measured | None:
    """The field of the last value of the graph that is still an image (not flattened)."""
    last = None
    for op in t.ops:
        for o in op.outputs:
            s = prop.states.get(o.node) if o.node >= 0 else None
            if s is not None and s.axes is not None and s.layout is not None:
                if s.layout[0][0] == s.layout[1][0]:
                    continue  # a flattened map: no longer an image
                h, w = s.axes
                last = ((h.size, w.size), (h.stride, w.stride), (h.padding, w.padding), s.whole)
    return last


def _no_spatial_map(t: Trace, prop: _Propagator) -> AnalysisError:
    """The error for a model without a spatial map, naming where the layout was lost."""
    lost = next(
        (
            s.lost
            for op in t.ops
            for o in op.outputs
            if o.node >= 0 and (s := prop.states.get(o.node)) is not None and s.lost
        ),
        None,
    )
    return AnalysisError(
        f"{t.model_name} has no spatial feature map to measure at input size {t.input_size}; "
        "expected a network of 2-D convolutions or pooling over N x C x H x W images"
        + (f" (the spatial layout was lost first at: {lost})." if lost else ".")
    )


def receptive_field(
    model: nn.Module | str, *, input_size: InputSize = (3, 224, 224)
) -> ReceptiveField:
    """Compute the receptive field of every layer by carrying it along the traced graph.

    Every path is followed (residual shortcuts, Inception branches, DenseNet concatenations),
    dilation is honoured, and joins of paths that do not line up are reported. The input size
    matters only where the architecture depends on it (adaptive pooling).

    Args:
        model: A module (on any device, or on ``meta``), or a torchvision model name.
        input_size: ``(C, H, W)``, ``(H, W)`` or one side.

    Returns:
        The :class:`ReceptiveField`.

    Raises:
        AnalysisError: If the model has no spatial feature map, or cannot run at that size.

    Example:
        >>> from clothingclf import analysis
        >>> rf = analysis.receptive_field("resnet18")
        >>> rf.size, rf.stride, rf.padding, rf.layer
        ((435, 435), (32, 32), (217, 217), 'layer4')
        >>> analysis.receptive_field("vgg16").size, analysis.receptive_field("alexnet").size
        ((212, 212), (195, 195))
        >>> rf.output_sees_whole_input, rf.layers[-1].describe()
        (True, 'whole input')
    """
    return receptive_field_from_trace(trace(model, input_size=input_size))
