"""clothingclf.settings: one declaration per setting, and everything derived from it."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch

from _nets import tiny_features
from clothingclf import ClothingClassifier, DatasetSplits
from clothingclf.exceptions import InvalidParameterError
from clothingclf.settings import (
    RECIPE_NAMES,
    RECIPES,
    RunOptions,
    Setting,
    TrainConfig,
    all_settings,
    implied_values,
    resolve_config,
    resolve_options,
    resume_settings,
    settings_table,
)

SETTINGS = all_settings()


def _train_parser() -> argparse.ArgumentParser:
    from clothingclf.cli import _build_parser

    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_every_field_is_declared_once() -> None:
    learned = [f.name for f in fields(TrainConfig) if f.name != "recipe"]
    runtime = [f.name for f in fields(RunOptions)]
    assert [s.name for s in SETTINGS] == learned + runtime
    assert not set(learned) & set(runtime)
    assert all(set(RECIPES[recipe]) == set(learned) for recipe in RECIPES)


@pytest.mark.parametrize("declared", SETTINGS, ids=[s.name for s in SETTINGS])
def test_each_setting_reaches_the_estimator_the_cli_and_the_docs(declared: object) -> None:
    from clothingclf.settings import Setting

    assert isinstance(declared, Setting)
    # A parameter of the estimator, None meaning the recipe's (or the default) value.
    assert ClothingClassifier().get_params()[declared.name] is None
    # A flag of `clothingclf train`, defaulting to None (the recipe's value).
    train = _train_parser()
    action = next(a for a in train._actions if a.dest == declared.name)
    assert declared.flag in action.option_strings and action.default is None
    # A row of the docs' settings table, with its help and its values.
    assert f"``{declared.name}``" in settings_table() and declared.kind.expected in settings_table()
    # Validated with a message that names it.
    resolve = resolve_options if declared.runtime else lambda **o: resolve_config("seed", **o)
    with pytest.raises(InvalidParameterError, match=rf"^{declared.name} must be "):
        resolve(**{declared.name: object()})


def test_run_options_are_never_in_the_saved_settings() -> None:
    saved = resolve_config("fast").to_dict()
    assert not {s.name for s in SETTINGS if s.runtime} & set(saved)
    assert TrainConfig.from_dict({**saved, "num_workers": 3, "amp": "off"}) == resolve_config(
        "fast"
    )


def test_none_is_the_recipes_value_and_values_are_normalised() -> None:
    config = resolve_config("fast", epochs=None, size_schedule=[0.5, 1], lr=1)
    assert config.epochs == RECIPES["fast"]["epochs"]
    assert config.size_schedule == (0.5, 1.0) and isinstance(config.lr, float)
    assert resolve_options(cache_dir=None).cache_dir is None


def test_a_flag_parses_into_the_estimators_parameter() -> None:
    args = _train_parser().parse_args(
        ["data", "-o", "m.safetensors", "--color-jitter", "0.3", "--no-flip", "--extra-views"]
    )
    clf = ClothingClassifier(**{s.name: getattr(args, s.name) for s in SETTINGS})
    assert clf.color_jitter == 0.3 and clf.flip is False and clf.extra_views == []
    assert clf.epochs is None  # not given: the recipe's


# ------------------------------------------------------------- what files need to know


def test_resume_fields_are_the_settings_declared_to_be_resumed() -> None:
    from clothingclf.checkpoint import RESUME_FIELDS

    declared = [s.name for s in SETTINGS if s.resume]
    assert list(RESUME_FIELDS) == declared == list(resume_settings())
    assert not any(s.resume for s in SETTINGS if s.runtime)
    assert "head_batch_size" in RESUME_FIELDS and "keep" not in RESUME_FIELDS


@pytest.mark.parametrize("declared", SETTINGS, ids=[s.name for s in SETTINGS])
def test_what_older_files_imply_is_a_value_of_the_setting(declared: Setting) -> None:
    assert declared.added is None or re.fullmatch(r"0\.[23]", declared.added)
    if declared.name in implied_values():
        assert declared.added is not None and not declared.runtime
        stored = implied_values()[declared.name]
        assert declared.check(stored) == declared.check(declared.implied)
    elif declared.added is None:
        assert repr(declared.implied) == "unknown"  # nothing older to imply anything for


def test_an_old_checkpoint_without_the_added_settings_resumes_as_before() -> None:
    from clothingclf.checkpoint import check_resume_settings

    added = [s.name for s in SETTINGS if s.added is not None and not s.runtime]
    for recipe in RECIPES:
        current = resolve_config(recipe).to_dict()
        old = {k: v for k, v in current.items() if k not in added}
        check_resume_settings(old, current, "old.ckpt")  # the recipe's values: as it ran
        # Its image size it does not tell: not compared.
        check_resume_settings(old, {**current, "image_size": 96}, "old.ckpt")
        for name, now in [("ema_decay", 0.5), ("head_batch_size", 32), ("distill_weight", 0.5)]:
            then = implied_values()[name]
            with pytest.raises(InvalidParameterError, match=rf"{name} \(checkpoint {then}, "):
                check_resume_settings(old, {**current, name: now}, "old.ckpt")


def test_a_checkpoint_written_before_the_head_settings_resumes(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    from _nets import tiny_classifier
    from clothingclf.checkpoint import atomic_save, safe_load

    def make(**params: Any) -> ClothingClassifier:
        torch.manual_seed(0)
        return tiny_classifier(
            backbone=tiny_features(), head_epochs=1, epochs=1, keep="final", **params
        )

    whole = make().fit(synthetic_splits, checkpoint=tmp_path / "new.ckpt")
    payload = safe_load(tmp_path / "new.ckpt")
    for name in ("head_weight_decay", "head_batch_size"):
        del payload["config"][name]
    atomic_save(payload, tmp_path / "old.ckpt")
    resumed = make().fit(synthetic_splits, resume=tmp_path / "old.ckpt")
    for key, value in whole.model_.state_dict().items():
        assert torch.equal(resumed.model_.state_dict()[key], value), key
    with pytest.raises(InvalidParameterError, match=r"head_batch_size \(checkpoint 64, now 16\)"):
        make(head_batch_size=16).fit(synthetic_splits, resume=tmp_path / "old.ckpt")


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_an_old_model_file_loads_with_what_its_fit_ran_with(
    recipe: str, tiny_model_file: Path, tmp_path: Path
) -> None:
    from clothingclf.checkpoint import atomic_save, read_fitted_model, safe_load

    payload = safe_load(tiny_model_file)
    payload["config"]["recipe"] = recipe
    for s in SETTINGS:
        if s.added is not None and not s.runtime:
            del payload["config"][s.name]
    atomic_save(payload, tmp_path / "old.safetensors")
    config = read_fitted_model(tmp_path / "old.safetensors").config
    # One network, every epoch validated, the features of later releases off, the head
    # stage as it was; size and aspect from the file's preprocessing, freeze_bn the recipe's.
    assert (config.extra_views, config.val_every) == ((), 1)
    assert (config.ema_decay, config.mixup_alpha, config.cutmix_alpha) == (0.0, 0.0, 0.0)
    assert (config.color_jitter, config.logit_adjustment) == (0.0, 0.0)
    assert (config.distill_weight, config.distill_temperature) == (0.7, 2.0)
    assert (config.head_weight_decay, config.head_batch_size) == (1e-4, 64)
    assert (config.image_size, config.aspect) == (32, 1.0)
    assert config.freeze_bn is RECIPES[recipe]["freeze_bn"]
    assert config.epochs == 2  # what the file has stays


def test_the_head_stage_flags_reach_the_config_and_the_head_stage() -> None:
    args = _train_parser().parse_args(
        ["data", "-o", "m.safetensors", "--head-weight-decay", "0.01", "--head-batch-size", "8"]
    )
    clf = ClothingClassifier(**{s.name: getattr(args, s.name) for s in SETTINGS})
    assert (clf.head_weight_decay, clf.head_batch_size) == (0.01, 8)
    learned = {s.name: getattr(args, s.name) for s in SETTINGS if not s.runtime}
    config = resolve_config("seed", **learned)
    assert (config.head_weight_decay, config.head_batch_size) == (0.01, 8)
    assert resolve_config("fast").head_batch_size == 64  # not given: the recipe's
    with pytest.raises(SystemExit):
        _train_parser().parse_args(["data", "-o", "m.safetensors", "--head-batch-size", "0"])


def test_the_head_stage_steps_by_head_batch_size_and_decays_by_head_weight_decay(
    synthetic_splits: DatasetSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _nets import resnet_classifier

    made: list[tuple[float, int]] = []  # (weight decay, steps) of each head stage
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR  # the head stage's schedule alone

    def scheduler(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        made.append((optimizer.param_groups[0]["weight_decay"], steps))
        return cosine(optimizer, steps)

    monkeypatch.setattr(torch.optim.lr_scheduler, "CosineAnnealingLR", scheduler)
    for batch, decay in [(16, 0.01), (None, None)]:
        resnet_classifier(head_epochs=2, head_batch_size=batch, head_weight_decay=decay).fit(
            synthetic_splits
        )
    train = len(synthetic_splits.train)  # 77 photos
    assert made == [(0.01, 2 * math.ceil(train / 16)), (1e-4, 2 * math.ceil(train / 64))]


def test_logit_adjustment_is_bounded_as_the_calibration_that_uses_it() -> None:
    from clothingclf.calibration import Calibration

    largest = resolve_config("seed", logit_adjustment=10).logit_adjustment
    assert Calibration(prior=(0.5, 0.5), logit_adjustment=largest).logit_adjustment == 10.0
    message = r"^logit_adjustment must be a number from 0 to 10 \(0: off\); found 10.5\.$"
    with pytest.raises(InvalidParameterError, match=message):
        resolve_config("seed", logit_adjustment=10.5)  # refused before a fit, not after it
    with pytest.raises(InvalidParameterError, match="logit_adjustment"):
        Calibration(prior=(0.5, 0.5), logit_adjustment=10.5)
