"""The bundled model against the pair it was distilled from, side by side on the test split.

For each model file (by default the bundled ``clothing18-lite0`` and
``clothing18-lite0-pair``), on the 465 test photos of ``prepare_dataset(DATA, seed=42)``
(never trained or tuned on):

* top-1, balanced accuracy, macro-F1 and the expected calibration error (15 bins) of the
  probabilities ``predict_proba`` returns (calibrated on the validation split);
* network passes per photo (networks x 2 with the mirror pass);
* photos/s of ``predict`` end to end on ``--files`` test photos (paths in, labels out,
  ``engine="auto"``), timed in alternating rounds in this run (the median kept), and the
  ratio to the first model given after ``--baseline`` (the pair);
* what the fit cost: image passes through the networks (the teacher's passes over the
  training photos included) and minutes, as the model's card records them.

For a model trained with ``logit_adjustment``, the same scores at each ``balance`` from 0
(``"accuracy"``) to 1 (``"balanced"``) on the validation split and on the test split, and on
test with the mirror pass too: the whole trade between overall accuracy and every class.

    python benchmarks/bench_bundled.py --data ../shared/data/clothing-dataset
    python benchmarks/bench_bundled.py --models new.safetensors --baseline old.safetensors
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clothing-dataset"
_BALANCES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _scores(probabilities: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, float]:
    from clothingclf.calibration import expected_calibration_error
    from clothingclf.metrics import evaluation_report

    report = evaluation_report(
        truth, probabilities.argmax(1), classes=classes, probabilities=probabilities
    )
    return {
        "accuracy": float(report.accuracy),
        "balanced_accuracy": float(report.balanced_accuracy),
        "macro_f1": float(report.macro_f1),
        "ece": expected_calibration_error(probabilities, truth),
    }


def _photos_per_second(clfs: dict[str, Any], paths: list[str], rounds: int) -> dict[str, float]:
    """Median photos/s of ``predict(paths)`` per model, the models alternating each round
    (a first untimed call builds what ``auto`` builds)."""
    seconds: dict[str, list[float]] = {name: [] for name in clfs}
    for clf in clfs.values():
        clf.predict(paths[:8])
        clf.predict(paths)
    for _ in range(rounds):
        for name, clf in clfs.items():
            started = time.perf_counter()
            clf.predict(paths)
            seconds[name].append(time.perf_counter() - started)
    return {name: len(paths) / statistics.median(values) for name, values in seconds.items()}


def _fit_cost(clf: Any) -> dict[str, Any]:
    """Image passes and minutes of the fit that made ``clf`` (its card and history)."""
    card = clf.model_card_ or {}
    history = clf.history_ or []
    by_network: dict[float, float] = {}
    for row in history:
        network = row.get("network", 0.0)
        by_network[network] = max(by_network.get(network, 0.0), row.get("image_passes", 0.0))
    passes = sum(by_network.values())
    teacher = card.get("fit", {}).get("teacher_image_passes", 0)
    minutes = card.get("fit", {}).get("minutes", card.get("fit_minutes"))
    return {"fit_passes": int(passes + teacher), "teacher_passes": teacher, "fit_minutes": minutes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", nargs="+", default=None, help="model files (bundled)")
    parser.add_argument("--baseline", default=None, help="model file of the ratio (the pair)")
    parser.add_argument("--files", type=int, default=128, help="photos timed (128)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model (3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_bundled.json")
    args = parser.parse_args(argv)

    from clothingclf import ClothingClassifier, prepare_dataset
    from clothingclf.pretrained import DEFAULT_MODEL, pretrained_file

    baseline = args.baseline or str(pretrained_file(f"{DEFAULT_MODEL}-pair"))
    files = args.models or [str(pretrained_file(DEFAULT_MODEL))]
    splits = prepare_dataset(args.data, seed=42)
    names = {Path(file).stem: file for file in [*files, baseline]}
    clfs = {name: ClothingClassifier.load(file, device="cpu") for name, file in names.items()}
    rows: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, clf in clfs.items():
        predictor = clf.predictor()
        truth = predictor.label_ids(splits.test, "test")
        row: dict[str, Any] = _scores(clf.predict_proba(splits.test), truth, clf.classes_)
        row["passes_per_photo"] = len(predictor.networks) * (2 if predictor.tta else 1)
        row.update(_fit_cost(clf))
        rows[name] = row
        if predictor.calibration.adjustable:
            curve = []
            for split, tta in (("val", False), ("test", False), ("test", True)):
                table = getattr(splits, split)
                labels = predictor.label_ids(table, split)
                raw = predictor.probabilities(table, calibrated=False, tta=tta)
                for balance in _BALANCES:
                    scored = _scores(
                        predictor.calibration.at(balance).apply(raw), labels, clf.classes_
                    )
                    curve.append({"split": split, "balance": balance, "mirror_pass": tta, **scored})
            curves[name] = curve
    paths = splits.test["path"].astype(str).tolist()[: args.files]
    speeds = _photos_per_second(clfs, paths, args.rounds)
    base_name = Path(baseline).stem
    print(f"test split: {len(splits.test)} photos; speed: predict(list of {len(paths)} paths)")
    header = (
        f"{'model':<28}{'top-1':>7}{'bal acc':>8}{'macro F1':>9}{'ECE':>7}{'passes':>7}"
        f"{'photos/s':>9}{'ratio':>7}{'fit passes':>11}{'fit min':>8}"
    )
    print(header)
    for name, row in rows.items():
        row["photos_per_s"] = speeds[name]
        row["ratio"] = speeds[name] / speeds[base_name]
        minutes = f"{row['fit_minutes']:.0f}" if row["fit_minutes"] is not None else "-"
        print(
            f"{name:<28}{row['accuracy']:>7.4f}{row['balanced_accuracy']:>8.4f}"
            f"{row['macro_f1']:>9.4f}{row['ece']:>7.4f}{row['passes_per_photo']:>7}"
            f"{row['photos_per_s']:>9.1f}{row['ratio']:>6.2f}x{row['fit_passes']:>11}{minutes:>8}"
        )
    print("fit min '-': the card does not say (the pair's fit: RESULTS.md, 2026-11-29)")
    for name, curve in curves.items():
        print(f"\n{name}: balance from 0 (accuracy) to 1 (balanced)")
        print(
            f"{'split':>6}{'balance':>8}{'mirror':>8}{'top-1':>8}{'bal acc':>9}{'macro F1':>9}"
            f"{'ECE':>8}"
        )
        for point in curve:
            print(
                f"{point['split']:>6}{point['balance']:>8.2f}"
                f"{'yes' if point['mirror_pass'] else 'no':>8}"
                f"{point['accuracy']:>8.4f}{point['balanced_accuracy']:>9.4f}"
                f"{point['macro_f1']:>9.4f}{point['ece']:>8.4f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"models": rows, "balance_curves": curves}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
