"""Inference engines: what runs a predictor's networks, and how ``"auto"`` picks one.

* ``"torch"``: the networks in eager PyTorch, in the channels-last layout; float32, or
  under bfloat16 autocast with ``precision="bfloat16"``.
* ``"onnxruntime"``: the networks as one ONNX graph (the graph :func:`~clothingclf.export_model`
  writes) run by onnxruntime's CPU provider (``pip install 'clothingclf[onnx]'``). The graph
  is built from the weights the first time a model is run this way in a process (a few
  seconds) and reused after that.

``engine="auto"`` is onnxruntime on the CPU when the onnx extra is installed (faster than
eager torch on every CPU measured, see the performance page) for a call of at least
:data:`AUTO_ONNX_MIN_IMAGES` images, or once the model's graph is built; torch otherwise
(a few images, where building the graph would cost more than it saves; a GPU; no extra).

``precision="auto"`` is float32: bfloat16 (torch only) is used only when asked for. On the
bundled model's test split it changed no label (probabilities by up to 0.03), within the
0.1 point of accuracy the library would trade for speed without asking, but on the CPUs
measured onnxruntime float32 is faster than torch bfloat16 even where bfloat16 is native,
and on GPUs it was not measured (docs: Performance). Both float32 engines agree with eager
float32 to 1e-4 on every probability; the tests check it.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import itertools
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .calibration import Calibration
from .exceptions import ExportError, InvalidParameterError, MissingDependencyError, first_line

__all__ = [
    "AUTO_ONNX_MIN_IMAGES",
    "ENGINES",
    "PRECISIONS",
    "EngineChoice",
    "ProbabilityGraph",
    "choose_engine",
    "onnxruntime_available",
]

#: The values of ``engine``.
ENGINES = ("auto", "torch", "onnxruntime")
#: The values of ``precision``.
PRECISIONS = ("auto", "float32", "bfloat16")

#: ``engine="auto"`` builds the onnxruntime graph for a call of this many images or more.
AUTO_ONNX_MIN_IMAGES = 64

#: The ONNX opset of the graphs (onnxruntime 1.17+ runs it).
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
ONNX_HINT = 'Install the onnx extra: pip install "clothingclf[onnx]"'

#: Normalised float batches (one per network) -> ``N x C`` float64 probabilities, the mean
#: over the networks.
Runner = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def onnxruntime_available() -> bool:
    """Whether the onnx extra (onnx and onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@dataclass(frozen=True)
class EngineChoice:
    """What runs the networks: the engine, the precision, and why.

    Example:
        >>> choose_engine("torch", "float32", device=torch.device("cpu")).engine
        'torch'
    """

    engine: Literal["torch", "onnxruntime"]
    precision: Literal["float32", "bfloat16"]
    reason: str


def choose_engine(
    engine: str = "auto",
    precision: str = "auto",
    *,
    device: torch.device,
    images: int | None = None,
    built: bool = False,
) -> EngineChoice:
    """Resolve ``engine`` and ``precision`` for networks that live on ``device``, for a
    call of ``images`` images (``None``: many), ``built`` telling whether their onnxruntime
    graph exists already.

    Raises:
        InvalidParameterError: An unknown value, onnxruntime for a model on a GPU, or
            bfloat16 with onnxruntime.
        MissingDependencyError: ``engine="onnxruntime"`` without the onnx extra.
    """
    if engine not in ENGINES:
        raise InvalidParameterError(
            f"engine must be one of {', '.join(map(repr, ENGINES))}; found {engine!r}."
        )
    if precision not in PRECISIONS:
        raise InvalidParameterError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}; found {precision!r}."
        )
    resolved: Literal["float32", "bfloat16"] = "bfloat16" if precision == "bfloat16" else "float32"
    if engine == "onnxruntime":
        if device.type != "cpu":
            raise InvalidParameterError(
                f"engine='onnxruntime' runs on the CPU, and this model is on {device}; load it "
                "with device='cpu', or use engine='torch'."
            )
        if resolved == "bfloat16":
            raise InvalidParameterError(
                "precision='bfloat16' needs engine='torch' (the onnxruntime graph is float32)."
            )
        if not onnxruntime_available():
            raise MissingDependencyError(f"engine='onnxruntime' needs onnxruntime. {ONNX_HINT}.")
        return EngineChoice("onnxruntime", "float32", "asked for")
    if engine == "torch":
        return EngineChoice("torch", resolved, "asked for")
    if device.type != "cpu":
        return EngineChoice("torch", resolved, f"the model is on {device.type}")
    if resolved == "bfloat16":
        return EngineChoice("torch", resolved, "bfloat16 runs in torch only")
    if not onnxruntime_available():
        return EngineChoice("torch", resolved, "the onnx extra is not installed")
    if built:
        return EngineChoice("onnxruntime", resolved, "on the CPU, its graph built already")
    if images is not None and images < AUTO_ONNX_MIN_IMAGES:
        return EngineChoice(
            "torch", resolved, f"fewer than {AUTO_ONNX_MIN_IMAGES} images: not worth building"
        )
    return EngineChoice("onnxruntime", resolved, "on the CPU with the onnx extra installed")


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


#: The largest difference from eager float32 an onnxruntime graph may show on the random
#: batches it is checked on when built.
PARITY_ATOL = 1e-4


class OnnxRunner:
    """The networks as one ONNX graph in onnxruntime (CPU), checked against eager torch on
    random batches of 1 and 3 images when built (as :func:`~clothingclf.export_model` checks
    an export)."""

    def __init__(self, models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]) -> None:
        graph = ProbabilityGraph([cpu_copy(model) for model in models], tta=False).eval()
        generator = torch.Generator().manual_seed(0)
        example = tuple(torch.randn(2, 3, *shape, generator=generator) for shape in shapes)
        buffer = io.BytesIO()
        write_onnx_graph(graph, example, buffer, opset=ONNX_OPSET)
        self.session = onnx_session(buffer.getvalue())
        self.names = input_names(len(models))
        for count in (1, 3):
            batches = [torch.randn(count, 3, *shape, generator=generator) for shape in shapes]
            with torch.no_grad():
                expected = graph(*batches).double()
            worst = float((self(batches) - expected).abs().max())
            if not worst <= PARITY_ATOL:
                raise ExportError(
                    f"The onnxruntime graph differs from torch by up to {worst:.1e} on a batch of "
                    f"{count} (allowed: {PARITY_ATOL:.0e}); use engine='torch'."
                )

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        feed = {
            name: np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
            for name, batch in zip(self.names, batches, strict=True)
        }
        out = torch.from_numpy(np.asarray(self.session.run([OUTPUT_NAME], feed)[0])).double()
        return out / out.sum(1, keepdim=True)  # rows sum to 1 in float64, as torch's do


# The onnxruntime graphs built so far (None: building failed), by the first network of the
# model they run, with the fingerprint of the weights they were built from; weakly, so a
# model that is garbage-collected takes its graph along.
_ONNX_RUNNERS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], OnnxRunner | None]] = (
    weakref.WeakKeyDictionary()
)
_BUILD_LOCK = threading.Lock()


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


def has_onnx_graph(models: Sequence[nn.Module], shapes: Sequence[tuple[int, int]]) -> bool:
    """Whether an onnxruntime graph of these networks on inputs of these sizes, as their
    weights are now, was built in this process."""
    cached = _ONNX_RUNNERS.get(models[0]) if models else None
    return (
        cached is not None and cached[1] is not None and cached[0] == _fingerprint(models, shapes)
    )


def runner(
    choice: EngineChoice,
    models: Sequence[nn.Module],
    shapes: Sequence[tuple[int, int]],
    device: torch.device,
    *,
    fallback: bool = False,
) -> Runner:
    """The runner of ``choice`` for these networks (onnxruntime's built once per state of
    the weights and kept).

    With ``fallback`` (``engine="auto"``) a model whose graph cannot be built, or does not
    match torch, runs in torch instead, with one warning per model; otherwise the error is
    raised (:class:`ExportError` for an export or parity failure).
    """
    torch_runner = TorchRunner(models, device, bf16=choice.precision == "bfloat16")
    if choice.engine == "torch":
        return torch_runner
    key = _fingerprint(models, shapes)
    with _BUILD_LOCK:
        cached = _ONNX_RUNNERS.get(models[0])
        if cached is None or cached[0] != key or (cached[1] is None and not fallback):
            try:
                cached = (key, OnnxRunner(models, shapes))
            except Exception as error:
                if not fallback:
                    raise
                warnings.warn(
                    f"engine='auto': this model does not run in onnxruntime "
                    f"({first_line(error, 'no message')[:200]}); it runs in torch instead.",
                    stacklevel=4,
                )
                cached = (key, None)
            _ONNX_RUNNERS[models[0]] = cached
    return cached[1] if cached[1] is not None else torch_runner
