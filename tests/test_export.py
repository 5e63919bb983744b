"""ONNX and TorchScript export: parity with the PyTorch model, sidecar JSON, failures."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from clothingclf import (
    ClothingClassifier,
    DatasetSplits,
    ExportedModel,
    export_model,
    open_image,
    read_export_metadata,
)
from clothingclf.calibration import Calibration
from clothingclf.cli import main
from clothingclf.exceptions import (
    ExportError,
    InvalidParameterError,
    MissingDependencyError,
    NotFittedError,
    SaveError,
)

JIT_LOAD_DEPRECATED = "ignore:`torch.jit.load` is deprecated:FutureWarning"


@pytest.fixture(scope="module")
def clf(tiny_model_file: Path) -> ClothingClassifier:
    return ClothingClassifier.load(tiny_model_file, device="cpu")


def _images(clf: ClothingClassifier, paths: list[str]) -> np.ndarray:
    """What a user of the exported file does: the sidecar's preprocessing, in torchvision."""
    prep = clf.preprocessing_
    transform = prep.eval_transform()
    side = prep.resize_size
    return torch.stack([transform(open_image(p, draft_size=(side, side))) for p in paths]).numpy()


def _runner(exported: ExportedModel) -> Callable[[np.ndarray], np.ndarray]:
    if exported.format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
        name = exported.metadata["input_name"]
        return lambda x: np.asarray(session.run(None, {name: x})[0])
    module = torch.jit.load(str(exported.path))
    return lambda x: module(torch.from_numpy(x)).detach().numpy()


@pytest.mark.filterwarnings(JIT_LOAD_DEPRECATED)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_applies_the_calibration(
    tiny_model_file: Path, synthetic_splits: DatasetSplits, tmp_path: Path, fmt: str
) -> None:
    clf = ClothingClassifier.load(tiny_model_file, device="cpu")
    clf.calibration_ = Calibration(temperature=0.4)  # sharpens: far from the raw average
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.ts.pt")
    exported = clf.export(path, format=fmt)  # type: ignore[arg-type]
    assert exported.metadata["calibration"] == {"method": "temperature", "temperature": 0.4}
    paths = [str(p) for p in synthetic_splits.test["path"]][:4]
    got = _runner(exported)(_images(clf, paths))
    assert np.abs(got - clf.predict_proba(paths)).max() <= 1e-4
    assert np.abs(got - clf.predict_proba(paths, calibrated=False)).max() > 1e-2


@pytest.mark.filterwarnings(JIT_LOAD_DEPRECATED)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_probabilities_for_batches_of_1_and_3(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.ts.pt")
    exported = clf.export(path, format=fmt)  # type: ignore[arg-type]
    assert exported.path == path and path.is_file()
    assert exported.metadata_path == tmp_path / f"{path.name}.json"
    assert exported.max_abs_diff is not None and exported.max_abs_diff <= 1e-4
    run = _runner(exported)
    paths = [str(p) for p in synthetic_splits.test["path"]][:4]
    for batch in (paths[:1], paths[1:4]):
        expected = clf.predict_proba(batch)
        got = run(_images(clf, batch))
        assert got.shape == (len(batch), len(clf.classes_))
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_sidecar_json_documents_classes_and_preprocessing(
    clf: ClothingClassifier, tmp_path: Path
) -> None:
    exported = export_model(clf, tmp_path / "sub" / "m.onnx", verify=False)
    meta = json.loads(exported.metadata_path.read_text(encoding="utf-8"))
    prep = clf.preprocessing_
    assert meta == exported.metadata == read_export_metadata(exported.path)
    assert meta["format"] == "onnx" and meta["opset"] == 17
    assert meta["classes"] == ["Dress", "Pants", "Shoes", "T-Shirt"] == exported.classes
    assert meta["input_size"] == prep.image_size == 32
    assert meta["resize_size"] == prep.resize_size
    assert meta["mean"] == list(prep.mean) and meta["std"] == list(prep.std)
    assert meta["interpolation"] == prep.interpolation
    assert meta["output"] == "probabilities" and meta["output_name"] == "probabilities"
    assert meta["input_shape"] == ["batch", 3, 32, 32]
    assert meta["library"] == "clothingclf" and meta["library_version"]
    assert exported.max_abs_diff is None and "verified_max_abs_diff" not in meta


def test_onnx_graph_has_a_dynamic_batch_axis(clf: ClothingClassifier, tmp_path: Path) -> None:
    import onnx

    exported = export_model(clf, tmp_path / "m.onnx", verify=False)
    graph = onnx.load(str(exported.path)).graph
    (source,) = graph.input
    dims = source.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert graph.output[0].name == "probabilities"
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnx_export_of_a_tta_model_averages_the_mirror_image(
    clf: ClothingClassifier, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    tta = copy.copy(clf)
    tta.config_ = dataclasses.replace(clf.config_, tta=True)
    paths = [str(p) for p in synthetic_splits.test["path"]][:3]
    expected = tta.predict_proba(paths)
    assert not np.allclose(expected, clf.predict_proba(paths), atol=1e-4)  # TTA matters
    exported = tta.export(tmp_path / "tta.onnx")
    assert exported.metadata["tta"] is True
    np.testing.assert_allclose(_runner(exported)(_images(clf, paths)), expected, atol=1e-4)


def test_missing_onnx_says_which_extra_to_install(
    clf: ClothingClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "clothingclf\[onnx\]"'):
        clf.export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_says_which_extra_to_install(
    clf: ClothingClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        MissingDependencyError, match=r"onnxruntime.*clothingclf\[onnx\].*verify=False"
    ):
        clf.export(tmp_path / "m.onnx")


def test_unfaithful_export_leaves_the_previous_file_and_no_temp_files(
    clf: ClothingClassifier, tmp_path: Path
) -> None:
    target = tmp_path / "m.ts.pt"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to .*not written"):
        export_model(clf, target, format="torchscript", atol=-1.0)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ts.pt"]


def test_bad_arguments_raise_clear_errors(clf: ClothingClassifier, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="format must be 'onnx' or 'torchscript'"):
        clf.export(tmp_path / "m", format="tflite")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="opset applies to format='onnx' only"):
        clf.export(tmp_path / "m", format="torchscript", opset=13)
    for opset in ("x", 3, True, 17.0, 99):
        with pytest.raises(InvalidParameterError, match="opset must be an ONNX opset number"):
            clf.export(tmp_path / "m.onnx", opset=opset)  # type: ignore[arg-type]
    with pytest.raises(SaveError, match="it is a directory"):
        clf.export(tmp_path, format="torchscript")
    with pytest.raises(NotFittedError, match="call fit"):
        ClothingClassifier().export(tmp_path / "m.onnx")


def test_read_export_metadata_refuses_other_json(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        read_export_metadata(tmp_path / "m.onnx")
    (tmp_path / "m.onnx.json").write_text('{"classes": []}', encoding="utf-8")
    with pytest.raises(ExportError, match="not the metadata of a clothingclf export"):
        read_export_metadata(tmp_path / "m.onnx")


def test_cli_export_writes_the_file_and_says_what_it_takes(
    tiny_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.ts.pt"
    code = main(["export", str(tiny_model_file), "--format", "torchscript", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and (tmp_path / "m.ts.pt.json").is_file()
    assert "input float32 batch x 3 x 32 x 32, output probabilities of 4 classes" in printed
    assert "matches PyTorch to" in printed


def test_cli_export_of_a_missing_model_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("clothingclf export: error:") and err.count("\n") == 1
