"""count_flops agrees exactly with torch's FlopCounterMode on every torchvision classifier.

Each model is built on the ``meta`` device (no weights, no memory) and traced once; the
reference FlopCounterMode watches that same forward pass from outside our recorder, so it
counts with its own formulas the very operations the model ran, at half the cost of a
second pass. A few models are also compared with a separate, plain FlopCounterMode pass.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from clothingclf import analysis

MODELS = torchvision.models.list_models(module=torchvision.models)


def test_the_list_is_the_classification_models() -> None:
    assert len(MODELS) >= 80
    assert {"resnet18", "vit_h_14", "regnet_y_128gf", "swin_v2_b", "maxvit_t"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_total_flops_equal_flop_counter_mode(name: str) -> None:
    model = analysis.meta_model(name)
    with FlopCounterMode(display=False) as reference:
        report = analysis.count_flops(model, input_size=(3, 224, 224))
    assert report.note is None, f"{name} could not be traced on meta: {report.note}"
    assert report.total_flops == reference.get_total_flops() > 0
    assert report.total_flops == 2 * report.total_macs == 2 * sum(r.macs for r in report.layers)
    assert report.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "vit_b_16", "swin_t", "maxvit_t", "googlenet"])
def test_total_flops_equal_a_separate_flop_counter_mode_pass(name: str) -> None:
    model = analysis.meta_model(name)
    with FlopCounterMode(display=False) as reference, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert analysis.count_flops(model).total_flops == reference.get_total_flops()
