"""The ONNX graph of a model's networks: what the compiled engines run and the export writes."""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..exceptions import ExportError, first_line
from ..probabilities import ProbabilityGraph

__all__ = [
    "INPUT_NAME",
    "ONNX_OPSET",
    "OUTPUT_NAME",
    "cpu_copy",
    "input_names",
    "onnx_bytes",
    "onnx_session",
    "quiet_torch_exporters",
    "write_onnx_graph",
]

#: The ONNX opset of the graphs (onnxruntime 1.17+ runs it).
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


@contextlib.contextmanager
def quiet_torch_exporters() -> Iterator[None]:
    """Silence the deprecation notices of the two exporters chosen on purpose.

    The legacy (TorchScript-based) ONNX exporter is used because the new one needs the
    ``onnxscript`` package and ``torch.export`` to handle every backbone. Tracer warnings
    about shapes read as Python numbers are covered by the parity checks.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"The feature will be removed", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        yield


def input_names(count: int) -> list[str]:
    """``input`` for the first network's images, ``input_2``, ``input_3``... after it."""
    return [INPUT_NAME] + [f"{INPUT_NAME}_{n}" for n in range(2, count + 1)]


def cpu_copy(network: nn.Module) -> nn.Module:
    """A copy of ``network`` on the CPU in the default layout, in evaluation mode (what
    the exporters trace)."""
    return copy.deepcopy(network).to("cpu").to(memory_format=torch.contiguous_format).eval()


def write_onnx_graph(
    graph: nn.Module, example: tuple[torch.Tensor, ...], target: Any, *, opset: int
) -> None:
    """Trace ``graph`` on ``example`` into an ONNX model with a dynamic batch axis,
    written to ``target`` (a path or a binary file object).

    Raises:
        ExportError: The exporter failed (the message says what to try).
    """
    names = input_names(len(example))
    try:
        with torch.no_grad(), quiet_torch_exporters():
            torch.onnx.export(
                graph,
                example,
                target,
                dynamo=False,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={**{name: {0: "batch"} for name in names}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
    except OSError:
        raise
    except Exception as error:
        raise ExportError(
            f"ONNX export failed ({type(error).__name__}: {first_line(error, 'no message')}). Try "
            "format='torchscript' or engine='torch', another opset, or report the backbone "
            "that fails."
        ) from error


def onnx_session(model: bytes | str) -> Any:
    """An onnxruntime session on the CPU for an ONNX model (its bytes or its path)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_bytes(graph: ProbabilityGraph, shapes: Sequence[tuple[int, int]]) -> bytes:
    """The ONNX bytes of ``graph`` (CPU copies of the networks) with a dynamic batch axis."""
    generator = torch.Generator().manual_seed(0)
    example = tuple(torch.randn(2, 3, *shape, generator=generator) for shape in shapes)
    buffer = io.BytesIO()
    write_onnx_graph(graph, example, buffer, opset=ONNX_OPSET)
    return buffer.getvalue()
