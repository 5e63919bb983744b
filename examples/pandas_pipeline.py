"""Use the classifier inside a pandas pipeline: label a catalogue, find rows to review.

A shop's catalogue is a table with one row per photo. This script reads the dataset's
``images.csv``, adds the predicted label, its probability and one probability column per
class with :meth:`pandas.DataFrame.pipe`, compares predictions with the labels already in
the table, and writes the rows a person should look at (the model disagrees with the
label, or is unsure) to a CSV file::

    python examples/pandas_pipeline.py model.safetensors path/to/clothing-dataset \\
        --output review.csv

``ClothingClassifier.predict`` and ``predict_proba`` accept a DataFrame with a ``path``
column directly, so the classifier drops into ``.pipe``/``.assign`` chains.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from clothingclf import ClothingClassifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file saved by ClothingClassifier.save")
    parser.add_argument("data", help="dataset folder with images.csv and images/")
    parser.add_argument("-o", "--output", required=True, help="CSV of rows to review")
    parser.add_argument(
        "--threshold", type=float, default=0.6, help="review predictions below this (0.6)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per pass (64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    return parser.parse_args(argv)


def with_paths(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Add the ``path`` column and drop rows whose image file is missing."""
    # The GitHub release keeps the photos in images/, the Kaggle one in images_compressed/.
    names = ("images", "images_compressed", "images_original")
    folder = next((root / n for n in names if (root / n).is_dir()), root / "images")
    paths = [folder / f"{image}.jpg" for image in table["image"]]
    return table.assign(path=[str(p) for p in paths]).loc[[p.is_file() for p in paths]]


def add_predictions(
    table: pd.DataFrame, clf: ClothingClassifier, *, batch_size: int = 64
) -> pd.DataFrame:
    """Add ``predicted``, ``score`` and ``p_<class>`` columns (one per class)."""
    probabilities = pd.DataFrame(
        clf.predict_proba(table, batch_size=batch_size),
        index=table.index,
        columns=clf.classes_,
    )
    return table.assign(
        predicted=probabilities.idxmax(axis=1), score=probabilities.max(axis=1)
    ).join(probabilities.add_prefix("p_"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = Path(args.data)
    clf = ClothingClassifier.load(args.model, device=args.device)

    catalogue = (
        pd.read_csv(root / "images.csv")
        .pipe(with_paths, root)
        .pipe(add_predictions, clf, batch_size=args.batch_size)
        .assign(
            known=lambda d: d["label"].isin(clf.classes_),
            agrees=lambda d: d["label"] == d["predicted"],
        )
    )

    known = catalogue[catalogue["known"]]
    print(f"{len(catalogue)} photos, {len(known)} with a label the model knows")
    print(f"agreement with the existing labels: {known['agrees'].mean():.1%}\n")
    print("per label: photos, agreement, mean probability of the prediction")
    summary = known.groupby("label").agg(
        photos=("image", "size"), agreement=("agrees", "mean"), mean_score=("score", "mean")
    )
    print(summary.sort_values("agreement").round(3).to_string())
    print("\nmost frequent confusions (label -> predicted):")
    confusions = (
        known[~known["agrees"]].groupby(["label", "predicted"]).size().nlargest(5).to_string()
    )
    print(confusions if not known["agrees"].all() else "none")

    review = catalogue[~catalogue["agrees"] | (catalogue["score"] < args.threshold)]
    columns = ["image", "label", "predicted", "score", "path"]
    review.sort_values("score", ascending=False)[columns].to_csv(args.output, index=False)
    print(f"\n{len(review)} rows to review -> {args.output}")


if __name__ == "__main__":
    main()
