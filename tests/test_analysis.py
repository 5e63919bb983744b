"""clothingclf.analysis: exact FLOPs, traced receptive fields, and their gradient check."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clothingclf import analysis
from clothingclf.backbones import Preprocessing
from clothingclf.cli import main
from clothingclf.exceptions import AnalysisError

# The study's per-layer list (K*K*C_in*C_out*H_out*W_out, 18-class head, no downsample convs).
STUDY_RESNET18 = [118013952] + [115605504] * 4
STUDY_RESNET18 += [57802752] + [115605504] * 3  # layer2
STUDY_RESNET18 += [57802752] + [115605504] * 3  # layer3
STUDY_RESNET18 += [57802752] + [115605504] * 3  # layer4
STUDY_RESNET18 += [9216]


# -- FLOPs ---------------------------------------------------------------------------------
def test_resnet18_known_numbers() -> None:
    r = analysis.count_flops("resnet18", input_size=(3, 224, 224))
    assert r.layers[0].name == "conv1" and r.layers[0].macs == 118_013_952
    assert r.total_macs == 1_814_073_344
    assert r.total_flops == 2 * 1_814_073_344
    assert r.params == 11_689_512
    assert sum(row.params for row in r.layers) == r.params  # every parameter is read once


def test_reproduces_the_study_per_layer_list() -> None:
    model = analysis.meta_model("resnet18", num_classes=18)
    r = analysis.count_flops(model, input_size=224)
    rows = [x for x in r.layers if x.op in ("conv2d", "linear") and "downsample" not in x.name]
    assert [x.macs for x in rows] == STUDY_RESNET18
    downsample = [x for x in r.layers if "downsample" in x.name and x.op == "conv2d"]
    assert [x.name for x in downsample] == [f"layer{i}.0.downsample.0" for i in (2, 3, 4)]
    assert sum(x.macs for x in downsample) == 3 * 6_422_528
    assert r.total_macs == sum(STUDY_RESNET18) + 3 * 6_422_528


def test_functional_operations_are_counted() -> None:
    r = analysis.count_flops("resnet18")
    adds = [row for row in r.layers if row.op == "add"]
    assert [row.name for row in adds[:2]] == ["layer1.0", "layer1.1"]  # the residual "+"
    assert adds[0].other_ops == 64 * 56 * 56
    vit = analysis.count_flops("vit_b_16")
    types = vit.by_type
    # Attention's q @ k^T and attn @ v: 12 layers x 12 heads x 197^2 x 64 MACs, twice.
    assert types["matmul"].macs == 12 * 2 * 12 * 197 * 197 * 64
    assert types["matmul"].count == 24
    assert types["conv2d"].macs == 768 * 3 * 16 * 16 * 14 * 14


def test_grouped_dilated_strided_convolution() -> None:
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=4)
    r = analysis.count_flops(conv, input_size=(8, 32, 32))
    (row,) = r.layers
    assert row.output_shape == (1, 16, 16, 16)
    assert row.macs == 16 * 16 * 16 * (8 // 4) * 3 * 3
    assert row.kernel == (3, 3) and row.params == 16 * 2 * 9 + 16


def test_report_tables() -> None:
    r = analysis.count_flops("resnet18", input_size=64)
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(r.layers)
    assert df["macs"].sum() == r.total_macs
    assert list(df.columns)[:3] == ["name", "op", "module_type"]
    text = str(r)
    assert "layer1.0.conv1" in text and f"{r.total_macs:,}" in text
    assert set(r.by_type) >= {"conv2d", "linear", "batch_norm", "relu", "add", "max_pool2d"}
    assert next(iter(r.by_type)) == "conv2d"
    assert json.loads(json.dumps(r.to_dict()))["total_macs"] == r.total_macs


def test_real_model_is_not_changed_and_counts_the_same() -> None:
    import torchvision

    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    r = analysis.count_flops(model, input_size=96)
    rf = analysis.receptive_field(model, input_size=96)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert r.total_macs == analysis.count_flops("resnet18", input_size=96).total_macs
    assert rf.size == (435, 435)
    meta = analysis.meta_model("resnet18")
    meta.train()
    analysis.count_flops(meta)
    assert meta.training and not any(m._forward_hooks for m in meta.modules())


class _ReadsValues(nn.Module):
    """Cannot run on meta: it looks at a tensor's value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * 2 if float(y.sum()) >= 0 else y


def test_a_model_that_cannot_run_on_meta_falls_back_and_says_why() -> None:
    r = analysis.count_flops(_ReadsValues(), input_size=(3, 10, 10))
    assert r.note is not None and "meta" in r.note
    assert r.total_macs == 4 * 8 * 8 * 3 * 9
    with pytest.raises(AnalysisError, match=r"could not trace _ReadsValues .* meta device"):
        analysis.count_flops(_ReadsValues().to("meta"), input_size=(3, 10, 10))


def test_a_huge_input_is_counted_on_the_meta_device() -> None:
    """100,000 x 100,000 px costs no memory on the meta device: counted, not refused."""
    small = analysis.count_flops("resnet18", input_size=(3, 1000, 1000))
    huge = analysis.count_flops("resnet18", input_size=(3, 100_000, 100_000))
    assert huge.total_flops > 9_000 * small.total_flops
    with pytest.raises(AnalysisError, match="runs the model forward and backward"):
        analysis.empirical_receptive_field("resnet18", input_size=(3, 100_000, 100_000))


def test_bad_inputs_raise_analysis_error() -> None:
    for size in [(3, 0, 224), None, True, (3, 224, 10**6 + 1), "224", (3, 2.5, 224)]:
        with pytest.raises(AnalysisError, match="input_size must be"):
            analysis.count_flops("resnet18", input_size=size)  # type: ignore[arg-type]
        with pytest.raises(AnalysisError, match="input_size must be"):
            analysis.receptive_field("resnet18", input_size=size)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match=r"no model named 'resnet81'.*resnet18"):
        analysis.count_flops("resnet81")
    with pytest.raises(AnalysisError, match="could not trace"):
        analysis.count_flops("alexnet", input_size=16)
    with pytest.raises(AnalysisError, match=r"expected a torch\.nn\.Module"):
        analysis.count_flops(42)  # type: ignore[arg-type]


# -- receptive field -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet18", 435), ("vgg16", 212), ("alexnet", 195), ("resnet50", 427)],
)
def test_known_receptive_fields(name: str, size: int) -> None:
    rf = analysis.receptive_field(name, input_size=(3, 224, 224))
    assert rf.size == (size, size)
    assert rf.stride == (32, 32)
    assert rf.misalignments == ()
    assert rf.output_sees_whole_input


def test_resnet18_grows_layer_by_layer() -> None:
    rf = analysis.receptive_field("resnet18")
    by_name = {r.name: r for r in rf.layers}
    assert by_name["conv1"].size == (7, 7) and by_name["conv1"].stride == (2, 2)
    assert by_name["maxpool"].size == (11, 11)
    assert [by_name[f"layer{i}"].size[0] for i in (1, 2, 3, 4)] == [43, 99, 211, 435]  # type: ignore[index]
    assert by_name["layer4"].padding == (217, 217)
    assert by_name["avgpool"].size is None and by_name["avgpool"].sees_whole_input
    assert by_name["fc"].describe() == "whole input"
    assert rf.layer == "layer4"


def test_dilation_and_stride() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.Conv2d(4, 4, 3, dilation=2, padding=2))
    rf = analysis.receptive_field(net, input_size=(3, 32, 32))
    assert [r.size for r in rf.layers[:2]] == [(3, 3), (11, 11)]
    assert rf.stride == (2, 2) and rf.padding == (4, 4)


class _Misaligned(nn.Module):
    """Two branches of equal size, one shifted by two pixels before the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + F.pad(self.b(x), (2, 0, 2, 0))


def test_misaligned_branches_are_reported() -> None:
    rf = analysis.receptive_field(_Misaligned(), input_size=(3, 16, 16))
    assert len(rf.misalignments) == 2  # along H and along W
    assert "do not line up" in rf.misalignments[0]
    assert rf.size == (4, 4)  # the union of the two fields: pixels -2..1 around unit 0
    assert "misaligned" in str(rf)


def test_branches_and_concatenations_are_followed() -> None:
    assert analysis.receptive_field("googlenet").misalignments == ()
    dense = analysis.receptive_field("densenet121", input_size=64)
    assert dense.size[0] > 1000 and dense.misalignments == ()


def test_global_paths_are_said_not_numbered() -> None:
    vit = analysis.receptive_field("vit_b_16")
    assert vit.layer == "conv_proj" and vit.size == (16, 16) and vit.stride == (16, 16)
    assert vit.layers[-1].size is None and vit.layers[-1].sees_whole_input
    eff = analysis.receptive_field("efficientnet_b0", input_size=64)
    assert eff.sees_whole_input  # squeeze-and-excitation gates
    with pytest.raises(AnalysisError, match="no spatial feature map"):
        analysis.receptive_field(
            nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), input_size=(3, 2, 2)
        )


# -- empirical check -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "size", "layer"),
    [
        ("resnet18", 128, "layer2"),
        ("alexnet", 256, "features"),
        ("mobilenet_v2", 96, "features.6"),
        ("googlenet", 128, "inception3b"),
        ("shufflenet_v2_x0_5", 96, "stage2"),
        ("shufflenet_v2_x1_0", 96, "stage2"),  # its channel split is split(58, dim=1)
        ("convnext_tiny", 96, "features.1"),
        ("squeezenet1_1", 128, "features.5"),
    ],
)
def test_traced_field_matches_the_gradient(name: str, size: int, layer: str) -> None:
    model = analysis.meta_model(name)
    rf = analysis.receptive_field(model, input_size=size)
    measured = analysis.empirical_receptive_field(model, input_size=size, layer=layer)
    assert not measured.clipped
    assert (measured.rows, measured.cols) == rf.unit_box(*measured.unit, layer=layer)
    row = [r for r in rf.layers if r.name == layer][-1]
    assert measured.size == row.size


def test_empirical_dilated_and_default_layer() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, dilation=3)
    )
    rf = analysis.receptive_field(net, input_size=(3, 64, 64))
    measured = analysis.empirical_receptive_field(net, input_size=(3, 64, 64))
    assert measured.layer == "3" and measured.size == rf.size == (29, 29)
    assert (measured.rows, measured.cols) == rf.unit_box(*measured.unit)


def test_empirical_sees_squeeze_excitation_as_global() -> None:
    measured = analysis.empirical_receptive_field(
        "efficientnet_b0", input_size=64, layer="features.2"
    )
    assert measured.size == (64, 64) and measured.clipped
    with pytest.raises(AnalysisError, match="no module 'nope'"):
        analysis.empirical_receptive_field("resnet18", input_size=64, layer="nope")


# -- command line --------------------------------------------------------------------------
def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "resnet18", "--num-classes", "18", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"model", "input_size", "params", "total_macs", "total_flops", "receptive_field"} <= set(
        out
    )
    assert out["total_macs"] == sum(STUDY_RESNET18) + 3 * 6_422_528
    assert out["receptive_field"]["size"] == [435, 435]
    assert out["receptive_field"]["stride"] == [32, 32]
    assert out["layers"][0]["name"] == "conv1" and out["layers"][-1]["macs"] == 9216


def test_cli_text_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "alexnet", "--input-size", "224", "--per-layer"]) == 0
    out = capsys.readouterr().out
    assert "714,188,480" in out and "195 px, stride 32" in out and "features.0" in out
    assert main(["analyze", "resnet81"]) == 2
    assert "no model named 'resnet81'" in capsys.readouterr().err


def test_cli_analyzes_a_saved_classifier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file goes through ClothingClassifier.load; its network and image size are used.

    (Saving a real classifier needs a fit, which the ``trained`` fixture in conftest.py pays
    for; here ``load`` returns what it would: an object with ``model_`` and ``preprocessing_``.)
    """
    import types

    from clothingclf import classifier

    path = tmp_path / "model.pt"
    path.write_bytes(b"stand-in")
    net = analysis.meta_model("resnet18", num_classes=4)
    prep = Preprocessing(image_size=64, resize_size=73)
    networks = [(net, prep)]
    found = types.SimpleNamespace(networks=networks)
    loaded = types.SimpleNamespace(model_=net, preprocessing_=prep, predictor=lambda: found)
    calls: list[tuple[str, str]] = []

    def fake_load(cls: object, p: str, *, device: str = "auto") -> object:
        calls.append((str(p), device))
        return loaded

    monkeypatch.setattr(classifier.ClothingClassifier, "load", classmethod(fake_load))
    assert main(["analyze", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert calls == [(str(path), "cpu")]
    assert out["model"] == "model.pt" and out["input_size"] == [3, 64, 64]
    assert out["layers"][-1]["op"] == "linear" and out["layers"][-1]["macs"] == 512 * 4
    assert out["total_macs"] == analysis.count_flops(net, input_size=64).total_macs
    assert out["receptive_field"]["size"] == [435, 435]

    assert (out["network"], out["networks"]) == (1, 1)

    # A second network on a non-square view is analysed at its own input shape.
    networks.append((net, prep.with_aspect(4 / 3)))
    assert main(["analyze", str(path), "--json", "--network", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input_size"] == [3, 85, 64] and (out["network"], out["networks"]) == (2, 2)
    assert out["total_macs"] == analysis.count_flops(net, input_size=(3, 85, 64)).total_macs
    # --input-size still asks for a square.
    assert main(["analyze", str(path), "--json", "--network", "2", "--input-size", "32"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == [3, 32, 32]
    # The text output says that there are more networks; a network it lacks is an error.
    assert main(["analyze", str(path)]) == 0
    assert "network 1 of 2" in capsys.readouterr().out
    assert main(["analyze", str(path), "--network", "3"]) == 2
    assert "holds 2 networks; give a number from 1 to 2" in capsys.readouterr().err


def test_models_that_cache_tensors_after_a_forward_pass_are_counted() -> None:
    """timm's LeViT keeps attention biases computed with gradients in a dict attribute after
    a forward pass in eval mode; deepcopy refuses such tensors."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("levit_128s").eval()
    before = analysis.count_flops(model, input_size=(3, 224, 224)).total_macs
    model(torch.zeros(1, 3, 224, 224))  # fills the cache, with gradients
    assert analysis.count_flops(model, input_size=(3, 224, 224)).total_macs == before
    assert analysis.receptive_field(model, input_size=(3, 224, 224)).size[0] > 0


def test_a_field_lost_after_the_reported_map_is_said() -> None:
    """A stride-1 branch joined with an upsampled stride-2 branch: the field after the join
    is not known (upsampling), so the result names the earlier map and says why."""

    class Join(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fine = nn.Conv2d(3, 8, 3, padding=1)
            self.coarse = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.head = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.fine(x) + F.interpolate(self.coarse(x), scale_factor=2))

    rf = analysis.receptive_field(Join(), input_size=(3, 32, 32))
    assert rf.layer == "coarse" and rf.lost_after is not None
    assert rf.lost_after.startswith("head (")
    assert rf.describe().startswith("not known for the network's last map (unknown after head")
    assert "earlier: 3 px, stride 2" in str(rf)
    assert rf.to_dict()["lost_after"] == rf.lost_after
    assert analysis.receptive_field("resnet18", input_size=64).lost_after is None
