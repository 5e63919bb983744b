"""The ``analyze`` sub-command: parameters, FLOPs and receptive field of a network."""

from __future__ import annotations

import argparse
from typing import Any

from .flags import int_in
from .shared import POSITIVE


def add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        help="count the FLOPs and compute the receptive field of a network",
        description="Trace MODEL (a torchvision model name such as resnet18, or a saved "
        "classifier file) on the meta device and print its parameters, multiply-accumulates, "
        "FLOPs (2 x MACs) and the receptive field of its last spatial feature map.",
    )
    p.add_argument("model", metavar="MODEL", help="torchvision model name or saved model file")
    p.add_argument(
        "--input-size",
        type=int_in(1, 65536),
        help="side of the square input (224, or the file's size)",
    )
    p.add_argument(
        "--num-classes", type=int_in(1, 100000), help="classes of a torchvision model's head"
    )
    p.add_argument(
        "--network",
        type=POSITIVE,
        default=1,
        help="which network of a model file that holds several (1, the first, by default)",
    )
    p.add_argument("--per-layer", action="store_true", help="print one row per operation")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .. import analysis

    model: Any
    shape = (args.input_size, args.input_size) if args.input_size else None
    count = 1
    if Path(args.model).is_file():
        from ..classifier import ClothingClassifier
        from ..exceptions import InvalidParameterError

        clf = ClothingClassifier.load(args.model, device="cpu")
        networks = clf.predictor().networks
        count = len(networks)
        if not 1 <= args.network <= count:
            raise InvalidParameterError(
                f"--network {args.network}: {args.model!r} holds {count} network"
                f"{'s' if count > 1 else ''}; give a number from 1 to {count}."
            )
        model, prep = networks[args.network - 1]
        shape = shape or prep.input_shape
        name = Path(args.model).name
    else:
        kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
        model = analysis.meta_model(args.model, **kwargs)
        name = args.model
    height, width = shape or (224, 224)
    flops = analysis.count_flops(model, input_size=(3, height, width))
    rf = analysis.receptive_field(model, input_size=(3, height, width))
    if args.json:
        payload = flops.to_dict()
        print(
            json.dumps(
                {
                    "model": name,
                    "network": args.network,
                    "networks": count,
                    "input_size": [3, height, width],
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
    if count > 1:
        print(
            f"  network {args.network} of {count}: a prediction runs all {count} (--network N "
            "for the others)"
        )
    for line in rf.misalignments:
        print(f"  misaligned: {line}")
    if args.per_layer:
        print()
        print(flops.table())
        print()
        print(rf.table())
    return 0
