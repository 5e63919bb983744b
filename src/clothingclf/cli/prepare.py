"""The ``prepare`` sub-command: verify a dataset and split it into train/val/test."""

from __future__ import annotations

import argparse

from .shared import POSITIVE


def add_prepare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prepare",
        help="verify a clothing dataset and split it into train/val/test",
        description="Read ROOT/images.csv and ROOT/images/, drop excluded labels, missing and "
        "undecodable files, split stratified and reproducibly, and print the counts per "
        "class and split with a report of what was dropped.",
    )
    p.add_argument("root", metavar="ROOT", help="folder with images.csv and images/")
    p.add_argument("-o", "--output", metavar="DIR", help="write train/val/test.csv and reports")
    p.add_argument(
        "--exclude",
        metavar="LABEL",
        action="append",
        help="label to remove (repeatable; default: Skip and 'Not sure')",
    )
    p.add_argument("--keep-all", action="store_true", help="exclude no label")
    p.add_argument("--test-size", type=float, default=0.1, help="fraction of rows (0.1)")
    p.add_argument("--val-size", type=float, default=0.1, help="fraction of train+val (0.1)")
    p.add_argument("--no-stratify", action="store_true", help="ignore classes when splitting")
    p.add_argument("--group-by", metavar="COLUMN", help="keep each value in one split")
    p.add_argument("--seed", type=int, default=42, help="seed of the shuffles (42)")
    p.add_argument("--no-verify", action="store_true", help="do not decode every image")
    p.add_argument("--images-dir", metavar="NAME", help="images folder name inside ROOT")
    p.add_argument("--workers", type=POSITIVE, help="threads that verify images (all cores)")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    import warnings

    from ..data import prepare_dataset

    exclude: tuple[str, ...] = () if args.keep_all else tuple(args.exclude or ("Skip", "Not sure"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the report's summary repeats them
        splits = prepare_dataset(
            args.root,
            exclude=exclude,
            test_size=args.test_size,
            val_size=args.val_size,
            stratify=not args.no_stratify,
            group_by=args.group_by,
            seed=args.seed,
            verify_images=not args.no_verify,
            output_dir=args.output,
            images_dir=args.images_dir,
            workers=args.workers,
        )
    print(splits.table())
    print()
    print(splits.report.summary())
    if args.output:
        print(f"\nWrote train.csv, val.csv, test.csv, report.json, report.txt to {args.output}")
    return 0
