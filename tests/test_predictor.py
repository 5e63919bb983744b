"""clothingclf.predictor and clothingclf.engines: every engine agrees with eager float32,
``auto`` picks as documented, decoding threads keep the order, options are checked."""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _nets import resnet_classifier, tiny_classifier
from clothingclf import ClothingClassifier, engines
from clothingclf.data import DatasetSplits
from clothingclf.exceptions import (
    ExportError,
    InvalidImageError,
    InvalidParameterError,
    MissingDependencyError,
)
from clothingclf.predictor import Predictor


def _graph_key(clf: ClothingClassifier) -> tuple[list[torch.nn.Module], list[tuple[int, int]]]:
    return [m for m, _ in clf.networks_], [prep.input_shape for _, prep in clf.networks_]


onnx_extra = pytest.mark.skipif(
    not engines.onnxruntime_available(), reason="needs the onnx extra (onnx, onnxruntime)"
)
openvino_extra = pytest.mark.skipif(
    not engines.openvino_available(), reason="needs the openvino extra (onnx, openvino)"
)


@pytest.fixture(scope="module")
def pair(synthetic_splits: DatasetSplits) -> ClothingClassifier:
    """Two small networks (a square view and a 4:3 portrait one), fitted: the several-input
    case of every engine."""
    return resnet_classifier(extra_views=(4 / 3,)).fit(synthetic_splits)


@pytest.fixture(scope="module")
def photos(synthetic_splits: DatasetSplits) -> list[str]:
    return [str(p) for p in synthetic_splits.test["path"]] + [
        str(p) for p in synthetic_splits.val["path"]
    ]


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("onnxruntime", marks=onnx_extra),
        pytest.param("openvino", marks=openvino_extra),
    ],
)
@pytest.mark.parametrize("tta", [False, True])
def test_compiled_engines_agree_with_eager_float32(
    pair: ClothingClassifier, photos: list[str], tta: bool, engine: str
) -> None:
    reference = pair.predict_proba(photos, engine="torch", tta=tta)
    got = pair.predict_proba(photos, engine=engine, precision="float32", tta=tta)  # type: ignore[arg-type]
    assert got.shape == reference.shape == (len(photos), 4)
    assert np.abs(got - reference).max() <= 1e-4
    assert np.allclose(got.sum(1), 1.0, rtol=0, atol=1e-12)
    assert engines.has_onnx_graph(*_graph_key(pair))
    # one graph per model and engine, reused by later calls and by single images
    single = pair.predict_proba(photos[0], engine=engine, tta=tta)  # type: ignore[arg-type]
    assert np.abs(single - reference[:1]).max() <= 1e-4


def test_bfloat16_is_close_and_float32_is_the_reference(
    synthetic_splits: DatasetSplits, photos: list[str]
) -> None:
    # 48 px: at 32 the portrait view's last convolutions map 3 x 2 to 2 x 1, where oneDNN's
    # bfloat16 convolution reads memory it did not write on CPUs with native bfloat16
    # (different results each call, some NaN; benchmarks/RESULTS.md, 2026-12-05).
    pair = resnet_classifier(extra_views=(4 / 3,), image_size=48).fit(synthetic_splits)
    reference = pair.predict_proba(photos[:4], engine="torch", precision="float32")
    assert np.array_equal(reference, pair.predict_proba(photos[:4], engine="torch"))
    reduced = pair.predict_proba(photos[:4], engine="torch", precision="bfloat16")
    assert np.abs(reduced - reference).max() < 0.05
    assert np.allclose(reduced.sum(1), 1.0)


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_decoding_threads_keep_the_order_and_the_numbers(
    pair: ClothingClassifier, photos: list[str], threads: int
) -> None:
    reference = pair.predict_proba(photos, engine="torch", decode_threads=0, batch_size=3)
    got = pair.predict_proba(photos, engine="torch", decode_threads=threads, batch_size=3)
    assert np.array_equal(got, reference)
    one_batch = pair.predict_proba(photos, engine="torch", decode_threads=threads)
    assert np.abs(one_batch - reference).max() <= 1e-6  # another batch size: rounding only


def test_a_bad_photo_among_threads_is_named(
    pair: ClothingClassifier, photos: list[str], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(InvalidImageError, match=r"broken\.jpg"):
        pair.predict_proba([*photos[:5], str(bad), *photos[5:]], decode_threads=2, batch_size=2)
    encoded = io.BytesIO()
    Image.new("RGB", (40, 30)).save(encoded, format="PNG")
    with pytest.raises(InvalidImageError, match="Input 1"):
        pair.predict_proba([encoded.getvalue(), b"junk", encoded.getvalue()], decode_threads=2)


def test_auto_builds_the_graph_only_for_enough_images(
    pair: ClothingClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(engines.choice, "onnxruntime_available", lambda: True)
    monkeypatch.setattr(engines.choice, "openvino_available", lambda: False)
    few = engines.choose_engine(device=cpu, images=engines.AUTO_ONNX_MIN_IMAGES - 1)
    assert few.engine == "torch" and "fewer than" in few.reason
    many = engines.choose_engine(device=cpu, images=engines.AUTO_ONNX_MIN_IMAGES)
    assert (many.engine, many.precision) == ("onnxruntime", "float32")
    built = engines.choose_engine(device=cpu, images=1, built=True)
    assert built.engine == "onnxruntime"
    assert engines.choose_engine(device=torch.device("cuda"), images=10_000).engine == "torch"
    assert engines.choose_engine("auto", "bfloat16", device=cpu).engine == "torch"
    monkeypatch.setattr(engines.choice, "onnxruntime_available", lambda: False)
    assert engines.choose_engine(device=cpu, images=10_000).engine == "torch"
    with pytest.raises(MissingDependencyError, match=r"clothingclf\[onnx\]"):
        pair.predict_proba(np.zeros((2, 40, 30, 3), dtype=np.uint8), engine="onnxruntime")


@onnx_extra
def test_auto_runs_a_model_that_does_not_export_in_torch(
    synthetic_splits: DatasetSplits, photos: list[str]
) -> None:
    # Adaptive max pooling to 4 x 4 from an 11 x 8 map has no ONNX form.
    clf = tiny_classifier(epochs=1, aspect=4 / 3).fit(synthetic_splits)
    reference = clf.predict_proba(photos, engine="torch")
    many = photos * (engines.AUTO_ONNX_MIN_IMAGES // len(photos) + 1)
    with pytest.warns(UserWarning, match="does not run in onnxruntime"):
        got = clf.predict_proba(many, engine="auto")
    assert np.array_equal(got[: len(photos)], reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per model
        clf.predict_proba(many)
    with pytest.raises(ExportError, match="ONNX export failed"):
        clf.predict_proba(photos, engine="onnxruntime")


@onnx_extra
def test_a_graph_is_rebuilt_when_the_weights_change(
    synthetic_splits: DatasetSplits, photos: list[str]
) -> None:
    clf = resnet_classifier().fit(synthetic_splits)
    before = clf.predict_proba(photos, engine="onnxruntime")
    assert engines.has_onnx_graph(*_graph_key(clf))
    with torch.no_grad():
        clf.model_.head.bias.add_(torch.arange(4.0))  # changed in place, after the build
    assert not engines.has_onnx_graph(*_graph_key(clf))
    after = clf.predict_proba(photos, engine="onnxruntime")
    assert np.abs(after - clf.predict_proba(photos, engine="torch")).max() <= 1e-4
    assert np.abs(after - before).max() > 1e-3


@onnx_extra
def test_a_graph_is_rebuilt_for_another_input_size(
    synthetic_splits: DatasetSplits, photos: list[str]
) -> None:
    clf = resnet_classifier().fit(synthetic_splits)
    clf.predict_proba(photos, engine="onnxruntime")
    predictor = clf.predictor()
    model, prep = predictor.networks[0]
    larger = dataclasses.replace(
        prep, image_size=prep.image_size + 8, resize_size=prep.resize_size + 8
    )
    other = dataclasses.replace(predictor, networks=((model, larger),))
    got = other.probabilities(photos, engine="onnxruntime")  # the same weights, new shapes
    assert np.abs(got - other.probabilities(photos, engine="torch")).max() <= 1e-4


def test_engine_and_options_are_checked(pair: ClothingClassifier) -> None:
    image = np.zeros((40, 30, 3), dtype=np.uint8)
    cases = [
        ({"engine": "tensorrt"}, "engine must be one of"),
        ({"precision": "float16"}, "precision must be one of"),
        ({"engine": "onnxruntime", "precision": "bfloat16"}, "needs engine='torch'"),
        ({"decode_threads": -1}, "decode_threads must be an int >= 0"),
        ({"decode_threads": True}, "decode_threads must be an int >= 0"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"tta": "yes"}, "tta must be True, False or None"),
        ({"engnie": "torch"}, "Did you mean 'engine'"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidParameterError, match=message):
            pair.predict_proba(image, **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="runs on the CPU"):
        engines.choose_engine("onnxruntime", device=torch.device("cuda"))


def test_the_engine_choice_is_visible(pair: ClothingClassifier) -> None:
    choice = pair.predictor().engine("torch")
    assert (choice.engine, choice.precision, choice.reason) == ("torch", "float32", "asked for")
    assert pair.predictor().engine(images=1).engine in ("torch", "onnxruntime", "openvino")


@openvino_extra
def test_openvino_bfloat16_keeps_the_bundled_models_labels() -> None:
    """Where the CPU has native bfloat16: the same label as float32 on every sample photo,
    probabilities within the bound measured on the test split (0.05); elsewhere refused."""
    from clothingclf.pretrained import sample_photos

    clf = ClothingClassifier.pretrained(device="cpu")
    paths = sample_photos()["path"].astype(str).tolist()
    if not engines.native_bfloat16():
        with pytest.raises(InvalidParameterError, match="native bfloat16"):
            clf.predict_proba(paths, engine="openvino", precision="bfloat16")
        assert clf.predictor().engine("auto", "bfloat16").engine == "torch"
        return
    reference = clf.predict_proba(paths, engine="torch")
    reduced = clf.predict_proba(paths, engine="openvino", precision="bfloat16")
    assert np.array_equal(reduced.argmax(1), reference.argmax(1))
    assert np.abs(reduced - reference).max() <= 0.05
    choice = clf.predictor().engine("auto", "bfloat16")
    assert (choice.engine, choice.precision) == ("openvino", "bfloat16")


@openvino_extra
@onnx_extra
def test_auto_times_the_installed_engines_and_keeps_the_fastest(pair: ClothingClassifier) -> None:
    predictor = pair.predictor()
    choice = predictor.engine(images=engines.AUTO_ONNX_MIN_IMAGES)
    timing = engines.fastest_engine(*_graph_key(pair))
    assert timing is not None and set(timing.rates) == {"onnxruntime", "openvino"}
    assert choice.engine == timing.engine == max(timing.rates, key=timing.rates.__getitem__)
    assert choice.precision == "float32" and "timed on first use" in choice.reason
    assert engines.fastest_engine(*_graph_key(pair)) is timing  # kept for the process
    assert predictor.engine(images=1).engine == timing.engine  # built: any call size


def test_auto_without_the_extras_and_missing_extras(
    pair: ClothingClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(engines.choice, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(engines.choice, "openvino_available", lambda: False)
    choice = engines.choose_engine(device=cpu, images=10_000)
    assert choice.engine == "torch" and "neither the onnx nor the openvino" in choice.reason
    assert engines.choose_engine("auto", "bfloat16", device=cpu).reason == (
        "the openvino extra is not installed"
    )
    with pytest.raises(MissingDependencyError, match=r"clothingclf\[openvino\]"):
        pair.predict_proba(np.zeros((2, 40, 30, 3), dtype=np.uint8), engine="openvino")
    monkeypatch.setattr(engines.choice, "openvino_available", lambda: True)
    only = engines.choose_engine(device=cpu, images=10_000)
    assert only.engine == "openvino" and "installed" in only.reason
    with pytest.raises(InvalidParameterError, match="runs on the CPU"):
        engines.choose_engine("openvino", device=torch.device("cuda"))


def test_check_precision_is_recorded_saved_and_read_by_auto(
    pair: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bfloat16 check is measured on the val split, saved, loaded, and lets ``auto``
    time OpenVINO bfloat16 only when the top-1 change is within 0.1 point on a CPU that
    computes bfloat16 natively."""
    import copy

    clf = copy.deepcopy(pair)
    zero = {"top1_change": 0.0, "labels_changed": 0.0, "max_probability_change": 0.01}
    zero["photos"] = 500
    if not (engines.openvino_available() and engines.native_bfloat16()):
        with pytest.raises((InvalidParameterError, MissingDependencyError)):
            clf.check_precision(synthetic_splits)
        assert not engines.reduced_precision_allowed(zero)
        return
    check = clf.check_precision(synthetic_splits)
    assert set(check) == {"top1_change", "labels_changed", "max_probability_change", "photos"}
    assert check["photos"] == len(synthetic_splits.val) and 0 <= check["labels_changed"] <= 1
    clf.save(tmp_path / "m.safetensors")
    loaded = ClothingClassifier.load(tmp_path / "m.safetensors", device="cpu")
    assert loaded.precision_checks_ == {"bfloat16": check}

    assert engines.reduced_precision_allowed(zero)
    assert not engines.reduced_precision_allowed({**zero, "top1_change": -0.002})
    loaded.precision_checks_ = {"bfloat16": zero}
    choice = loaded.predictor().engine(images=engines.AUTO_ONNX_MIN_IMAGES)
    timing = engines.fastest_engine(*_graph_key(loaded), checks={"bfloat16": zero})
    assert timing is not None and "openvino bfloat16" in timing.rates
    assert (choice.engine, choice.precision) == (timing.engine, timing.precision)
    if choice.precision == "bfloat16":
        assert "moved this model's top-1 accuracy by +0.00 points on 500 photos" in choice.reason
    monkeypatch.setattr(engines.choice, "native_bfloat16", lambda: False)
    assert not engines.reduced_precision_allowed(zero)


int8_extra = pytest.mark.skipif(
    not __import__("clothingclf.quantization").quantization.nncf_available(),
    reason="needs the int8 extra (nncf, openvino, onnx)",
)


@int8_extra
def test_int8_is_quantised_by_check_precision_and_run_by_openvino(
    pair: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    photos: list[str],
    tmp_path: Path,
) -> None:
    """``precision="int8"`` needs the graph ``check_precision(..., "int8")`` quantises on
    the val split (two networks here: one input each); then it runs, is recorded and saved,
    and ``auto`` times it only when its record allows."""
    import copy

    clf = copy.deepcopy(pair)
    with pytest.raises(InvalidParameterError, match="no int8 graph in this process"):
        clf.predict_proba(photos, precision="int8")
    check = clf.check_precision(synthetic_splits, precision="int8")
    assert check["photos"] == len(synthetic_splits.val)
    reference = clf.predict_proba(photos, engine="openvino", precision="float32")
    got = clf.predict_proba(photos, engine="openvino", precision="int8")
    assert got.shape == reference.shape and np.allclose(got.sum(1), 1.0, atol=1e-9)
    assert clf.predictor().engine("auto", "int8").engine == "openvino"
    clf.save(tmp_path / "m.safetensors")
    assert ClothingClassifier.load(tmp_path / "m.safetensors").precision_checks_["int8"] == check

    zero = {"top1_change": 0.0, "labels_changed": 0.0, "max_probability_change": 0.1}
    zero["photos"] = 500
    # With a record that lets auto run int8, a new check still compares with float32.
    clf.precision_checks_ = {"int8": zero}
    asked: list[object] = []
    probabilities = Predictor.probabilities

    def spy(self: Predictor, x: object, **options: object) -> np.ndarray:
        asked.append(options.get("precision"))
        return probabilities(self, x, **options)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Predictor, "probabilities", spy)
        clf.check_precision(synthetic_splits, precision="int8")
    assert asked == ["float32", "int8"]
    timing = engines.fastest_engine(*_graph_key(clf), checks={"int8": zero})
    assert timing is not None and "openvino int8" in timing.rates
    failing = {**zero, "top1_change": -0.002}
    timing = engines.fastest_engine(*_graph_key(clf), checks={"int8": failing})
    assert timing is not None and "openvino int8" not in timing.rates


def test_int8_runs_in_openvino_only_and_needs_its_extra(
    pair: ClothingClassifier, synthetic_splits: DatasetSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clothingclf import quantization

    image = np.zeros((2, 40, 30, 3), dtype=np.uint8)
    for engine in ("torch", "onnxruntime"):
        with pytest.raises(InvalidParameterError, match="runs in OpenVINO only"):
            pair.predict_proba(image, engine=engine, precision="int8")
    with pytest.raises(InvalidParameterError, match="on the CPU"):
        engines.choose_engine("auto", "int8", device=torch.device("cuda"))
    monkeypatch.setattr(quantization, "nncf_available", lambda: False)
    monkeypatch.setattr(engines.choice, "openvino_available", lambda: True)
    with pytest.raises(MissingDependencyError, match=r"clothingclf\[int8\]"):
        engines.build_int8(*_graph_key(pair), [])


@int8_extra
def test_int8_keeps_the_bundled_models_labels_within_its_measured_bound() -> None:
    """The bundled model quantised on its sample photos: labels as in float32 but for at
    most one in ten, probabilities within the bound measured on the test split (0.32; the
    val split's 0.35)."""
    from clothingclf.pretrained import sample_photos

    clf = ClothingClassifier.pretrained(device="cpu")
    table = sample_photos()
    check = clf.check_precision(table, precision="int8")
    assert check["photos"] == len(table) and check["labels_changed"] <= 0.1
    paths = table["path"].astype(str).tolist()
    reference = clf.predict_proba(paths, engine="torch")
    reduced = clf.predict_proba(paths, engine="openvino", precision="int8")
    assert (reduced.argmax(1) == reference.argmax(1)).mean() >= 0.9
    assert np.abs(reduced - reference).max() <= 0.35
