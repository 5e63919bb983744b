"""What a trained model gains without retraining: temperature scaling, logit adjustment by
the class prior, and other evaluation views, each chosen on validation, scored on test.

Labels the validation and test splits of ``prepare_dataset(DATA, seed=42)`` once per view
(uncalibrated probabilities, the model's own mirror pass), then computes every variant from
those probabilities:

* temperature scaling fitted on validation: the calibration error before and after;
* logit adjustment ``p * prior ** -tau`` (Menon et al., ICLR 2021), the prior being the
  training split's class shares, for several ``tau``;
* a bias per class (per-class thresholds): ``p * exp(b)``, ``b`` chosen class by class on
  validation to raise its balanced accuracy or its macro-F1;
* the evaluation view without a margin (resize to the crop size) and with a 16 px margin,
  alone and averaged with the model's own view.

Examples::

    python benchmarks/experiments/posthoc.py --data ../shared/data/clothing-dataset
    python benchmarks/experiments/posthoc.py --model runs/fast-seed0-final.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "clothing-dataset"
SPLITS = ("val", "test")


def _scores(probabilities: np.ndarray, truth: np.ndarray, classes: list[str]) -> str:
    from clothingclf.calibration import expected_calibration_error
    from clothingclf.metrics import evaluation_report

    report = evaluation_report(truth, probabilities.argmax(1), classes=classes)
    ece = expected_calibration_error(probabilities, truth)
    return (
        f"{report.accuracy:>8.4f}{report.balanced_accuracy:>8.4f}{report.macro_f1:>8.4f}{ece:>8.4f}"
    )


def _class_bias(
    probabilities: np.ndarray, truth: np.ndarray, objective: str, *, sweeps: int = 3
) -> np.ndarray:
    """Log-offsets per class, ``b`` in ``p * exp(b)``, chosen one class at a time from -2 to
    2 (coordinate ascent, smaller offsets first on ties) to raise ``objective`` on these
    probabilities: per-class thresholds in the form of a bias."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    def score(bias: np.ndarray) -> float:
        predicted = (log_p + bias).argmax(1)
        with warnings.catch_warnings():  # a class predicted but absent from this split
            warnings.simplefilter("ignore")
            if objective == "balanced accuracy":
                return float(balanced_accuracy_score(truth, predicted))
            return float(f1_score(truth, predicted, average="macro", zero_division=0))

    log_p = np.log(np.clip(probabilities, 1e-12, None))
    grid = sorted(np.linspace(-2.0, 2.0, 17), key=abs)
    bias = np.zeros(probabilities.shape[1])
    best = score(bias)
    for _ in range(sweeps):
        for column in range(len(bias)):
            for value in grid:
                trial = bias.copy()
                trial[column] = value
                if (got := score(trial)) > best:
                    best, bias = got, trial
    return bias


def _view(predictor: Any, margin: int | None) -> Any:
    """The predictor with every network's resize ``margin`` px above its crop (``None``:
    as trained)."""
    if margin is None:
        return predictor
    networks = tuple(
        (model, dataclasses.replace(prep, resize_size=prep.image_size + margin))
        for model, prep in predictor.networks
    )
    return dataclasses.replace(predictor, networks=networks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset root")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args(argv)
    if not (args.data / "images.csv").exists():
        print(f"no dataset at {args.data}; pass --data", file=sys.stderr)
        return 2

    from clothingclf import ClothingClassifier, prepare_dataset
    from clothingclf.calibration import Calibration

    splits = prepare_dataset(args.data, seed=42)
    clf = (
        ClothingClassifier.pretrained(device="cpu")
        if args.model is None
        else ClothingClassifier.load(args.model, device="cpu")
    )
    predictor = clf.predictor()
    classes = list(predictor.classes)
    truth = {name: predictor.label_ids(getattr(splits, name), name) for name in SPLITS}
    prior = splits.train["label"].value_counts().reindex(classes, fill_value=0).to_numpy()
    prior = np.maximum(prior, 1) / prior.sum()
    views: dict[str, dict[str, np.ndarray]] = {}
    for name, margin in (("as trained", None), ("no margin", 0), ("margin 16 px", 16)):
        run = _view(predictor, margin)
        views[name] = {
            split: run.probabilities(getattr(splits, split), calibrated=False) for split in SPLITS
        }
        print(f"labelled val and test with the view '{name}'", flush=True)
    base = views["as trained"]

    rows: list[tuple[str, dict[str, np.ndarray]]] = [("as trained (uncalibrated)", base)]
    fitted = Calibration.fit(base["val"], truth["val"])
    rows.append(
        (f"temperature {fitted.temperature:.3f}", {s: fitted.apply(base[s]) for s in SPLITS})
    )
    for tau in args.taus:
        adjusted = {}
        for split in SPLITS:
            scaled = base[split] * prior**-tau
            adjusted[split] = scaled / scaled.sum(1, keepdims=True)
        rows.append((f"logit adjustment tau {tau:g}", adjusted))
    for objective in ("balanced accuracy", "macro-F1"):
        bias = np.exp(_class_bias(base["val"], truth["val"], objective))
        biased = {s: base[s] * bias / (base[s] * bias).sum(1, keepdims=True) for s in SPLITS}
        rows.append((f"class bias for {objective}", biased))
    for name in ("no margin", "margin 16 px"):
        rows.append((name, views[name]))
        rows.append(
            (f"{name}, averaged with as trained",
             {s: (views[name][s] + base[s]) / 2 for s in SPLITS})
        )  # fmt: skip
    metrics = f"{'acc':>8}{'bal acc':>8}{'F1':>8}{'ECE':>8}"
    print(f"\n{'variant':<44}{'validation':<32}    test")
    print(f"{'':<40}    {metrics}    {metrics}")
    for label, probabilities in rows:
        print(
            f"{label:<40}    {_scores(probabilities['val'], truth['val'], classes)}"
            f"    {_scores(probabilities['test'], truth['test'], classes)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
