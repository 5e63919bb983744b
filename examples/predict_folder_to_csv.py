"""Label every photo in a folder with a saved classifier and write the results as CSV.

One row per image: the file, the most probable label and its probability, and the next
most probable labels. Images that cannot be read get an ``error`` and no label; the others
are still labelled::

    python examples/predict_folder_to_csv.py model.safetensors photos/ --output predictions.csv
    python examples/predict_folder_to_csv.py model.safetensors photos/ -o out.csv \\
        --recursive --top-k 5
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from clothingclf import ClothingClassifier, Prediction
from clothingclf.exceptions import ImageNotFoundError, InvalidImageError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file saved by ClothingClassifier.save")
    parser.add_argument("folder", help="folder of photos")
    parser.add_argument("-o", "--output", required=True, help="CSV file to write")
    parser.add_argument("--top-k", type=int, default=3, help="labels per image (3)")
    parser.add_argument("--recursive", action="store_true", help="look in sub-folders too")
    parser.add_argument("--batch-size", type=int, default=32, help="images per pass (32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    return parser.parse_args(argv)


def find_images(folder: Path, *, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in EXTENSIONS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        sys.exit(f"{folder} is not a folder")
    clf = ClothingClassifier.load(args.model, device=args.device)
    images = find_images(folder, recursive=args.recursive)
    k = max(1, min(args.top_k, len(clf.classes_)))
    rows: list[dict[str, object]] = []
    for start in range(0, len(images), args.batch_size):
        chunk = images[start : start + args.batch_size]
        try:
            outcomes: list[Prediction | Exception] = list(
                clf.predict_top(chunk, k=k, batch_size=args.batch_size)
            )
        except (InvalidImageError, ImageNotFoundError):
            outcomes = []
            for path in chunk:  # one bad file: label the others one by one
                try:
                    outcomes.append(clf.predict_top(path, k=k))
                except (InvalidImageError, ImageNotFoundError) as error:
                    outcomes.append(error)
        for path, outcome in zip(chunk, outcomes, strict=True):
            row: dict[str, object] = {"file": str(path.relative_to(folder))}
            if isinstance(outcome, Exception):
                row["error"] = str(outcome)
            else:
                row["label"] = outcome.label
                row["score"] = f"{outcome.score:.4f}"
                for rank, (label, score) in enumerate(outcome.top_k[1:], start=2):
                    row[f"label_{rank}"] = label
                    row[f"score_{rank}"] = f"{score:.4f}"
            rows.append(row)

    columns = ["file", "label", "score"]
    for rank in range(2, k + 1):
        columns += [f"label_{rank}", f"score_{rank}"]
    columns.append("error")
    with open(args.output, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    failed = sum(1 for r in rows if "error" in r)
    print(f"labelled {len(rows) - failed} of {len(rows)} images -> {args.output}")
    if failed:
        print(f"{failed} images could not be read (see the error column)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
