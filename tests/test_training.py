"""The training loop: recipes, schedules, resume, interruption, divergence, crashes."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from _guards import forbid_unpickling
from _nets import tiny_features
from clothingclf import DatasetSplits
from clothingclf.backbones import ClothingNet, Preprocessing
from clothingclf.checkpoint import safe_load
from clothingclf.data.cache import build_image_cache
from clothingclf.exceptions import InvalidParameterError, ModelFileError, TrainingDivergedError
from clothingclf.settings import RECIPES, RunOptions, all_settings, resolve_options
from clothingclf.training import TrainConfig, resolve_config, steps, train_model
from clothingclf.training import loop as training
from clothingclf.training.augment import Views, _jitter, batches, image_size, mix
from clothingclf.training.averaging import Average

PREP = Preprocessing(image_size=32, resize_size=36, mean=(0.5,) * 3, std=(0.25,) * 3)
CPU = torch.device("cpu")


def tiny_net(num_classes: int = 4, seed: int = 0) -> ClothingNet:
    """A small CNN without BatchNorm (so a tiny learning rate changes nothing)."""
    torch.manual_seed(seed)
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return ClothingNet(features, nn.Linear(16, num_classes))


class Setup(NamedTuple):
    """A test fit's settings: what it learns with and how it runs."""

    config: TrainConfig
    options: RunOptions

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"config": self.config, "options": self.options}


def config(**overrides: Any) -> Setup:
    values: dict[str, Any] = {
        "epochs": 3,
        "batch_size": 16,
        "head_epochs": 0,
        "progress": False,
        "num_workers": 0,
        "lr": 0.01,
        "amp": "off",  # bfloat16 kernels cost more than they save on networks this small
        "val_every": 1,  # these tests read every epoch's validation
    }
    values.update(overrides)
    run = {s.name for s in all_settings() if s.runtime}
    options = resolve_options(**{k: v for k, v in values.items() if k in run})
    learned = {k: v for k, v in values.items() if k not in run}
    return Setup(resolve_config("fast", **learned), options)


def fit(splits: Any, cfg: Setup, **kwargs: Any) -> training.TrainResult:
    return train_model(
        kwargs.pop("model", None) or tiny_net(),
        splits.train,
        kwargs.pop("val", splits.val),
        class_weights=splits.class_weights,
        preprocessing=PREP,
        device=CPU,
        **cfg.kwargs,
        **kwargs,
    )


# ------------------------------------------------------------------ configuration


def test_seed_recipe_is_the_study() -> None:
    c = resolve_config("seed")
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay) == ("sgd", 0.005, 0.9, 0.0)
    assert (c.epochs, c.batch_size, c.schedule, c.class_weighted) == (50, 32, "constant", True)
    assert (c.label_smoothing, c.head_epochs, c.size_schedule, c.tta) == (0.0, 0, (), False)
    assert (c.min_scale, c.flip, c.keep, c.image_size) == (0.08, True, "best", 224)


def test_fast_recipe_is_the_measured_one() -> None:
    # docs/performance.rst measures exactly these; change both together.
    c = resolve_config("fast")
    assert (c.optimizer, c.lr, c.weight_decay, c.schedule) == ("adamw", 0.0002, 0.05, "onecycle")
    assert (c.epochs, c.size_schedule, c.image_size) == (10, (0.71, 0.86, 1.0), 224)
    assert (c.min_scale, c.class_weighted, c.keep, c.freeze_bn) == (0.6, False, "final", True)
    assert (c.head_epochs, c.head_lr, c.label_smoothing, c.tta) == (20, 0.002, 0.1, True)
    # Two networks: the centre square at 224 px, the whole 3:4 photo at 192 x 256 px.
    assert (c.aspect, c.extra_views, c.val_every) == (1.0, (4 / 3,), 5)
    assert c.views() == [(224, 1.0), (192, 4 / 3)]
    # Progressive resizing gives the measured sizes: 4 x 160, 3 x 192, 3 x 224 px for the
    # square, 4 x 144, 3 x 160, 3 x 192 px wide for the whole photo.
    sizes = [[image_size(c, epoch, width) for epoch in range(1, 11)] for width, _ in c.views()]
    assert sizes == [[160] * 4 + [192] * 3 + [224] * 3, [144] * 4 + [160] * 3 + [192] * 3]


def test_extra_views_get_the_pixels_of_the_first_network() -> None:
    c = resolve_config("seed", image_size=64, extra_views=[4 / 3, 0.75, 1.0])
    assert c.extra_views == (4 / 3, 0.75, 1.0)
    assert c.views() == [(64, 1.0), (48, 4 / 3), (80, 0.75), (64, 1.0)]
    assert TrainConfig.from_dict(c.to_dict()) == c
    # A first network that is not square: the others match its pixels.
    assert resolve_config("seed", image_size=192, aspect=4 / 3, extra_views=(1.0,)).views()[1] == (
        224,
        1.0,
    )
    for bad in ("4/3", [0.1], [True], 4 / 3, [[192, 4 / 3]]):
        with pytest.raises(InvalidParameterError, match="extra_views"):
            resolve_config("seed", extra_views=bad)
    for bad in (0, 1.5, True, "5"):
        with pytest.raises(InvalidParameterError, match="val_every"):
            resolve_config("seed", val_every=bad)
    for bad in (0.1, 5, True, "4/3"):
        with pytest.raises(InvalidParameterError, match="aspect"):
            resolve_config("seed", aspect=bad)


def test_overrides_none_keeps_the_recipe_value() -> None:
    c = resolve_config("fast", epochs=None, lr=0.1, size_schedule=[0.5, 1])
    assert c.epochs == RECIPES["fast"]["epochs"] and c.lr == 0.1
    assert c.size_schedule == (0.5, 1.0)
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive int; found 0."),
        ({"lr": -1.0}, "lr must be a positive finite number; found -1.0."),
        ({"optimizer": "adam"}, "optimizer must be one of 'sgd', 'nesterov', 'adamw'"),
        ({"early_stopping": 0}, "early_stopping must be None or a positive int"),
        ({"size_schedule": (0.0, 1.0)}, "size_schedule must be fractions in (0, 1]"),
        ({"learning_rate": 0.1}, "'learning_rate' is not a training setting"),
        ({"ema_decay": 1.0}, "ema_decay must be a number in [0, 1) (0: no weight averaging)"),
        ({"mixup_alpha": -0.1}, "mixup_alpha must be a finite number >= 0 (0: off)"),
        ({"color_jitter": 1.0}, "color_jitter must be a number in [0, 1) (0: off)"),
        ({"reuse_memory": True}, "reuse_memory must be one of 'auto', 'on', 'off'; found True."),
    ],
)
def test_bad_settings_say_what_is_wrong(overrides: dict[str, Any], message: str) -> None:
    run = {s.name for s in all_settings() if s.runtime}
    with pytest.raises(InvalidParameterError) as error:
        if set(overrides) <= run:
            resolve_options(**overrides)
        else:
            resolve_config("seed", **overrides)
    assert message in str(error.value)


def test_unknown_recipe() -> None:
    with pytest.raises(InvalidParameterError, match="Unknown recipe 'slow'; expected one of"):
        resolve_config("slow")  # type: ignore[arg-type]


def test_onecycle_warms_up_then_anneals_to_zero() -> None:
    c = resolve_config("fast", epochs=4, warmup_epochs=1.0)
    factor = steps.lr_factor(c, steps_per_epoch=10)
    values = [factor(step) for step in range(40)]
    assert values[0] < values[5] < values[9] <= 1.0
    assert values[10] == pytest.approx(1.0) and values[-1] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    constant = steps.lr_factor(resolve_config("seed"), steps_per_epoch=10)
    assert {constant(step) for step in range(500)} == {1.0}


def test_progressive_resizing_schedule() -> None:
    c = resolve_config("fast", epochs=8, size_schedule=(0.57, 0.71, 0.86, 1.0))
    sizes = [image_size(c, epoch, 224) for epoch in range(1, 9)]
    assert sizes == [128, 128, 160, 160, 192, 192, 224, 224]
    assert image_size(resolve_config("seed"), 3, 224) == 224


def test_weighted_loss_weighs_images_not_the_smoothing() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    weight = torch.tensor([1.0, 5.0, 0.5])
    plain = torch.nn.functional.cross_entropy(logits, target, weight=weight)
    assert torch.allclose(steps._loss(logits, target, weight, 0.0), plain)
    ones = steps._loss(logits, target, torch.ones(3), 0.1)
    smoothed = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(ones, smoothed)
    # A confident, correct prediction of a frequent class costs less than under PyTorch's
    # weighted smoothing, which charges it for not predicting the heavily weighted class.
    sure = torch.tensor([[8.0, 0.0, 0.0]])
    ours = steps._loss(sure, torch.tensor([0]), weight, 0.1)
    theirs = torch.nn.functional.cross_entropy(
        sure, torch.tensor([0]), weight=weight, label_smoothing=0.1
    )
    assert ours < theirs


def test_last_batch_of_one_joins_the_previous() -> None:
    sizes = [len(b) for b in batches(np.arange(33), 16)]
    assert sizes == [16, 17]
    assert [len(b) for b in batches(np.arange(1), 16)] == [1]


def test_augmentation_is_deterministic_and_flips() -> None:
    images = torch.zeros(2, 3, 36, 36, dtype=torch.uint8)
    images[:, 0, :, :18] = 255  # left half red
    views = Views(
        Preprocessing(image_size=32, resize_size=36, mean=(0, 0, 0), std=(1, 1, 1)), CPU, False
    )

    def crops(seed: int, flip: bool) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return views.augmented(images, 16, generator, min_scale=1.0, flip=flip)

    assert torch.equal(crops(1, True), crops(1, True))
    unflipped = crops(1, False)
    assert unflipped.shape == (2, 3, 16, 16)
    assert unflipped[:, 0, :, :4].mean() > 0.9 and unflipped[:, 0, :, -4:].mean() < 0.1
    flipped = [crops(seed, True)[:, 0, :, :4].mean(dim=(1, 2)) for seed in range(8)]
    assert min(float(f.min()) for f in flipped) < 0.1  # some images were mirrored


def test_color_jitter_matches_torchvision_and_draws_only_when_on() -> None:
    from torchvision.transforms.v2 import functional as TF

    generator = torch.Generator().manual_seed(5)
    images = torch.rand(4, 3, 12, 12, generator=generator)
    state = generator.get_state()
    jittered = _jitter(images, 0.4, generator)
    # The factors are the first draws after ``state``: replay them and apply torchvision's.
    replay = torch.Generator()
    replay.set_state(state)
    factors = torch.empty(3, 4).uniform_(0.6, 1.4, generator=replay)
    for i in range(4):
        expected = TF.adjust_brightness(images[i], float(factors[0, i]))
        expected = TF.adjust_contrast(expected, float(factors[1, i]))
        expected = TF.adjust_saturation(expected, float(factors[2, i]))
        assert torch.allclose(jittered[i], expected, atol=1e-5), i
    assert bool((factors != 1.0).all()) and not torch.allclose(jittered, images)
    assert float(jittered.min()) >= 0.0 and float(jittered.max()) <= 1.0

    cached = torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8)
    views = Views(
        Preprocessing(image_size=16, resize_size=20, mean=(0, 0, 0), std=(1, 1, 1)), CPU, False
    )
    off = torch.Generator().manual_seed(2)
    plain = views.augmented(cached, 16, off, min_scale=0.5, flip=True)
    after_plain = off.get_state()
    on = torch.Generator().manual_seed(2)
    jittered = views.augmented(cached, 16, on, min_scale=0.5, flip=True, color_jitter=0.3)
    # Same crops (the jitter's factors are drawn after them), different pixels.
    assert not torch.equal(on.get_state(), after_plain)
    assert not torch.allclose(plain, jittered)
    again = views.augmented(
        cached, 16, torch.Generator().manual_seed(2), min_scale=0.5, flip=True, color_jitter=0.3
    )
    assert torch.equal(again, jittered)


def test_training_with_color_jitter_runs_and_differs(synthetic_splits: Any) -> None:
    plain = fit(synthetic_splits, config(epochs=1))
    jittered = fit(synthetic_splits, config(epochs=1, color_jitter=0.3))
    assert math.isfinite(jittered.history[-1]["train_loss"])
    assert any(
        not torch.equal(plain.final_state[k], jittered.final_state[k]) for k in plain.final_state
    )


# ------------------------------------------------------------------ training


def bn_net() -> ClothingNet:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for cin, cout in ((3, 16), (16, 32), (32, 32)):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    return ClothingNet(
        nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(32, 4)
    )


def test_training_learns_the_synthetic_shapes(synthetic_splits: Any) -> None:
    # Validated on the training images themselves: 9 validation images are too few to
    # tell learning from luck, 77 training images are not.
    cfg = config(
        epochs=15, head_epochs=3, lr=0.003, size_schedule=(), min_scale=1.0, freeze_bn=False
    )
    result = fit(synthetic_splits, cfg, model=bn_net(), val=synthetic_splits.train)
    assert [row["epoch"] for row in result.history] == list(range(16))
    assert 0 < result.history[0]["train_loss"] < 2  # the head-only stage's last epoch
    losses = [row["train_loss"] for row in result.history[1:]]
    assert losses[-1] < 0.85 * losses[0]
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.6
    assert result.image_passes == 77 + 15 * 77
    assert set(result.history[1]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "image_size",
        "image_passes",
    }
    best = result.history[result.best_epoch]["val_accuracy"]
    assert best == result.best_val_accuracy == max(r["val_accuracy"] for r in result.history)


def test_without_validation_best_is_final(synthetic_splits: Any) -> None:
    result = fit(synthetic_splits, config(epochs=1), val=None)
    assert result.best_val_accuracy is None and result.final_val_accuracy is None
    assert math.isnan(result.history[0]["val_accuracy"])
    assert all(torch.equal(result.best_state[k], result.final_state[k]) for k in result.best_state)


def test_val_every_validates_only_the_epochs_it_names(synthetic_splits: DatasetSplits) -> None:
    from clothingclf.backbones import build_model
    from clothingclf.settings import resolve_config, resolve_options

    train = synthetic_splits.train.assign(
        label_id=[synthetic_splits.classes.index(v) for v in synthetic_splits.train["label"]]
    )
    val = synthetic_splits.val.assign(
        label_id=[synthetic_splits.classes.index(v) for v in synthetic_splits.val["label"]]
    )
    config = resolve_config(
        "fast",
        epochs=3,
        val_every=2,
        head_epochs=1,
        batch_size=16,
        image_size=32,
        extra_views=(),
    )
    model, prep, _ = build_model(tiny_features(), weights=None, num_classes=4, image_size=32)
    result = train_model(
        model,
        train,
        val,
        class_weights=None,
        preprocessing=prep,
        config=config,
        device=torch.device("cpu"),
        options=resolve_options(progress=False, num_workers=0, amp="off"),
    )
    seen = [not math.isnan(row["val_accuracy"]) for row in result.history]
    assert seen == [False, False, True, True]  # head stage, 1, 2 (every 2nd), 3 (last)
    assert result.final_val_accuracy == result.history[-1]["val_accuracy"]
    assert result.best_epoch in (2, 3)
    final = result.final_val_probabilities
    assert final is not None and final.shape == (len(val), 4)
    np.testing.assert_allclose(final.sum(1), 1.0, atol=1e-5)
    truth = val["label_id"].to_numpy()
    assert float((final.argmax(1) == truth).mean()) == pytest.approx(result.final_val_accuracy)


def test_resume_reproduces_an_uninterrupted_run_exactly(
    synthetic_splits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(epochs=3, head_epochs=3)
    reference = fit(synthetic_splits, cfg)

    calls = {"n": 0}
    original = training.evaluate

    def interrupt_in_epoch_two(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # stage 0, epoch 1, then Ctrl-C at the end of epoch 2
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupt_in_epoch_two)
    checkpoint = tmp_path / "run.ckpt"
    stopped = fit(synthetic_splits, cfg, checkpoint_path=checkpoint)
    monkeypatch.undo()
    assert stopped.interrupted and len(stopped.history) == 2
    assert safe_load(checkpoint, what="training checkpoint")["epoch"] == 1

    forbid_unpickling(monkeypatch)  # resuming reads the checkpoint without pickle
    resumed = fit(synthetic_splits, cfg, model=tiny_net(seed=123), resume=checkpoint)
    assert not resumed.interrupted
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]
    for key, value in reference.final_state.items():
        assert torch.equal(value, resumed.final_state[key]), key
    assert resumed.image_passes == reference.image_passes
    assert resumed.best_epoch == reference.best_epoch


def test_a_checkpoint_written_before_the_first_validation_resumes(
    synthetic_splits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # val_every=2: epoch 1 is not validated, so its checkpoint holds no best weights yet
    cfg = config(epochs=3, head_epochs=0, val_every=2)
    reference = fit(synthetic_splits, cfg)

    def interrupt_at_the_first_validation(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate", interrupt_at_the_first_validation)
    checkpoint = tmp_path / "run.ckpt"
    stopped = fit(synthetic_splits, cfg, checkpoint_path=checkpoint)
    monkeypatch.undo()
    saved = safe_load(checkpoint, what="training checkpoint")
    assert stopped.interrupted and saved["epoch"] == 1 and saved["best_state"] is None

    resumed = fit(synthetic_splits, cfg, model=tiny_net(seed=123), resume=checkpoint)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for key, value in reference.final_state.items():
        assert torch.equal(value, resumed.final_state[key]), key
    assert resumed.best_epoch == reference.best_epoch


# ------------------------------------------------------------------ mixup and cutmix


def _constant_images(count: int = 6, size: int = 8) -> torch.Tensor:
    """Image i is filled with the value i + 1, so every output pixel names its source."""
    return torch.arange(1.0, count + 1).view(count, 1, 1, 1).expand(count, 3, size, size).clone()


def test_mix_off_changes_nothing_and_draws_nothing() -> None:
    images = _constant_images()
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    mixed, share = mix(images, generator, mixup_alpha=0.0, cutmix_alpha=0.0)
    assert mixed is images and share == 1.0
    assert torch.equal(generator.get_state(), state)


def test_mixup_blends_each_image_with_its_mirror_in_the_batch() -> None:
    images = _constant_images()
    mixed, share = mix(images, torch.Generator().manual_seed(1), mixup_alpha=0.4, cutmix_alpha=0.0)
    assert 0.0 < share < 1.0
    expected = share * images + (1 - share) * images.flip(0)
    assert torch.allclose(mixed, expected)
    again, same = mix(images, torch.Generator().manual_seed(1), mixup_alpha=0.4, cutmix_alpha=0.0)
    assert torch.equal(again, mixed) and same == share


def test_cutmix_pastes_one_box_and_returns_its_true_share() -> None:
    images = _constant_images(size=16)
    shares = []
    for seed in range(20):
        mixed, share = mix(
            images, torch.Generator().manual_seed(seed), mixup_alpha=0.0, cutmix_alpha=1.0
        )
        own = (mixed == images).all(1)  # pixels still from the image itself
        pasted = (mixed == images.flip(0)).all(1)
        assert bool((own | pasted).all())
        assert float(own[0].float().mean()) == pytest.approx(share)
        box = (~own[0]).nonzero()
        if len(box):  # one axis-aligned rectangle
            rows, cols = box[:, 0], box[:, 1]
            area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert int(area) == len(box)
        shares.append(share)
    assert len(set(shares)) > 10 and min(shares) < 0.9


def test_both_mixes_are_used_when_both_are_set() -> None:
    kinds = set()
    images = _constant_images(size=16)
    for seed in range(30):
        mixed, _ = mix(
            images, torch.Generator().manual_seed(seed), mixup_alpha=0.4, cutmix_alpha=1.0
        )
        blended = not bool(((mixed == images) | (mixed == images.flip(0))).all())
        kinds.add("mixup" if blended else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_training_with_mixing_runs_and_differs(synthetic_splits: Any) -> None:
    plain = fit(synthetic_splits, config(epochs=2))
    mixed = fit(synthetic_splits, config(epochs=2, mixup_alpha=0.4, cutmix_alpha=1.0))
    assert all(math.isfinite(row["train_loss"]) for row in mixed.history)
    assert any(
        not torch.equal(plain.final_state[k], mixed.final_state[k]) for k in plain.final_state
    )


# ------------------------------------------------------------------ weight averaging


def test_weight_average_follows_the_ramped_decay() -> None:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(0.0)
    average = Average(net, decay=0.2)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 4.0], start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked.fill_(step)
        average.update()
        decay = min(0.2, (1 + step) / (10 + step))  # 0.18, 0.2, 0.2
        expected = decay * expected + (1 - decay) * value
        assert float(average.model[0].weight) == pytest.approx(expected, rel=1e-6)
        assert int(average.model[1].num_batches_tracked) == step  # copied, not averaged
    assert not any(p.requires_grad for p in average.model.parameters())
    assert float(net[0].weight.detach()) == 4.0  # the trained model is untouched


def test_weight_average_is_validated_and_kept(synthetic_splits: Any, tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    cfg = config(epochs=2, head_epochs=1, ema_decay=0.9)
    result = fit(synthetic_splits, cfg, checkpoint_path=path)
    saved = safe_load(path, what="training checkpoint")
    average, raw = saved["average"]["state"], saved["model"]
    assert saved["average"]["steps"] == 2 * 5  # 77 images in batches of 16, 2 epochs
    for key, value in result.final_state.items():
        assert torch.equal(value, average[key]), key
    assert any(not torch.equal(raw[k], average[k]) for k in raw)
    # The validation accuracy in the history is the average's.
    model = tiny_net()
    model.load_state_dict(average)
    views = Views(PREP, CPU, channels_last=False)
    val = synthetic_splits.val
    images = build_image_cache(
        val["path"].tolist(), size=PREP.resize_size, interpolation=PREP.interpolation
    )
    labels = torch.tensor(val["label_id"].to_numpy(), dtype=torch.long)
    _, correct, count = steps.evaluate(
        model, images, labels, torch.ones(len(val), dtype=torch.bool), views,
        tta=True, bf16=False, batch_size=64,
    )  # fmt: skip
    assert result.history[-1]["val_accuracy"] == pytest.approx(correct / count)


def test_resume_with_weight_average_reproduces_the_run(
    synthetic_splits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(epochs=3, ema_decay=0.8)
    reference = fit(synthetic_splits, cfg)
    original = training.evaluate
    calls = {"n": 0}

    def interrupt_after_epoch_two(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupt_after_epoch_two)
    checkpoint = tmp_path / "run.ckpt"
    assert fit(synthetic_splits, cfg, checkpoint_path=checkpoint).interrupted
    monkeypatch.undo()
    resumed = fit(synthetic_splits, cfg, model=tiny_net(seed=5), resume=checkpoint)
    for key, value in reference.final_state.items():
        assert torch.equal(value, resumed.final_state[key]), key
    # A run without the average cannot be resumed with one.
    with pytest.raises(InvalidParameterError, match=r"ema_decay \(checkpoint 0.8, now 0.0\)"):
        fit(synthetic_splits, config(epochs=3), resume=checkpoint)


def test_interrupt_in_the_head_stage_keeps_the_model_with_weight_average(
    synthetic_splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def train_then_interrupt(model: Any, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            model.head.bias.fill_(3.0)  # the head stage changed something, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_head", train_then_interrupt)
    result = fit(synthetic_splits, config(epochs=2, head_epochs=2, ema_decay=0.9))
    assert result.interrupted
    assert torch.equal(result.final_state["head.bias"], torch.full((4,), 3.0))


def test_keyboard_interrupt_keeps_the_best_weights_so_far(
    synthetic_splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Views.augmented
    batches = {"n": 0}

    def interrupt(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        batches["n"] += 1
        if batches["n"] == 8:  # in epoch 2 (5 batches of 16 per epoch)
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Views, "augmented", interrupt)
    result = fit(synthetic_splits, config(epochs=3))
    assert result.interrupted and [r["epoch"] for r in result.history] == [1]
    assert result.best_epoch == 1


def test_keyboard_interrupt_in_the_head_stage(
    synthetic_splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_head", interrupt)
    result = fit(synthetic_splits, config(epochs=3, head_epochs=2))
    assert result.interrupted and result.history == [] and result.image_passes == 0


def test_nan_loss_raises_a_clear_error(synthetic_splits: Any) -> None:
    model = tiny_net()
    with torch.no_grad():
        model.head.bias.fill_(math.nan)
    with pytest.raises(TrainingDivergedError) as error:
        fit(synthetic_splits, config(), model=model)
    message = str(error.value)
    assert "epoch 1, batch 1" in message and "lower lr" in message


def test_early_stopping_stops_when_accuracy_stalls(synthetic_splits: Any) -> None:
    result = fit(synthetic_splits, config(epochs=10, lr=1e-12, early_stopping=2))
    assert result.stopped_early
    assert [r["epoch"] for r in result.history] == [1, 2, 3]


def test_checkpoint_holds_everything_and_loads_safely(
    synthetic_splits: Any, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt" / "run.pt"
    cfg = config(epochs=1, head_epochs=1)
    fit(synthetic_splits, cfg, checkpoint_path=path)
    payload = safe_load(path, what="training checkpoint")
    assert payload["epoch"] == 1 and payload["config"] == cfg.config.to_dict()
    for key in ("model", "optimizer", "scheduler", "history", "best_state", "rng"):
        assert payload[key] is not None, key
    assert set(payload["rng"]) == {"torch", "numpy", "python"}


def test_resume_with_other_settings_is_refused(synthetic_splits: Any, tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    fit(synthetic_splits, config(epochs=1), checkpoint_path=path)
    with pytest.raises(InvalidParameterError, match=r"epochs \(checkpoint 1, now 2\)"):
        fit(synthetic_splits, config(epochs=2), resume=path)


@pytest.mark.parametrize(
    ("field", "value"), [("epoch", -5), ("epoch", 3), ("best_epoch", -1), ("image_passes", -1)]
)
def test_a_checkpoint_whose_counts_do_not_fit_its_run_is_damaged(
    synthetic_splits: Any, tmp_path: Path, field: str, value: int
) -> None:
    """A checkpoint that says epoch -5 would train epochs -4 to 2 without a word."""
    from clothingclf.checkpoint import atomic_save, safe_load

    path = tmp_path / "run.pt"
    fit(synthetic_splits, config(epochs=2), checkpoint_path=path)
    payload = safe_load(path)
    payload[field] = value
    atomic_save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match=r"damaged training checkpoint.*do not fit"):
        fit(synthetic_splits, config(epochs=2), resume=tmp_path / "edited.pt")


def test_progress_lines_go_to_stderr(
    synthetic_splits: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fit(synthetic_splits, config(epochs=2, progress=True))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and captured.out == ""
    assert "train loss" in lines[0] and "val acc" in lines[0] and "lr" in lines[0]
    assert "\r" not in captured.err  # stderr is not a terminal here: no bar
    fit(synthetic_splits, config(epochs=1, progress=False))
    assert capsys.readouterr().err == ""


def test_progress_lines_without_validation_say_so(
    synthetic_splits: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fit(synthetic_splits, config(epochs=1, progress=True), val=None)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert len(lines) == 1 and "no validation" in lines[0]
    assert "nan" not in lines[0] and "val acc" not in lines[0]


def test_empty_training_table_is_refused() -> None:
    empty = pd.DataFrame({"path": [], "label_id": []})
    with pytest.raises(InvalidParameterError, match="training table is empty"):
        train_model(
            tiny_net(),
            empty,
            None,
            class_weights=None,
            preprocessing=PREP,
            **config().kwargs,
            device=CPU,
        )


# ------------------------------------------------------------------ crash safety

_CHILD = textwrap.dedent(
    """
    import sys, time, pandas as pd, torch
    sys.path.insert(0, {tests!r})
    from clothingclf.training import loop as training
    from clothingclf.training.augment import Views
    from test_training import PREP, config, tiny_net

    original = Views.augmented
    def slow(self, *args, **kwargs):
        time.sleep(0.05)
        return original(self, *args, **kwargs)
    Views.augmented = slow
    train = pd.read_csv({train!r})
    training.train_model(tiny_net(), train, None, class_weights=None, preprocessing=PREP,
                         **config(epochs=12).kwargs, device=torch.device("cpu"),
                         checkpoint_path={checkpoint!r})
    """
)


def test_sigkill_mid_epoch_leaves_a_good_checkpoint(synthetic_splits: Any, tmp_path: Path) -> None:
    train_csv = tmp_path / "train.csv"
    synthetic_splits.train[["path", "label_id"]].to_csv(train_csv, index=False)
    checkpoint = tmp_path / "run.pt"
    code = _CHILD.format(
        tests=str(Path(__file__).parent), train=str(train_csv), checkpoint=str(checkpoint)
    )
    log = tmp_path / "child.log"
    with log.open("wb") as stderr:
        child = subprocess.Popen([sys.executable, "-c", code], stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists():
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        time.sleep(0.15)  # inside the next epoch (5 batches x 0.05 s)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    saved = safe_load(checkpoint, what="training checkpoint")
    assert 1 <= saved["epoch"] < 12
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp") and "run.pt" not in p]

    cfg = config(epochs=saved["epoch"] + 1)
    train = synthetic_splits.train[["path", "label_id"]]
    # Resuming needs the same settings; finish with one more epoch than the checkpoint has.
    with pytest.raises(InvalidParameterError, match="epochs"):
        train_model(
            tiny_net(), train, None, class_weights=None, preprocessing=PREP,
            **cfg.kwargs, device=CPU, resume=checkpoint,
        )  # fmt: skip
    resumed = train_model(
        tiny_net(), train, None, class_weights=None, preprocessing=PREP,
        **config(epochs=12).kwargs, device=CPU, resume=checkpoint,
    )  # fmt: skip
    assert [r["epoch"] for r in resumed.history] == list(range(1, 13))
