"""The ``train`` and ``evaluate`` sub-commands: fit a classifier on a dataset and save it,
or score a saved one on a split. ``train``'s flags come from the settings' declarations."""

from __future__ import annotations

import argparse

from .flags import add_setting_flag
from .shared import add_model_options, check_output_file, load_data


def add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a classifier on a dataset and save it",
        description="Train a ClothingClassifier on DATA (a dataset root with images.csv, "
        "which is prepared with the default options, or a folder written by 'clothingclf "
        "prepare'), print its evaluation on the test split, and save it to --output. "
        "Options left out take the recipe's value.",
    )
    p.add_argument("data", metavar="DATA", help="dataset root or prepared splits folder")
    p.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="model file to write (.safetensors)"
    )
    p.add_argument("--recipe", choices=("fast", "seed"), default="fast", help="(fast)")
    p.add_argument(
        "--backbone",
        help="efficientnet_lite0/1/2, a torchvision name or timm/<name> (the recipe's: fast "
        "efficientnet_lite0, seed resnet18)",
    )
    p.add_argument(
        "--weights",
        default="DEFAULT",
        help="DEFAULT, a weights name, 'none' (random), or a state_dict file",
    )
    from ..settings import all_settings

    for declared in all_settings():  # one flag per setting, from its declaration
        add_setting_flag(p, declared)
    p.add_argument(
        "--teacher",
        metavar="MODEL",
        help="distil this model file ('bundled' or 'bundled-pair': the models in the "
        "package) into the new one (see --distill-weight, --distill-temperature)",
    )
    p.add_argument("--checkpoint", metavar="FILE", help="write a checkpoint after every epoch")
    p.add_argument("--resume", metavar="FILE", help="continue from such a checkpoint")
    add_model_options(p)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from ..classifier import ClothingClassifier

    check_output_file(args.output, "--output")
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
    teacher = _teacher(args.teacher)
    splits = load_data(args.data)
    print(
        f"{len(splits.train)} train, {len(splits.val)} val, {len(splits.test)} test images; "
        f"{len(splits.classes)} classes"
    )
    from ..settings import all_settings

    weights = None if str(args.weights).lower() == "none" else args.weights
    clf = ClothingClassifier(
        backbone=args.backbone,
        weights=weights,
        recipe=args.recipe,
        device=args.device,
        **{s.name: getattr(args, s.name) for s in all_settings()},
    )
    clf.fit(splits, teacher=teacher, resume=args.resume, checkpoint=args.checkpoint)
    if clf.interrupted_:
        print(f"Interrupted: keeping the {clf.kept_} weights so far (epoch {clf.best_epoch_}).")
    if len(splits.test):
        print()
        print(clf.evaluate(splits.test))
    clf.save(args.output)
    accuracy = clf.best_val_accuracy_
    detail = f", val accuracy {accuracy:.4f}" if accuracy is not None else ""
    print(f"\nSaved {args.output} ({clf.kept_} weights; best epoch {clf.best_epoch_}{detail})")
    return 0


def _teacher(name: str | None) -> str | None:
    """The model file of ``--teacher``: a path, or a bundled model by its short name."""
    from ..pretrained import DEFAULT_MODEL, pretrained_file

    bundled = {"bundled": DEFAULT_MODEL, "bundled-pair": f"{DEFAULT_MODEL}-pair"}
    return str(pretrained_file(bundled[name])) if name in bundled else name


def add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved classifier on a dataset split",
        description="Load MODEL and print accuracy, balanced accuracy, macro F1, per-class "
        "scores and the confusion matrix on one split of DATA (a dataset root, prepared with "
        "the default options, or a folder written by 'clothingclf prepare').",
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("data", metavar="DATA", help="dataset root or prepared splits folder")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="(test)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    add_model_options(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from ..classifier import ClothingClassifier

    clf = ClothingClassifier.load(args.model, device=args.device)
    splits = load_data(args.data)
    report = clf.evaluate(getattr(splits, args.split))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0
