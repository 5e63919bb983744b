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

from typing import Any

import torch
from torch import nn

from ..exceptions import AnalysisError, did_you_mean
from ._meta_device import _meta_copy, _parameters_on_meta, _plain_copy
from ._recorder import _run
from ._records import VIEW_WRITE, ModuleCall, OpRecord, TensorInfo, Trace

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


# The trace runs on the meta device, so any side costs no memory; above this bound the
# element counts of a feature map near the input would leave int64.
_MAX_SIDE = 1_000_000
# A model that cannot run on meta is run for real, on inputs up to this many pixels.
_MAX_REAL_PIXELS = 4096 * 4096


def _normalise_size(input_size: InputSize) -> tuple[int, int, int]:
    size: tuple[Any, ...] = ()
    if isinstance(input_size, int):
        size = (3, input_size, input_size)
    elif isinstance(input_size, (tuple, list)):
        size = tuple(input_size)
        if len(size) == 2:
            size = (3, *size)
    if len(size) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise AnalysisError(
            f"input_size must be an int, (H, W) or (C, H, W) of positive ints; found "
            f"{input_size!r}. Pass for example input_size=(3, 224, 224)."
        )
    if not all(0 < s <= _MAX_SIDE for s in size):
        raise AnalysisError(
            f"input_size must be from 1 to {_MAX_SIDE:,} a side (the trace on the meta device "
            f"costs no memory at any size, but beyond that a feature map's element count "
            f"leaves int64); found {size}."
        )
    return (size[0], size[1], size[2])


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
        raise AnalysisError(
            f"torchvision has no model named {name!r}.{did_you_mean(name, known, most=4, show=str)}"
            " Use a name of torchvision.models.list_models(), e.g. 'resnet18'."
        )
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("init_weights", True)  # silences torchvision's FutureWarning
    with _parameters_on_meta():
        model: nn.Module = torchvision.models.get_model(name, weights=None, **kwargs)
    return model.eval()


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
        if size[1] * size[2] > _MAX_REAL_PIXELS:
            raise AnalysisError(
                f"could not trace {model_name} on the meta device ({reason}), and an input of "
                f"{size[1]} x {size[2]} is too large to run for real (at most "
                f"{_MAX_REAL_PIXELS:,} pixels). Use a smaller input_size."
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
