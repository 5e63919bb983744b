"""The ``predict`` sub-command: label image files with the bundled model or a saved one.
An image that cannot be read is reported on stderr and the rest are still labelled."""

from __future__ import annotations

import argparse
import sys

from .shared import _POSITIVE, _add_model_options


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        help="label images (with the bundled model, or --model FILE)",
        description="Print the most probable label and its probability for each IMAGE, with "
        "the clothing model bundled in the package, or the model file given by --model. An "
        "image that cannot be read gets an error line on stderr; the others are still "
        "labelled, and the exit status is 1.",
    )
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument(
        "--model",
        metavar="FILE",
        help="model file written by train or save() (default: the bundled model)",
    )
    p.add_argument("--top-k", type=_POSITIVE, default=1, metavar="K", help="labels per image (1)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.add_argument("--batch-size", type=_POSITIVE, default=32, help="images per forward pass (32)")
    _add_model_options(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import json

    from ..classifier import ClothingClassifier, Prediction
    from ..exceptions import ImageNotFoundError, InvalidImageError

    if args.model is None:
        clf = ClothingClassifier.pretrained(device=args.device)
    else:
        clf = ClothingClassifier.load(args.model, device=args.device)
    results: list[dict[str, object]] = []
    failed = 0
    size = args.batch_size
    for start in range(0, len(args.images), size):
        chunk = [str(p) for p in args.images[start : start + size]]
        try:
            pairs: list[tuple[str, Prediction | Exception]] = list(
                zip(chunk, clf.predict_top(chunk, k=args.top_k), strict=True)
            )
        except (InvalidImageError, ImageNotFoundError):
            pairs = []
            for path in chunk:  # find the bad ones; label the rest
                try:
                    pairs.append((path, clf.predict_top(path, k=args.top_k)))
                except (InvalidImageError, ImageNotFoundError) as error:
                    pairs.append((path, error))
        for path, outcome in pairs:
            if isinstance(outcome, Exception):
                failed += 1
                print(f"clothingclf predict: {path}: error: {outcome}", file=sys.stderr)
                continue
            results.append({"image": path, **outcome.to_dict()})
            if not args.json:
                ranked = "  ".join(f"{label} {score:.3f}" for label, score in outcome.top_k)
                print(f"{path}\t{ranked}")
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"clothingclf predict: {failed} of {len(args.images)} images failed", file=sys.stderr)
    return 1 if failed else 0
