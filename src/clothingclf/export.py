"""Export a fitted classifier to ONNX or TorchScript, with its preprocessing beside it.

The exported graph takes what :meth:`Preprocessing.eval_transform
<clothingclf.backbones.Preprocessing.eval_transform>` produces, a float32 batch
``N × 3 × H × W`` of normalised RGB images (``N`` may be any size; ``H = W = S`` unless
the model was trained on a non-square ``aspect``), and returns
**probabilities** ``N × C`` (the softmax is part of the graph, each row sums to 1, columns
in class order). A model trained with test-time augmentation (``tta``) averages the image
and its mirror image inside the graph too, so the exported model scores exactly like
:meth:`ClothingClassifier.predict_proba <clothingclf.ClothingClassifier.predict_proba>`.
A model of several networks (``extra_views``) becomes one graph with an input per network
(``input``, ``input_2``, ...; each the same photos prepared for that network) that averages
their probabilities, and the JSON lists every input under ``inputs``. The model's
calibration (temperature scaling, after the class prior that its default ``balance`` adds
back) is the graph's last step, as in ``predict_proba``; the JSON's ``calibration`` says
which temperature, prior and balance.

Beside the model file ``<file>`` a sidecar ``<file>.json`` says how to feed it::

    {"format": "onnx", "library": "clothingclf", "library_version": "0.1.0",
     "classes": ["Dress", "Hat", ...], "input_name": "input",
     "input_shape": ["batch", 3, 224, 224], "input_size": 224, "resize_size": 256,
     "aspect": 1.0,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "interpolation": "bilinear", "output_name": "probabilities",
     "output": "probabilities", "tta": false, "opset": 17, ...}

Both files are written atomically (a temporary file renamed into place), and by default
the exported model is run on random batches of 1 and 3 images and compared with the
PyTorch model: an export that does not reproduce the probabilities to ``atol`` raises
:class:`~clothingclf.exceptions.ExportError` and leaves no file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from ._paths import checked_path, refuse_to_replace_non_file, replacing, write_error
from ._version import __version__
from .engines.choice import ONNX_HINT
from .engines.onnx import (
    ONNX_OPSET,
    OUTPUT_NAME,
    cpu_copy,
    input_names,
    onnx_session,
    quiet_torch_exporters,
    write_onnx_graph,
)
from .exceptions import (
    ExportError,
    InvalidParameterError,
    MissingDependencyError,
    SaveError,
    first_line,
)
from .predictor import HasPredictor, Predictor
from .probabilities import ProbabilityGraph

if TYPE_CHECKING:
    from .backbones import Preprocessing

__all__ = ["DEFAULT_OPSET", "ExportedModel", "export_model", "read_export_metadata"]

#: The ONNX opset written when ``opset`` is not given (onnxruntime 1.17+ runs it).
DEFAULT_OPSET = ONNX_OPSET
_FORMATS = ("onnx", "torchscript")
_VERIFY_BATCHES = (1, 3)
_ONNX_HINT = ONNX_HINT


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`export_model` wrote.

    Attributes:
        path: The model file (``.onnx`` or TorchScript ``.pt``).
        metadata_path: The sidecar JSON (``<path>.json``) with classes and preprocessing.
        format: ``"onnx"`` or ``"torchscript"``.
        metadata: The content of the sidecar JSON.
        max_abs_diff: The largest difference between the exported model's probabilities and
            PyTorch's over the verification batches, or ``None`` when not verified.

    Example:
        >>> e = ExportedModel(path=Path("m.onnx"), metadata_path=Path("m.onnx.json"),
        ...                   format="onnx", metadata={"classes": ["Hat"]}, max_abs_diff=0.0)
        >>> e.classes
        ['Hat']
    """

    path: Path
    metadata_path: Path
    format: str
    metadata: dict[str, Any] = field(repr=False)
    max_abs_diff: float | None = None

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the output columns."""
        return list(self.metadata["classes"])


def _import_onnx(*, runtime: bool) -> tuple[Any, Any]:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(
            f"ONNX export needs the onnx package, which is not installed. {_ONNX_HINT}."
        ) from None
    ort: Any = None
    if runtime:
        try:
            import onnxruntime

            ort = onnxruntime
        except ImportError:
            raise MissingDependencyError(
                "Checking the exported ONNX model needs onnxruntime, which is not installed. "
                f"{_ONNX_HINT}, or pass verify=False."
            ) from None
    return onnx, ort


def _input_metadata(name: str, prep: Preprocessing) -> dict[str, Any]:
    """How to make the images of one input of the graph."""
    height, width = prep.input_shape
    return {
        "input_name": name,
        "input_shape": ["batch", 3, height, width],
        "input_dtype": "float32",
        "input_size": int(prep.image_size),
        "resize_size": int(prep.resize_size),
        "aspect": float(prep.aspect),
        "mean": [float(v) for v in prep.mean],
        "std": [float(v) for v in prep.std],
        "interpolation": str(prep.interpolation),
        "preprocessing": (
            "RGB image; resize the shorter side to resize_size (antialiased, interpolation) "
            "and centre-crop a resize_size square (the canvas)"
            if prep.aspect == 1.0
            else "RGB image; resize it to cover a canvas resize_size wide and "
            f"{prep.resize_shape[0]} tall (scale = max(resize_size / width, "
            f"{prep.resize_shape[0]} / height), antialiased, interpolation) and centre-crop "
            "it to the canvas"
        )
        + f"; then centre-crop input_size wide and {height} tall from the canvas (offsets "
        "round((canvas - crop) / 2), halves to even, as torchvision's center_crop); scale "
        "pixels to [0, 1], subtract mean and divide by std per channel, layout channels x "
        "height x width",
    }


def _metadata(predictor: Predictor, fmt: str, opset: int | None) -> dict[str, Any]:
    networks = predictor.networks
    tta = predictor.tta
    inputs = [
        _input_metadata(name, prep)
        for name, (_, prep) in zip(input_names(len(networks)), networks, strict=True)
    ]
    data: dict[str, Any] = {
        "format": fmt,
        "library": "clothingclf",
        "library_version": __version__,
        "torch_version": str(torch.__version__),
        "classes": [str(c) for c in predictor.classes],
        # The first (or only) input at the top level; every input in "inputs".
        **inputs[0],
        "inputs": inputs,
        "output_name": OUTPUT_NAME,
        "output_shape": ["batch", len(predictor.classes)],
        "output": "probabilities",
        "output_averages": len(networks),
        "tta": tta,
        # Applied inside the graph: softmax((log(mean probabilities) + shift) / temperature),
        # shift = (1 - balance) * logit_adjustment * log(prior) (0 without a prior).
        "calibration": predictor.calibration.to_dict(),
    }
    if opset is not None:
        data["opset"] = opset
    return data


def export_model(
    classifier: HasPredictor,
    path: str | os.PathLike[str],
    *,
    format: Literal["onnx", "torchscript"] = "onnx",
    opset: int | None = None,
    verify: bool = True,
    atol: float = 1e-4,
) -> ExportedModel:
    """Write a fitted classifier as an ONNX or TorchScript file, plus ``<path>.json``.

    Args:
        classifier: A fitted or loaded :class:`~clothingclf.ClothingClassifier`.
        path: The model file to write (conventionally ``model.onnx`` or ``model.ts.pt``);
            parent folders are created; an existing file is replaced only on success.
        format: ``"onnx"`` (needs the ``onnx`` extra) or ``"torchscript"``.
        opset: The ONNX opset (default 17); only for ONNX.
        verify: Run the exported file on random batches of 1 and 3 images (through
            onnxruntime for ONNX) and compare with the PyTorch model.
        atol: The largest difference in probability that ``verify`` accepts.

    Returns:
        An :class:`ExportedModel` naming both files.

    Raises:
        NotFittedError: The classifier was not fitted or loaded.
        InvalidParameterError: An unknown ``format``, or ``opset`` with TorchScript.
        ExportError: The export failed, or the exported model disagrees with PyTorch by
            more than ``atol``. No file is left behind.
        MissingDependencyError: ``format="onnx"`` without the onnx extra (onnxruntime too,
            with ``verify``).
        SaveError: The files could not be written.

    Example:
        >>> import tempfile, clothingclf
        >>> from clothingclf.data.synthetic import make_synthetic
        >>> root = make_synthetic(tempfile.mkdtemp(), classes=["Hat", "Shoes"],
        ...                       n_per_class=6, image_size=32)
        >>> clf = clothingclf.ClothingClassifier(
        ...     backbone="resnet18", weights=None, image_size=32, epochs=1, progress=False,
        ...     num_workers=0).fit(clothingclf.prepare_dataset(root))
        >>> out = export_model(clf, tempfile.mkdtemp() + "/clf.ts.pt", format="torchscript")
        >>> out.metadata["output"], out.metadata["input_shape"], out.max_abs_diff < 1e-4
        ('probabilities', ['batch', 3, 32, 32], True)
    """
    if format not in _FORMATS:
        raise InvalidParameterError(f"format must be 'onnx' or 'torchscript'; found {format!r}.")
    if opset is not None and format != "onnx":
        raise InvalidParameterError("opset applies to format='onnx' only; leave it None.")
    newest = _newest_opset()
    if opset is not None and (
        isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= newest
    ):
        raise InvalidParameterError(
            f"opset must be an ONNX opset number from 7 to {newest} (the newest this torch "
            f"exports), e.g. {DEFAULT_OPSET}; found {opset!r}."
        )
    predictor = classifier.predictor()
    networks = predictor.networks
    if format == "onnx":
        _import_onnx(runtime=verify)
        opset = DEFAULT_OPSET if opset is None else int(opset)
    target = checked_path(path, "The export path")
    try:
        refuse_to_replace_non_file(target, "export")
    except SaveError:
        raise
    except OSError as error:  # a name too long, a link loop: say so before any work
        raise SaveError(f"Cannot export to {str(target)!r} ({error.strerror or error}).") from None
    meta_target = target.with_name(target.name + ".json")
    metadata = _metadata(predictor, format, opset)
    wrapper = ProbabilityGraph(
        [cpu_copy(network) for network, _ in networks],
        tta=bool(metadata["tta"]),
        calibration=predictor.calibration,
    ).eval()
    shapes = [prep.input_shape for _, prep in networks]
    generator = torch.Generator().manual_seed(0)
    example = tuple(torch.randn(2, 3, *shape, generator=generator) for shape in shapes)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The metadata is renamed into place after the model, both only once both are written.
        with replacing(meta_target) as meta_tmp, replacing(target) as model_tmp:
            with torch.no_grad(), quiet_torch_exporters():
                if format == "onnx":
                    assert opset is not None
                    run = _write_onnx(wrapper, example, model_tmp, opset=opset, verify=verify)
                else:
                    run = _write_torchscript(wrapper, example, model_tmp, verify=verify)
                max_diff = _check_parity(wrapper, run, shapes, atol=atol) if run else None
            if max_diff is not None:
                metadata["verified_max_abs_diff"] = max_diff
            meta_tmp.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise write_error(target, error) from error
    return ExportedModel(
        path=target,
        metadata_path=meta_target,
        format=format,
        metadata=metadata,
        max_abs_diff=max_diff,
    )


_Runner = Callable[[list[np.ndarray]], np.ndarray]


def _newest_opset() -> int:
    """The newest opset torch's ONNX exporter writes (torch keeps it in a private module;
    the fallback is the newest opset of torch 2.10, the oldest torch clothingclf runs on)."""
    constants = getattr(torch.onnx, "_constants", None)
    return int(getattr(constants, "ONNX_MAX_OPSET", 23))


def _write_onnx(
    wrapper: nn.Module, example: tuple[torch.Tensor, ...], path: Path, *, opset: int, verify: bool
) -> _Runner | None:
    onnx, _ = _import_onnx(runtime=verify)
    names = input_names(len(example))
    write_onnx_graph(wrapper, example, str(path), opset=opset)
    try:
        onnx.checker.check_model(str(path))
    except Exception as error:
        raise ExportError(
            f"ONNX export failed ({type(error).__name__}: {first_line(error, 'no message')}). Try "
            "format='torchscript', another opset, or report the backbone that fails."
        ) from error
    if not verify:
        return None
    session = onnx_session(str(path))

    def run(batches: list[np.ndarray]) -> np.ndarray:
        feed = dict(zip(names, batches, strict=True))
        return np.asarray(session.run([OUTPUT_NAME], feed)[0])

    return run


def _write_torchscript(
    wrapper: nn.Module, example: tuple[torch.Tensor, ...], path: Path, *, verify: bool
) -> _Runner | None:
    try:
        traced = torch.jit.trace(wrapper, example, check_trace=False)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    except OSError:
        raise
    except Exception as error:
        raise ExportError(
            f"TorchScript export failed ({type(error).__name__}: "
            f"{first_line(error, 'no message')}). Try format='onnx', or report the backbone "
            "that fails."
        ) from error
    if not verify:
        return None
    loaded = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]

    def run(batches: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(loaded(*(torch.from_numpy(b) for b in batches)).numpy())

    return run


def _check_parity(
    wrapper: nn.Module, run: _Runner, shapes: list[tuple[int, int]], *, atol: float
) -> float:
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for n in _VERIFY_BATCHES:
        batches = [torch.randn(n, 3, *shape, generator=generator) for shape in shapes]
        expected = wrapper(*batches).numpy()
        try:
            got = run([batch.numpy() for batch in batches])
        except Exception as error:
            raise ExportError(
                f"The exported model fails on a batch of {n} image(s) ({type(error).__name__}: "
                f"{first_line(error, 'no message')}); the batch size was probably fixed "
                "while tracing."
            ) from error
        if got.shape != expected.shape:
            raise ExportError(
                f"The exported model returns shape {tuple(got.shape)} for a batch of {n}; "
                f"expected {tuple(expected.shape)}."
            )
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= atol:
        raise ExportError(
            f"The exported model's probabilities differ from PyTorch's by up to {worst:.2e} "
            f"(allowed: {atol:.0e}); the export is not faithful and was not written."
        )
    return worst


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the sidecar JSON of an exported model.

    Args:
        path: The exported model file (its ``<path>.json`` is read) or the JSON itself.

    Returns:
        The metadata: ``classes``, ``input_size``, ``resize_size``, ``mean``, ``std``,
        ``interpolation``, ``output`` (always ``"probabilities"``), ...

    Raises:
        ExportError: The JSON is missing or is not clothingclf export metadata.

    Example:
        >>> import json, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.onnx.json"
        >>> _ = p.write_text(json.dumps({"library": "clothingclf", "classes": ["Hat"]}))
        >>> read_export_metadata(p.with_suffix(""))["classes"]
        ['Hat']
    """
    source = Path(path)
    meta = source if source.suffix == ".json" else source.with_name(source.name + ".json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(
            f"{str(meta)!r} does not exist; export_model writes it next to the model file."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{str(meta)!r} is not readable JSON ({error}).") from None
    if not isinstance(data, dict) or data.get("library") != "clothingclf":
        raise ExportError(
            f"{str(meta)!r} is not the metadata of a clothingclf export (no "
            '"library": "clothingclf" entry).'
        )
    return data
