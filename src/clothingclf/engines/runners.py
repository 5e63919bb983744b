"""The runners of the compiled engines, built from the weights once and kept."""

from __future__ import annotations

import itertools
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..exceptions import ExportError, InvalidParameterError, MissingDependencyError, first_line
from ..probabilities import ProbabilityGraph, Runner, TorchRunner
from .choice import EngineChoice, Precision, Timing
from .onnx import OUTPUT_NAME, cpu_copy, input_names, onnx_bytes, onnx_session

__all__ = [
    "BF16_PARITY_ATOL",
    "BUILD_LOCK",
    "PARITY_ATOL",
    "CompiledGraphs",
    "OnnxRunner",
    "OpenVinoRunner",
    "build_int8",
    "compiled_graphs",
    "has_onnx_graph",
    "runner",
]

#: The largest difference from eager float32 a float32 graph may show on the random
#: batches it is checked on when built.
PARITY_ATOL = 1e-4
#: The same for a bfloat16 graph (measured: 0.007 on the bundled model's random batches,
#: 0.03 on its test photos).
BF16_PARITY_ATOL = 0.1


def _check_parity(
    run: Runner, graph: ProbabilityGraph, shapes: Sequence[tuple[int, int]], what: str, atol: float
) -> None:
    """Compare ``run`` with eager torch on random batches of 1 and 3 images (as
    :func:`~clothingclf.export_model` checks an export).

    Raises:
        ExportError: A probability differs by more than ``atol``.
    """
    generator = torch.Generator().manual_seed(1)
    for count in (1, 3):
        batches = [torch.randn(count, 3, *shape, generator=generator) for shape in shapes]
        with torch.no_grad():
            expected = graph(*batches).double()
        worst = float((run(batches) - expected).abs().max())
        if not worst <= atol:
            raise ExportError(
                f"The {what} graph differs from torch by up to {worst:.1e} on a batch of "
                f"{count} (allowed: {atol:.0e}); use engine='torch'."
            )


def _normalised(out: np.ndarray) -> torch.Tensor:
    """float64 rows that sum to 1, as torch's do."""
    probabilities = torch.from_numpy(np.array(out, dtype=np.float64))
    return probabilities / probabilities.sum(1, keepdim=True)


def _feed(batches: Sequence[torch.Tensor]) -> list[np.ndarray]:
    return [np.ascontiguousarray(b.detach().cpu().numpy(), dtype=np.float32) for b in batches]


class OnnxRunner:
    """The networks' ONNX graph in onnxruntime (CPU), float32."""

    def __init__(self, onnx: bytes, count: int) -> None:
        self.session = onnx_session(onnx)
        self.names = input_names(count)

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        feed = dict(zip(self.names, _feed(batches), strict=True))
        return _normalised(self.session.run([OUTPUT_NAME], feed)[0])


class OpenVinoRunner:
    """The networks' ONNX graph compiled by OpenVINO for the CPU, in float32 or bfloat16,
    for latency (one request at a time on all of torch's threads); one request per
    calling thread, so decoding threads and callers may share it."""

    def __init__(self, graph: Any, precision: Precision) -> None:
        """``graph``: ONNX bytes, or an OpenVINO model (the int8 one of
        :func:`~clothingclf.quantization.quantized_graph`, whose layers left in floating
        point run in float32)."""
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        }
        model = core.read_model(model=graph, weights=b"") if isinstance(graph, bytes) else graph
        self.compiled = core.compile_model(model, "CPU", config)
        self.output = self.compiled.output(0)
        self.local = threading.local()

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        request = getattr(self.local, "request", None)
        if request is None:
            request = self.local.request = self.compiled.create_infer_request()
        result = request.infer(dict(enumerate(_feed(batches))))
        return _normalised(result[self.output])  # a copy: the request reuses its output


@dataclass
class CompiledGraphs:
    """The compiled runners of one model as its weights are now (``None``: building failed),
    with the ONNX bytes they share and what
    :func:`~clothingclf.engines.timing.fastest_engine` measured."""

    key: tuple[Any, ...]
    runners: dict[tuple[str, str], Runner | None]
    onnx: bytes | Exception | None = None  # an Exception: the export failed
    timing: Timing | None = None
    warned: bool = False


# The graphs built so far, by the first network of the model they run; weakly, so a model
# that is garbage-collected takes its graphs along.
_GRAPHS: weakref.WeakKeyDictionary[nn.Module, CompiledGraphs] = weakref.WeakKeyDictionary()
BUILD_LOCK = threading.RLock()


def _fingerprint(models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]) -> tuple[Any, ...]:
    """Which networks on which input sizes (the graph's are fixed), and which state of
    their weights: a tensor changed in place (``load_state_dict``, an optimiser step) has a
    new version, so a graph built before is not used for it."""
    return tuple(
        (id(model), tuple(shape), *_versions(model))
        for model, shape in zip(models, shapes, strict=True)
    )


def _versions(model: nn.Module) -> Iterator[tuple[int, int]]:
    # each module's own tensors in one walk: the tensors of parameters() and buffers() at
    # half their cost (two walks) and a twentieth of state_dict()'s
    for module in model.modules():
        for tensor in itertools.chain(module._parameters.values(), module._buffers.values()):
            if tensor is not None:
                yield tensor.data_ptr(), tensor._version


def compiled_graphs(
    models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]
) -> CompiledGraphs:
    """The entry of these networks as they are now (a new one when the weights changed)."""
    key = _fingerprint(models, shapes)
    entry = _GRAPHS.get(models[0])
    if entry is None or entry.key != key:
        entry = _GRAPHS[models[0]] = CompiledGraphs(key, {})
    return entry


def has_onnx_graph(models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]) -> bool:
    """Whether a compiled graph (onnxruntime or OpenVINO) of these networks on inputs of
    these sizes, as their weights are now, was built in this process."""
    entry = _GRAPHS.get(models[0]) if models else None
    return (
        entry is not None
        and any(run is not None for run in tuple(entry.runners.values()))
        and entry.key == _fingerprint(models, shapes)
    )


def _build(
    entry: CompiledGraphs,
    engine: str,
    precision: Precision,
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    calibration: Sequence[Sequence[np.ndarray]] = (),
) -> Runner:
    """A compiled runner, checked against eager torch (the caller holds the lock); an int8
    one is quantised on ``calibration`` and measured by the caller instead."""
    graph = ProbabilityGraph([cpu_copy(model) for model in models], tta=False).eval()
    if entry.onnx is None:
        try:
            entry.onnx = onnx_bytes(graph, shapes)
        except ExportError as error:
            entry.onnx = error  # shared by every compiled engine: not tried twice
    if isinstance(entry.onnx, Exception):
        raise entry.onnx
    run: Runner
    try:
        if precision == "int8":
            from ..quantization import quantized_graph

            return OpenVinoRunner(quantized_graph(entry.onnx, calibration), "int8")
        if engine == "onnxruntime":
            run = OnnxRunner(entry.onnx, len(models))
        else:
            run = OpenVinoRunner(entry.onnx, precision)
    except Exception as error:  # the runtime refused the graph (an operator it lacks, ...)
        raise ExportError(
            f"{engine} could not build this model's {precision} graph ({type(error).__name__}: "
            f"{first_line(error, 'no message')}); use engine='torch'."
        ) from error
    atol = BF16_PARITY_ATOL if precision == "bfloat16" else PARITY_ATOL
    _check_parity(run, graph, shapes, f"{engine} {precision}", atol)
    return run


def runner(
    choice: EngineChoice,
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    device: torch.device,
    *,
    fallback: bool = False,
) -> Runner:
    """The runner of ``choice`` for these networks (a compiled one is built once per state
    of the weights and kept).

    With ``fallback`` (``engine="auto"``) a model whose graph cannot be built, or does not
    match torch, runs in torch instead, with one warning per model; otherwise the error is
    raised (:class:`~clothingclf.exceptions.ExportError` for an export or parity failure).
    """
    torch_runner = TorchRunner(models, device, bf16=choice.precision == "bfloat16")
    if choice.engine == "torch":
        return torch_runner
    kind = (choice.engine, choice.precision)
    with BUILD_LOCK:
        entry = compiled_graphs(models, shapes)
        if choice.precision == "int8" and entry.runners.get(kind) is None:
            raise InvalidParameterError(
                "This model has no int8 graph in this process: call "
                "clf.check_precision(validation_split, precision='int8') first (it quantises "
                "on those photos and measures the cost; the graph is kept until the process "
                "ends or the weights change)."
            )
        if kind not in entry.runners or (entry.runners[kind] is None and not fallback):
            try:
                entry.runners[kind] = _build(entry, *kind, models, shapes)
            except Exception as error:
                if not fallback:
                    raise
                if not entry.warned:  # once per model, whichever engine failed first
                    warnings.warn(
                        f"engine='auto': this model does not run in {choice.engine} "
                        f"({first_line(error, 'no message')[:200]}); it runs in torch instead.",
                        stacklevel=4,
                    )
                entry.runners[kind], entry.warned = None, True
        built = entry.runners[kind]
    return built if built is not None else torch_runner


def build_int8(
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    calibration: Sequence[Sequence[np.ndarray]],
) -> None:
    """Quantise these networks' graph to int8 on ``calibration`` (per photo, one
    ``1 x 3 x H x W`` float32 input per network) and keep it, as ``engine="openvino",
    precision="int8"``, for the process (until the weights change).

    Raises:
        MissingDependencyError: NNCF or OpenVINO is not installed (the int8 extra).
        ExportError: The networks do not export to ONNX.
    """
    from ..quantization import nncf_available

    if not nncf_available():
        raise MissingDependencyError(
            "int8 quantisation needs NNCF and OpenVINO. Install the int8 extra: pip install "
            '"clothingclf[int8]".'
        )
    with BUILD_LOCK:
        entry = compiled_graphs(models, shapes)
        entry.runners[("openvino", "int8")] = _build(
            entry, "openvino", "int8", models, shapes, calibration
        )
        entry.timing = None  # the candidates changed
