"""The ``clothingclf`` command line: a thin shell over the public API.

Each sub-command has an ``_add_<name>`` function that declares its arguments and a
``_run_<name>`` function that calls the library and prints the result. Errors that
clothingclf raises on purpose are printed as one line on stderr with exit status 2;
nothing here holds logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .exceptions import ClothingClfError

__all__ = ["main"]

_Runner = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clothingclf",
        description="Classify clothing photos, prepare datasets, and analyse CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"clothingclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


# Each entry adds one sub-command parser and sets ``func`` to its runner.
_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _add_prepare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--workers", type=int, help="threads that verify images (all cores)")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    import warnings

    from .data import prepare_dataset

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


_COMMANDS.append(_add_prepare)


def _add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        help="count the FLOPs and compute the receptive field of a network",
        description="Trace MODEL (a torchvision model name such as resnet18, or a saved "
        "classifier file) on the meta device and print its parameters, multiply-accumulates, "
        "FLOPs (2 x MACs) and the receptive field of its last spatial feature map.",
    )
    p.add_argument("model", metavar="MODEL", help="torchvision model name or saved model file")
    p.add_argument(
        "--input-size", type=int, help="side of the square input (224, or the file's size)"
    )
    p.add_argument("--num-classes", type=int, help="classes of a torchvision model's head")
    p.add_argument("--per-layer", action="store_true", help="print one row per operation")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path
    from typing import Any

    from . import analysis

    model: Any
    size = args.input_size
    if Path(args.model).is_file():
        from .classifier import ClothingClassifier

        clf = ClothingClassifier.load(args.model, device="cpu")
        model = clf.model_
        size = size or clf.preprocessing_.image_size
        name = Path(args.model).name
    else:
        kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
        model = analysis.meta_model(args.model, **kwargs)
        name = args.model
    size = size or 224
    flops = analysis.count_flops(model, input_size=(3, size, size))
    rf = analysis.receptive_field(model, input_size=(3, size, size))
    if args.json:
        payload = flops.to_dict()
        print(
            json.dumps(
                {
                    "model": name,
                    "input_size": [3, size, size],
                    "params": flops.params,
                    "total_macs": flops.total_macs,
                    "total_flops": flops.total_flops,
                    "other_ops": flops.other_ops,
                    "receptive_field": rf.to_dict(),
                    "layers": payload["layers"],
                },
                indent=2,
            )
        )
        return 0
    print(flops.summary().replace(flops.model, name, 1))
    print(f"  receptive field:   {rf.describe()}")
    for line in rf.misalignments:
        print(f"  misaligned: {line}")
    if args.per_layer:
        print()
        print(flops.table())
        print()
        print(rf.table())
    return 0


_COMMANDS.append(_add_analyze)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 2 for a usage error or a clothingclf error,
        130 when interrupted.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    func: _Runner | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return func(args)
    except ClothingClfError as error:
        print(f"clothingclf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clothingclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
