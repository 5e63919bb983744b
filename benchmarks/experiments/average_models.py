"""Experiment: accuracy of averaging the class probabilities of separately saved models.

Each model predicts the validation and test splits of ``bench_accuracy.py`` (the shared
data, ``prepare_dataset`` seed 42) through the library's own ``predict_proba``, with the
view and test-time augmentation its file records (a model of several networks averages
them itself). The table gives each model alone, then the average of all of them, with the
average's gain over the best single model measured in the same run. The ``fast`` recipe's
two networks, one per view, came out of this experiment; it stays for trying other
combinations (two seeds, two backbones, ...) before they become a recipe.

Usage::

    # one network on the centre square, one on the whole photo, saved separately
    python benchmarks/bench_accuracy.py --recipes fast \\
        --set extra_views=[] --save-models runs/square
    python benchmarks/bench_accuracy.py --recipes fast \\
        --set extra_views=[] --set aspect=1.3333333333333333 --image-size 192 \\
        --save-models runs/whole
    python benchmarks/experiments/average_models.py runs/square/fast-seed0-final.safetensors \\
        runs/whole/fast-seed0-final.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "clothing-dataset"
SPLITS = ("val", "test")


def _view(clf: Any) -> str:
    """The networks' input shapes, width x height."""
    return " + ".join(f"{p.input_shape[1]}x{p.input_shape[0]}" for _, p in clf.networks_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="saved model files (two or more)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset root")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "average.json"
    )
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give at least two model files")
    missing = [str(path) for path in args.models if not path.is_file()]
    if missing:
        parser.error(f"no model file at {', '.join(missing)}")
    if not (args.data / "images.csv").exists():
        print(f"no dataset at {args.data}; pass --data", file=sys.stderr)
        return 2

    from clothingclf import ClothingClassifier, prepare_dataset

    splits = prepare_dataset(args.data, seed=42)  # the splits bench_accuracy.py uses
    rows: list[dict[str, Any]] = []
    totals: dict[str, np.ndarray] = {}
    truth: dict[str, np.ndarray] = {}
    classes: list[str] | None = None
    for path in args.models:
        clf = ClothingClassifier.load(path)
        if classes is None:
            classes = list(clf.classes_)
            truth = {
                name: np.array([classes.index(label) for label in getattr(splits, name)["label"]])
                for name in SPLITS
            }
        elif list(clf.classes_) != classes:
            parser.error(f"{path} has other classes than {args.models[0]}")
        row: dict[str, Any] = {"model": str(path), "view": _view(clf)}
        for name in SPLITS:
            paths = getattr(splits, name)["path"].astype(str).tolist()
            # the networks' own probabilities, as a model of several networks averages them
            probabilities = clf.predict_proba(paths, calibrated=False)
            totals[name] = totals.get(name, 0) + probabilities
            row[name] = float((probabilities.argmax(1) == truth[name]).mean())
        rows.append(row)
        print(f"{row['view']:<18}{row['val']:>8.4f}{row['test']:>8.4f}  {path}", flush=True)
    average = {name: float((totals[name].argmax(1) == truth[name]).mean()) for name in SPLITS}
    best = {name: max(row[name] for row in rows) for name in SPLITS}

    print(f"\n{'model':<44}{'view':<18}{'val acc':>9}{'test acc':>9}")
    for row in rows:
        print(f"{row['model'][-43:]:<44}{row['view']:<18}{row['val']:>9.4f}{row['test']:>9.4f}")
    print(f"{'average of all':<44}{'':<18}{average['val']:>9.4f}{average['test']:>9.4f}")
    print(
        f"{'vs best single model':<44}{'':<18}"
        f"{average['val'] / best['val']:>8.3f}x{average['test'] / best['test']:>8.3f}x"
    )
    n_val, n_test = len(truth["val"]), len(truth["test"])
    print(f"({n_val} validation and {n_test} test photos)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"models": rows, "average": average}, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
