"""clothingclf.settings: one declaration per setting, and everything derived from it."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from clothingclf import ClothingClassifier
from clothingclf.exceptions import InvalidParameterError
from clothingclf.settings import (
    RECIPES,
    RunOptions,
    TrainConfig,
    all_settings,
    resolve_config,
    resolve_options,
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
