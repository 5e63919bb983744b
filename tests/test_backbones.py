"""clothingclf.backbones: names and weights in, ClothingNet + preprocessing + spec out."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from clothingclf.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClothingNet,
    Preprocessing,
    build_model,
    list_backbones,
    rebuild_model,
)
from clothingclf.exceptions import (
    InvalidParameterError,
    ModelFileError,
    WeightsUnavailableError,
)


def _features() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


@pytest.mark.parametrize(
    ("name", "num_features"),
    [("resnet18", 512), ("mobilenet_v3_small", 1024), ("squeezenet1_1", 512), ("googlenet", 1024)],
)
def test_torchvision_head_is_replaced_in_every_mode(name: str, num_features: int) -> None:
    net, prep, spec = build_model(name, weights=None, num_classes=5, image_size=64)
    assert isinstance(net, ClothingNet) and isinstance(net.head, nn.Linear)
    assert (net.head.in_features, net.head.out_features) == (num_features, 5)
    assert spec["num_features"] == num_features and spec["kind"] == "torchvision"
    net.train()  # googlenet would return (logits, aux) tuples here if its aux heads stayed
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
    assert prep == Preprocessing(image_size=64, resize_size=73)
    rebuilt = rebuild_model(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }


def test_default_weights_come_from_the_torch_cache_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    cached = torchvision.models.resnet18().state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(cached, tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1])
    net, prep, spec = build_model("resnet18", weights="DEFAULT", num_classes=3, image_size=224)
    assert torch.equal(net.features.conv1.weight, cached["conv1.weight"])
    assert prep.mean == IMAGENET_MEAN and prep.std == IMAGENET_STD and prep.resize_size == 256
    assert spec["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    for same in (weights, "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"):
        net, _, _ = build_model("resnet18", weights=same, num_classes=3, image_size=64)
        assert torch.equal(net.features.conv1.weight, cached["conv1.weight"])
    with pytest.raises(WeightsUnavailableError, match="must be a ResNet18_Weights"):
        build_model(
            "resnet18",
            weights=torchvision.models.ResNet34_Weights.DEFAULT,
            num_classes=3,
            image_size=64,
        )


def test_failed_download_explains_how_to_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(WeightsUnavailableError) as caught:
        build_model("resnet18", weights="DEFAULT", num_classes=3, image_size=64)
    message = str(caught.value)
    expected = str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    assert expected in message
    assert "weights='/path/to/state_dict.pth'" in message and "weights=None" in message


def test_local_state_dict_file(tmp_path: Path) -> None:
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)  # with the 1000-class fc, which is dropped
    net, prep, spec = build_model("resnet18", weights=str(path), num_classes=3, image_size=32)
    assert torch.equal(net.features.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert spec["weights"] == str(path) and prep.mean == IMAGENET_MEAN

    with pytest.raises(WeightsUnavailableError, match="does not fit this architecture"):
        build_model("resnet34", weights=path, num_classes=3, image_size=32)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_model("resnet18", weights=tmp_path / "missing.pth", num_classes=3, image_size=32)


def test_bad_names_get_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match="Did you mean resnet18"):
        build_model("resnet81", weights=None, num_classes=3, image_size=32)
    with pytest.raises(WeightsUnavailableError, match="IMAGENET1K_V1"):
        build_model("resnet18", weights="IMAGENET9", num_classes=3, image_size=32)
    with pytest.raises(InvalidParameterError, match="num_classes"):
        build_model("resnet18", weights=None, num_classes=0, image_size=32)
    assert "resnet18" in list_backbones() and "efficientnet_b0" in list_backbones()


def test_module_backbone_is_copied_and_needs_itself_to_rebuild() -> None:
    features = _features()
    net, prep, spec = build_model(features, weights=None, num_classes=2, image_size=20)
    assert net.features is not features  # the user's module is never trained in place
    assert spec["num_features"] == 16 and spec["kind"] == "module"
    assert prep == Preprocessing(image_size=20, resize_size=23)
    with pytest.raises(ModelFileError, match="backbone=MyFeatures"):
        rebuild_model(spec)
    assert rebuild_model(spec, backbone=_features()).head.in_features == 16
    with pytest.raises(InvalidParameterError, match="must map images"):
        build_model(nn.Linear(3, 3), weights=None, num_classes=2, image_size=20)


def test_timm_backbone_with_its_own_preprocessing(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    net, prep, spec = build_model(
        "timm/tf_efficientnet_lite0", weights=None, num_classes=4, image_size=64
    )
    assert spec == {
        "kind": "timm",
        "name": "tf_efficientnet_lite0",
        "num_features": 1280,
        "num_classes": 4,
        "weights": None,
    }
    assert prep.mean == (0.5, 0.5, 0.5) and prep.std == (0.5, 0.5, 0.5)
    assert prep.interpolation == "bicubic" and prep.resize_size == 73
    source = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "lite0.pth")  # includes the 1000-class head
    net, _, _ = build_model(
        "timm/tf_efficientnet_lite0", weights=tmp_path / "lite0.pth", num_classes=4, image_size=64
    )
    assert torch.equal(net.features.conv_stem.weight, source.conv_stem.weight)
    assert rebuild_model(spec).state_dict().keys() == net.state_dict().keys()
