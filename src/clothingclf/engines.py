"""Inference engines: what runs a predictor's networks, and how ``"auto"`` picks one.

* ``"torch"``: the networks in eager PyTorch, in the channels-last layout; float32, or
  under bfloat16 autocast with ``precision="bfloat16"``.
* ``"onnxruntime"``: the networks as one ONNX graph (the graph :func:`~clothingclf.export_model`
  writes) run by onnxruntime's CPU provider (``pip install 'clothingclf[onnx]'``); float32.
* ``"openvino"``: the same ONNX graph compiled by OpenVINO for the CPU
  (``pip install 'clothingclf[openvino]'``); float32, or bfloat16 where the CPU computes it
  natively (AVX512-BF16, AMX).

A graph is built from the weights the first time a model is run that way in a process (a
few seconds), checked against eager torch on random batches, and reused until the weights
change.

``engine="auto"`` on the CPU, for a call of at least :data:`AUTO_ONNX_MIN_IMAGES` images or
once a graph is built, runs the fastest engine installed: the first such call builds the
candidates' graphs and times them on one batch (:func:`fastest_engine`, kept for the
process). Otherwise torch (a few images, where building would cost more than it saves; a
GPU; no extra).

The candidates are float32, plus OpenVINO bfloat16 for a model whose recorded check
(:meth:`~clothingclf.ClothingClassifier.check_precision`) moved its top-1 accuracy by at most
:data:`AUTO_MAX_TOP1_CHANGE` (0.1 point) and only where the CPU computes bfloat16 natively:
``precision="auto"`` never trades accuracy it has not measured. ``precision="bfloat16"``
runs in OpenVINO where the CPU has native bfloat16 and the extra is installed (about twice
OpenVINO float32 there), else under torch autocast (emulated, and slow, on CPUs without it).
Every float32 engine agrees with eager float32 to 1e-4 on every probability; the tests check
it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import io
import itertools
import statistics
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .calibration import Calibration
from .exceptions import ExportError, InvalidParameterError, MissingDependencyError, first_line

__all__ = [
    "AUTO_MAX_TOP1_CHANGE",
    "AUTO_ONNX_MIN_IMAGES",
    "ENGINES",
    "PRECISIONS",
    "EngineChoice",
    "ProbabilityGraph",
    "build_int8",
    "choose_engine",
    "fastest_engine",
    "native_bfloat16",
    "onnxruntime_available",
    "openvino_available",
    "reduced_precision_allowed",
]

#: The values of ``engine``.
ENGINES = ("auto", "torch", "onnxruntime", "openvino")
#: The engines that run a graph built from the weights, in the order ``"auto"`` prefers
#: them before they are timed.
COMPILED_ENGINES: tuple[Literal["onnxruntime", "openvino"], ...] = ("onnxruntime", "openvino")
#: The values of ``precision``.
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
#: A precision an engine runs in.
Precision = Literal["float32", "bfloat16", "int8"]

#: ``engine="auto"`` builds the onnxruntime graph for a call of this many images or more.
AUTO_ONNX_MIN_IMAGES = 64

#: The ONNX opset of the graphs (onnxruntime 1.17+ runs it).
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
ONNX_HINT = 'Install the onnx extra: pip install "clothingclf[onnx]"'
OPENVINO_HINT = 'Install the openvino extra: pip install "clothingclf[openvino]"'

#: Normalised float batches (one per network) -> ``N x C`` float64 probabilities, the mean
#: over the networks.
Runner = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def onnxruntime_available() -> bool:
    """Whether the onnx extra (onnx and onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    """Whether the openvino extra (openvino and onnx) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


def _available(engine: str) -> bool:
    return onnxruntime_available() if engine == "onnxruntime" else openvino_available()


@functools.cache
def native_bfloat16() -> bool:
    """Whether OpenVINO computes bfloat16 natively on this CPU (its ``BF16`` capability:
    AVX512-BF16 or AMX); ``False`` without the openvino extra."""
    if not openvino_available():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True)
class EngineChoice:
    """What runs the networks: the engine, the precision, and why.

    Example:
        >>> choose_engine("torch", "float32", device=torch.device("cpu")).engine
        'torch'
    """

    engine: Literal["torch", "onnxruntime", "openvino"]
    precision: Precision
    reason: str


@dataclass(frozen=True)
class Timing:
    """What :func:`fastest_engine` measured: photos per second of each compiled engine
    and precision on one batch (``"openvino bfloat16"`` among them where the model's
    measured top-1 change allows it), the fastest, and why a reduced precision counts."""

    engine: Literal["onnxruntime", "openvino"]
    precision: Precision
    rates: dict[str, float]
    why: str = ""
    candidates: frozenset[tuple[str, str]] = frozenset()


def choose_engine(
    engine: str = "auto",
    precision: str = "auto",
    *,
    device: torch.device,
    images: int | None = None,
    built: bool = False,
    timing: Timing | None = None,
) -> EngineChoice:
    """Resolve ``engine`` and ``precision`` for networks that live on ``device``, for a
    call of ``images`` images (``None``: many); ``built`` tells whether a graph of them
    exists already, ``timing`` what :func:`fastest_engine` measured (``None``: not timed).

    Raises:
        InvalidParameterError: An unknown value, a compiled engine for a model on a GPU,
            bfloat16 with onnxruntime, or with OpenVINO on a CPU without native bfloat16.
        MissingDependencyError: A compiled engine without its extra.
    """
    if engine not in ENGINES:
        raise InvalidParameterError(
            f"engine must be one of {', '.join(map(repr, ENGINES))}; found {engine!r}."
        )
    if precision not in PRECISIONS:
        raise InvalidParameterError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}; found {precision!r}."
        )
    if precision == "int8":
        if device.type != "cpu":
            raise InvalidParameterError(
                f"precision='int8' runs in OpenVINO on the CPU, and this model is on {device}; "
                "load it with device='cpu'."
            )
        if engine in ("torch", "onnxruntime"):
            raise InvalidParameterError(
                f"precision='int8' runs in OpenVINO only; use engine='openvino' or 'auto', "
                f"not {engine!r}."
            )
        if not openvino_available():
            raise MissingDependencyError(f"precision='int8' needs OpenVINO. {OPENVINO_HINT}.")
        return EngineChoice("openvino", "int8", "asked for")
    resolved: Literal["float32", "bfloat16"] = "bfloat16" if precision == "bfloat16" else "float32"
    if engine in COMPILED_ENGINES:
        return _compiled_choice(engine, resolved, device)
    if engine == "torch":
        return EngineChoice("torch", resolved, "asked for")
    if device.type != "cpu":
        return EngineChoice("torch", resolved, f"the model is on {device.type}")
    if resolved == "bfloat16":
        if openvino_available() and native_bfloat16():
            return EngineChoice("openvino", resolved, "native bfloat16: OpenVINO is fastest")
        why = "OpenVINO sees no native bfloat16 on this CPU" if openvino_available() else None
        return EngineChoice("torch", resolved, why or "the openvino extra is not installed")
    installed: list[Literal["onnxruntime", "openvino"]] = [
        name for name in COMPILED_ENGINES if _available(name)
    ]
    if not installed:
        return EngineChoice(
            "torch", resolved, "neither the onnx nor the openvino extra is installed"
        )
    if not built and images is not None and images < AUTO_ONNX_MIN_IMAGES:
        return EngineChoice(
            "torch", resolved, f"fewer than {AUTO_ONNX_MIN_IMAGES} images: not worth building"
        )
    if timing is not None:
        rates = ", ".join(f"{name} {rate:.0f}" for name, rate in timing.rates.items())
        return EngineChoice(
            timing.engine,
            timing.precision,
            f"the fastest here, timed on first use ({rates} photos/s){timing.why}",
        )
    if built:
        return EngineChoice(installed[0], resolved, "on the CPU, its graph built already")
    return EngineChoice(
        installed[0], resolved, f"on the CPU with the {installed[0]} engine installed"
    )


def _compiled_choice(
    engine: str, precision: Literal["float32", "bfloat16"], device: torch.device
) -> EngineChoice:
    """``engine="onnxruntime"`` or ``"openvino"`` asked for, checked."""
    if device.type != "cpu":
        raise InvalidParameterError(
            f"engine={engine!r} runs on the CPU, and this model is on {device}; load it "
            "with device='cpu', or use engine='torch'."
        )
    if engine == "onnxruntime":
        if precision == "bfloat16":
            raise InvalidParameterError(
                "precision='bfloat16' needs engine='torch' or 'openvino' (the onnxruntime graph "
                "is float32)."
            )
        if not onnxruntime_available():
            raise MissingDependencyError(f"engine='onnxruntime' needs onnxruntime. {ONNX_HINT}.")
        return EngineChoice("onnxruntime", precision, "asked for")
    if not openvino_available():
        raise MissingDependencyError(f"engine='openvino' needs OpenVINO. {OPENVINO_HINT}.")
    if precision == "bfloat16" and not native_bfloat16():
        raise InvalidParameterError(
            "precision='bfloat16' with engine='openvino' needs a CPU with native bfloat16 "
            "(AVX512-BF16 or AMX), which this one lacks; use float32 (faster here), or "
            "engine='torch' to emulate bfloat16."
        )
    return EngineChoice("openvino", precision, "asked for")


class ProbabilityGraph(nn.Module):
    """The networks, each followed by a softmax (and the mirror-image average with
    ``tta``), each on its own input; the mean of their probabilities, then the
    ``calibration`` (the identity by default)."""

    def __init__(
        self,
        networks: Sequence[nn.Module],
        *,
        tta: bool,
        calibration: Calibration | None = None,
    ) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.tta = tta
        self.calibration = calibration or Calibration()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for network, x in zip(self.networks, inputs, strict=True):
            probabilities = torch.softmax(network(x), dim=1)
            if self.tta:
                mirrored = torch.softmax(network(torch.flip(x, dims=[3])), dim=1)
                probabilities = (probabilities + mirrored) / 2
            total = probabilities if total is None else total + probabilities
        assert total is not None
        mean = total if len(self.networks) == 1 else total / len(self.networks)
        return self.calibration.apply_tensor(mean)


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


class TorchRunner:
    """The networks in eager PyTorch on their device (float32, or bfloat16 autocast)."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device, *, bf16: bool) -> None:
        self.models = list(models)
        self.device = device
        self.bf16 = bf16

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for model, batch in zip(self.models, batches, strict=True):
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = model(batch)
            probabilities = logits.double().softmax(1)
            total = probabilities if total is None else total + probabilities
        assert total is not None
        return total / len(self.models)


#: The largest difference from eager float32 a float32 graph may show on the random
#: batches it is checked on when built.
PARITY_ATOL = 1e-4
#: The same for a bfloat16 graph (measured: 0.007 on the bundled model's random batches,
#: 0.03 on its test photos).
BF16_PARITY_ATOL = 0.1


def _onnx_graph(graph: ProbabilityGraph, shapes: Sequence[tuple[int, int]]) -> bytes:
    """The ONNX bytes of ``graph`` (CPU copies of the networks) with a dynamic batch axis."""
    generator = torch.Generator().manual_seed(0)
    example = tuple(torch.randn(2, 3, *shape, generator=generator) for shape in shapes)
    buffer = io.BytesIO()
    write_onnx_graph(graph, example, buffer, opset=ONNX_OPSET)
    return buffer.getvalue()


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
class _Graphs:
    """The compiled runners of one model as its weights are now (``None``: building failed),
    with the ONNX bytes they share and what :func:`fastest_engine` measured."""

    key: tuple[Any, ...]
    runners: dict[tuple[str, str], Runner | None]
    onnx: bytes | Exception | None = None  # an Exception: the export failed
    timing: Timing | None = None
    warned: bool = False


# The graphs built so far, by the first network of the model they run; weakly, so a model
# that is garbage-collected takes its graphs along.
_GRAPHS: weakref.WeakKeyDictionary[nn.Module, _Graphs] = weakref.WeakKeyDictionary()
_BUILD_LOCK = threading.RLock()


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


def _graphs(models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]) -> _Graphs:
    """The entry of these networks as they are now (a new one when the weights changed)."""
    key = _fingerprint(models, shapes)
    entry = _GRAPHS.get(models[0])
    if entry is None or entry.key != key:
        entry = _GRAPHS[models[0]] = _Graphs(key, {})
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
    entry: _Graphs,
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
            entry.onnx = _onnx_graph(graph, shapes)
        except ExportError as error:
            entry.onnx = error  # shared by every compiled engine: not tried twice
    if isinstance(entry.onnx, Exception):
        raise entry.onnx
    run: Runner
    try:
        if precision == "int8":
            from .quantization import quantized_graph

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
    raised (:class:`ExportError` for an export or parity failure).
    """
    torch_runner = TorchRunner(models, device, bf16=choice.precision == "bfloat16")
    if choice.engine == "torch":
        return torch_runner
    kind = (choice.engine, choice.precision)
    with _BUILD_LOCK:
        entry = _graphs(models, shapes)
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


#: Images per batch, and timed runs, of :func:`fastest_engine`'s measurement.
TIMING_BATCH, TIMING_RUNS = 16, 3


#: The largest change of top-1 accuracy, as a fraction (0.001 is 0.1 point), that a
#: model's recorded precision check may show for ``"auto"`` to run that reduced precision.
AUTO_MAX_TOP1_CHANGE = 0.001


def reduced_precision_allowed(check: Mapping[str, Any] | None, precision: str = "bfloat16") -> bool:
    """Whether a model's check of ``precision`` (``ClothingClassifier.check_precision``)
    lets ``"auto"`` run it: its top-1 accuracy moved by at most
    :data:`AUTO_MAX_TOP1_CHANGE`, OpenVINO is installed, and for bfloat16 this CPU
    computes it natively."""
    return (
        check is not None
        and abs(float(check["top1_change"])) <= AUTO_MAX_TOP1_CHANGE
        and openvino_available()
        and (precision != "bfloat16" or native_bfloat16())
    )


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
    from .quantization import nncf_available

    if not nncf_available():
        raise MissingDependencyError(
            "int8 quantisation needs NNCF and OpenVINO. Install the int8 extra: pip install "
            '"clothingclf[int8]".'
        )
    with _BUILD_LOCK:
        entry = _graphs(models, shapes)
        entry.runners[("openvino", "int8")] = _build(
            entry, "openvino", "int8", models, shapes, calibration
        )
        entry.timing = None  # the candidates changed


def fastest_engine(
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    *,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
) -> Timing | None:
    """Build the graph of every installed compiled engine in float32 for these networks,
    time each on one batch of ``TIMING_BATCH`` (16) random images (the median of
    ``TIMING_RUNS`` (3) runs after a warm-up), and keep the result for the process (until
    the weights change). OpenVINO bfloat16, and int8 once built (:func:`build_int8`), are
    candidates too where :func:`reduced_precision_allowed` accepts the model's ``checks``.
    ``None`` with fewer than two candidates, or when none builds.

    A second or so beside the builds; the graphs built are the ones the call then uses.
    """
    Kind = tuple[Literal["onnxruntime", "openvino"], Precision]
    candidates: list[Kind] = [(name, "float32") for name in COMPILED_ENGINES if _available(name)]
    reasons: dict[str, str] = {}
    with _BUILD_LOCK:
        entry = _graphs(models, shapes)
        for precision in ("bfloat16", "int8"):
            check = (checks or {}).get(precision)
            built = precision != "int8" or entry.runners.get(("openvino", "int8")) is not None
            if check is not None and built and reduced_precision_allowed(check, precision):
                candidates.append(("openvino", precision))
                native = " is native here and" if precision == "bfloat16" else ""
                reasons[precision] = (
                    f"; {precision}{native} moved this model's top-1 accuracy by "
                    f"{float(check['top1_change']) * 100:+.2f} points on "
                    f"{check['photos']} photos (allowed: 0.1)"
                )
        if len(candidates) < 2:
            return None
        if entry.timing is not None and entry.timing.candidates == frozenset(candidates):
            return entry.timing
        generator = torch.Generator().manual_seed(2)
        batches = [torch.randn(TIMING_BATCH, 3, *shape, generator=generator) for shape in shapes]
        rates: dict[Kind, float] = {}
        for kind in candidates:
            choice = EngineChoice(*kind, "timed")
            run = runner(choice, models, shapes, torch.device("cpu"), fallback=True)
            if entry.runners.get(kind) is None:
                continue  # did not build: torch's runner came back
            run(batches)
            samples = []
            for _ in range(TIMING_RUNS):
                started = time.perf_counter()
                run(batches)
                samples.append(time.perf_counter() - started)
            rates[kind] = TIMING_BATCH / statistics.median(samples)
        if not rates:
            return None
        engine, precision = max(rates, key=rates.__getitem__)  # one that built, at least
        named = {f"{e} {p}" if p != "float32" else e: rate for (e, p), rate in rates.items()}
        why = reasons.get(precision, "")
        entry.timing = Timing(engine, precision, named, why, frozenset(candidates))
        return entry.timing
