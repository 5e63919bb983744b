"""The traced receptive field agrees with the gradient oracle on every torchvision classifier
and on a broad set of timm CNNs (issue #19: wrong numbers must not be reported silently).

For each model one layer is chosen automatically: among the modules called once whose output
is an N x C x H x W map with a finite traced field, the one with the largest field whose
centre unit's box lies inside the input with a pixel to spare (the oracle measures fields
exactly only away from the border, see :mod:`clothingclf.analysis.empirical`). Its traced box
and size must equal the measured ones. A map that also sees the whole input (behind
squeeze-and-excitation gates, group norm, attention) is compared with the oracle's local
measurement (``ignore_global_paths=True``). The input is not square, so that a mix-up of the
two axes shows.

Models are built on the ``meta`` device (no weights, no initialisation), the tracer runs on
``meta`` and the oracle runs on broadcast weights up to the chosen layer only, which keeps
the 80 torchvision and 50 timm models near a minute on two cores. The small tests at the end
pin the tracer bugs this comparison found, one model each.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from clothingclf import analysis
from clothingclf.analysis import LayerReceptiveField, ReceptiveField
from clothingclf.analysis.tracing import _parameters_on_meta
from clothingclf.exceptions import AnalysisError

SIZE = (3, 128, 96)

TORCHVISION = torchvision.models.list_models(module=torchvision.models)
# Input sizes where the default does not suit the architecture.
TORCHVISION_SIZE = {
    name: (3, 224, 224) for name in TORCHVISION if name.startswith("vit_")
}  # ViT's position embedding is for 224 x 224 only
TORCHVISION_SIZE["maxvit_t"] = (3, 224, 224)  # its grid partitions: 7 x 7 at stride 32

# Not CNNs, none excluded: checked like the others at their deepest map with a local field,
# and for the documented outcome after it.
ATTENTION = {
    "vit_": "global attention from the first block: no later map has a local field",
    "swin_": "the local path (patch merging, residuals) is followed through shifted windows",
    "maxvit": "window partitions split the spatial axes: no local field after the first",
}

TIMM = [
    # ResNet family: average-pool shortcuts ("d", misaligned by half a pixel), deep stems,
    # pre-activation, weight standardisation, SE/ECA gates, selective kernels, split attention
    "resnet18d",
    "resnetv2_50",
    "resnetv2_50x1_bit",
    "seresnext26d_32x4d",
    "ecaresnet26t",
    "skresnet18",
    "resnest14d",
    "resnetblur18",
    "res2net50_26w_4s",
    "nf_resnet26",
    # EfficientNet family, TF "same" padding, mixed kernels, MobileNets
    "efficientnet_b0",
    "tf_efficientnet_lite0",
    "tf_efficientnetv2_b0",
    "tf_mixnet_s",
    "mobilenetv3_large_100",
    "mobilenetv4_conv_small",
    "mnasnet_100",
    # RegNets, ConvNeXt (channels-last linear layers, GRN)
    "regnetx_002",
    "regnety_002",
    "regnetz_b16",
    "convnext_atto",
    "convnextv2_atto",
    # Aggregation, multi-resolution, ghost and dense connections
    "dla34",
    "hrnet_w18_small",
    "ghostnet_100",
    "rexnet_100",
    "dpn48b",
    "densenet121",
    "cspresnet50",
    "cspdarknet53",
    "vovnet39a",
    "ese_vovnet19b_dw",
    "selecsls42b",
    "xception41",
    "inception_v4",
    # Re-parameterisable and recent CNNs, conv/attention hybrids
    "gernet_s",
    "repvgg_a0",
    "mobileone_s0",
    "hgnetv2_b0",
    "fastvit_t8",
    "poolformer_s12",
    "efficientvit_b0",
    "mobilevit_xxs",
    "edgenext_xx_small",
    "inception_next_atto",
    "starnet_s1",
    "rdnet_tiny",
    "repvit_m0_9",
    "fasternet_t0",
    "mambaout_femto",
]


def _fits(row: LayerReceptiveField, h: int, w: int) -> bool:
    """Whether the field of the centre unit of ``row``'s map lies inside an ``h x w`` input
    with a pixel to spare on every side, so that the oracle measures it unclipped."""
    assert row.size is not None and row.stride is not None and row.padding is not None
    out_h, out_w = row.output_shape[2], row.output_shape[3]
    if out_h * row.stride[0] > h + row.stride[0] or out_w * row.stride[1] > w + row.stride[1]:
        return False  # a channels-last map (N x H x W x C): not what the oracle reads
    top = (out_h - 1) // 2 * row.stride[0] - row.padding[0]
    left = (out_w - 1) // 2 * row.stride[1] - row.padding[1]
    return top >= 1 and left >= 1 and top + row.size[0] <= h - 1 and left + row.size[1] <= w - 1


def _deepest_inside(rf: ReceptiveField) -> LayerReceptiveField | None:
    """The map to check: largest field inside the input, of a module called only once (the
    oracle measures a module's first call, the table keeps its last)."""
    calls: dict[str, int] = {}
    for row in rf.layers:
        calls[row.name] = calls.get(row.name, 0) + 1
    _, h, w = rf.input_size
    best, best_area = None, 0
    for row in rf.layers:
        if not row.name or calls[row.name] > 1 or row.size is None or len(row.output_shape) != 4:
            continue
        if _fits(row, h, w) and row.size[0] * row.size[1] >= best_area:
            best, best_area = row, row.size[0] * row.size[1]
    return best


def _agrees_with_the_oracle(model: nn.Module, size: tuple[int, int, int]) -> ReceptiveField:
    rf = analysis.receptive_field(model, input_size=size)
    row = _deepest_inside(rf)
    assert row is not None, f"no map of {rf.model} has a field inside {size}:\n{rf.table()}"
    measured = analysis.empirical_receptive_field(
        model, input_size=size, layer=row.name, ignore_global_paths=row.sees_whole_input
    )
    assert not measured.clipped
    assert (measured.rows, measured.cols) == rf.unit_box(*measured.unit, layer=row.name), row
    assert measured.size == row.size
    return rf


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_traced_field_matches_the_gradient(name: str) -> None:
    rf = _agrees_with_the_oracle(analysis.meta_model(name), TORCHVISION_SIZE.get(name, SIZE))
    assert rf.output_sees_whole_input
    later = rf.layers[[r.name for r in rf.layers].index(rf.layer) + 1 :]
    outcome = next((why for prefix, why in ATTENTION.items() if name.startswith(prefix)), "")
    if name.startswith("vit_"):
        assert rf.layer == "conv_proj" and all(r.size is None for r in later), outcome
    elif name.startswith("swin_"):
        assert rf.layer == "permute" and rf.sees_whole_input and rf.size == (32, 32), outcome
    elif name.startswith("maxvit"):
        partition = next(r for r in later if "partition" in r.name)
        assert partition.size is None and "splits a spatial axis" in str(partition.note), outcome


def _timm(name: str) -> Any:
    """timm, or a skip where it is missing or too old to know ``name``."""
    timm = pytest.importorskip("timm")
    if not timm.is_model(name):
        pytest.skip(f"timm {timm.__version__} has no {name}")
    return timm


def _timm_on_meta(name: str) -> nn.Module:
    """A timm model with its parameters on ``meta``, uninitialised."""
    timm = _timm(name)
    try:
        model: nn.Module = timm.create_model(name, pretrained=False, device="meta")
    except TypeError:  # an older timm has no device=: build it the way meta_model does
        with _parameters_on_meta():
            model = timm.create_model(name, pretrained=False)
    return model.eval()


@pytest.mark.parametrize("name", TIMM)
def test_timm_traced_field_matches_the_gradient(name: str) -> None:
    _agrees_with_the_oracle(_timm_on_meta(name), SIZE)


def test_timm_models_the_oracle_cannot_check_say_why() -> None:
    """The documented limits, as they show: TResNet's space-to-depth stem splits the spatial
    axes (the tracer raises and names it); timm's hand-written RMS norm is scale-invariant, so
    the oracle's gradient cancels and it raises instead of measuring."""
    with pytest.raises(AnalysisError, match=r"lost first at: view splits a spatial axis"):
        analysis.receptive_field(_timm_on_meta("tresnet_m"), input_size=SIZE)
    model = _timm_on_meta("convnext_zepto_rms")
    layer = "stages.1.blocks.1"
    assert analysis.receptive_field(model, input_size=SIZE).layers  # traced all the same
    with pytest.raises(AnalysisError, match="normalises with elementary operations"):
        analysis.empirical_receptive_field(model, input_size=SIZE, layer=layer)


@pytest.mark.parametrize("name", ["levit_128s", "efficientformer_l1", "tiny_vit_5m_224"])
def test_timm_flops_with_cached_attention_biases(name: str) -> None:
    """These cache attention biases, computed with gradients, after a forward pass in eval
    mode; count_flops must copy such a model and agree with FlopCounterMode."""
    model = _timm(name).create_model(name, pretrained=False).eval()
    x = torch.zeros(1, 3, 224, 224)
    model(x)  # fills the caches
    with FlopCounterMode(display=False) as reference, torch.no_grad():
        model(x)
    report = analysis.count_flops(model, input_size=(3, 224, 224))
    assert report.note is None
    assert report.total_flops == reference.get_total_flops() > 0


# -- hand-made cases for the bugs the zoo found ---------------------------------------------
class _ShiftIntoBuffer(nn.Module):
    """Writes a shifted copy into a slice of a zero buffer: the buffer depends on the input
    through memory it shares with the slice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        shifted = torch.zeros_like(y)
        shifted[:, :, 2:] = y[:, :, :-2]
        return y + shifted


class _MixedKernels(nn.Module):
    """MixNet's mixed convolution twice: channels from a 3 x 3 and a 5 x 5 kernel are
    concatenated, then split again; the first half sees only the 3 x 3 field."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Conv2d(3, 2, 3, padding=1)
        self.large = nn.Conv2d(3, 2, 5, padding=2)
        self.first = nn.Conv2d(2, 2, 1)
        self.second = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.relu(torch.cat([self.small(x), self.large(x)], dim=1))
        a, b = mixed.split(2, dim=1)
        return torch.cat([self.first(a), self.second(b)], dim=1)


class _Cumulative(nn.Module):
    """A cumulative sum along H keeps the shape but not the positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, torch.ones(2, 3, 3, 3)).cumsum(2)


class _Stacked(nn.Module):
    """Stacking maps along a new dimension (selective kernels) keeps their fields."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a(x), self.b(x)], dim=1).sum(1)


class _Reflect(nn.Module):
    """Reflection padding shifts the field like zero padding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))


def _field(model: nn.Module, size: Any = (3, 32, 32)) -> ReceptiveField:
    return analysis.receptive_field(model, input_size=size)


def test_a_write_into_a_slice_is_not_followed_silently() -> None:
    rf = _field(_ShiftIntoBuffer())
    assert rf.layer == "conv" and rf.size == (3, 3)  # the map before the write
    out = rf.layers[-1]
    assert out.size is None and not out.sees_whole_input
    assert out.note is not None and "writes into memory shared" in out.note
    assert rf.lost_after is not None and "copy_" in rf.lost_after
    # What the trace could not follow: the output reads rows y and y - 2 of the map.
    measured = analysis.empirical_receptive_field(_ShiftIntoBuffer(), input_size=32, layer="")
    assert measured.size == (5, 3) and not measured.clipped


def test_a_slice_of_channels_has_the_field_of_those_channels() -> None:
    """Found on tf_mixnet_s: the traced field of a split of mixed-kernel channels was that of
    all of them (5 x 5 for the 3 x 3 half); the measured one is that of the channels taken."""
    rf = _field(_MixedKernels())
    sizes = {r.name: r.size for r in rf.layers}
    assert sizes["first"] == (3, 3) and sizes["second"] == (5, 5) and rf.size == (5, 5)
    for layer in ("first", "second"):
        e = analysis.empirical_receptive_field(_MixedKernels(), input_size=32, layer=layer)
        assert (e.rows, e.cols) == rf.unit_box(*e.unit, layer=layer) and e.size == sizes[layer]


def test_unknown_position_mixing_operations_end_the_tracking() -> None:
    rf = _field(_Cumulative())
    assert rf.layers[-1].size is None
    assert rf.layers[-1].note is not None and "cumsum along a spatial axis" in rf.layers[-1].note


def test_the_oracle_runs_a_model_with_shared_weights_and_leaves_it_as_it_was() -> None:
    conv = nn.Conv2d(3, 3, 3)
    model = nn.Sequential(conv, nn.ReLU(), conv).train()
    before = conv.weight.detach().clone()
    measured = analysis.empirical_receptive_field(model, input_size=(3, 16, 16))
    assert measured.size == (5, 5) == _field(model, (3, 16, 16)).size
    assert model.training and torch.equal(conv.weight, before) and conv.weight.requires_grad
    assert not any(m._forward_hooks for m in model.modules())


def test_the_oracle_leaves_a_model_s_caches_as_they_were() -> None:
    """LeViT fills an attention-bias cache during a pass in eval mode: the oracle's pass, with
    its stand-in weights, must not leave its values there for the model's next prediction."""
    model = _timm("levit_conv_128s").create_model("levit_conv_128s", pretrained=False).eval()
    caches = [m.attention_bias_cache for m in model.modules() if hasattr(m, "attention_bias_cache")]
    assert caches and not any(caches)
    analysis.empirical_receptive_field(
        model, input_size=224, layer="stages.0.blocks.1", ignore_global_paths=True
    )
    assert not any(caches)
    assert [
        m.attention_bias_cache for m in model.modules() if hasattr(m, "attention_bias_cache")
    ] == caches


def test_stack_reflection_padding_and_group_norm_keep_the_field() -> None:
    stacked = _field(_Stacked())
    assert stacked.lost_after is None and stacked.layers[-1].size == (5, 5)
    reflect = _field(_Reflect())
    assert reflect.lost_after is None and reflect.padding == (1, 1) and reflect.size == (3, 3)
    e = analysis.empirical_receptive_field(_Reflect(), input_size=(3, 32, 32))
    assert (e.rows, e.cols) == reflect.unit_box(*e.unit) and e.size == (3, 3)
    norm = _field(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 3)))
    assert norm.size == (5, 5) and norm.sees_whole_input and norm.layer == "2"
