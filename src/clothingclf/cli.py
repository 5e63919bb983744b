"""The ``clothingclf`` command line: a thin shell over the public API.

Each sub-command has an ``_add_<name>`` function that declares its arguments and a
``_run_<name>`` function that calls the library and prints the result. Errors that
clothingclf raises on purpose are printed as one line on stderr; the exit status is 2 when
the command line is wrong (an argument, or a file it names) and 1 when the work failed
(:func:`exit_status`). Nothing here holds logic of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from . import __version__
from ._kinds import int_in
from .exceptions import ClothingClfError

if TYPE_CHECKING:
    from .data import DatasetSplits

__all__ = ["main"]

_Runner = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line: ``clothingclf CMD: error: ...`` (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_POSITIVE = int_in(1)


def _build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
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
    p.add_argument("--workers", type=_POSITIVE, help="threads that verify images (all cores)")
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
        "--input-size",
        type=int_in(1, 65536),
        help="side of the square input (224, or the file's size)",
    )
    p.add_argument(
        "--num-classes", type=int_in(1, 100000), help="classes of a torchvision model's head"
    )
    p.add_argument(
        "--network",
        type=_POSITIVE,
        default=1,
        help="which network of a model file that holds several (1, the first, by default)",
    )
    p.add_argument("--per-layer", action="store_true", help="print one row per operation")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from . import analysis

    model: Any
    shape = (args.input_size, args.input_size) if args.input_size else None
    count = 1
    if Path(args.model).is_file():
        from .classifier import ClothingClassifier
        from .exceptions import InvalidParameterError

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


_COMMANDS.append(_add_analyze)


# --------------------------------------------------------------------------- classifier


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a classifier on a dataset and save it",
        description="Train a ClothingClassifier on DATA (a dataset root with images.csv, "
        "which is prepared with the default options, or a folder written by 'clothingclf "
        "prepare'), print its evaluation on the test split, and save it to --output. "
        "Options left out take the recipe's value.",
    )
    p.add_argument("data", metavar="DATA", help="dataset root or prepared splits folder")
    p.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="model file to write (.safetensors)"
    )
    p.add_argument("--recipe", choices=("fast", "seed"), default="fast", help="(fast)")
    p.add_argument(
        "--backbone",
        help="efficientnet_lite0/1/2, a torchvision name or timm/<name> (the recipe's: fast "
        "efficientnet_lite0, seed resnet18)",
    )
    p.add_argument(
        "--weights",
        default="DEFAULT",
        help="DEFAULT, a weights name, 'none' (random), or a state_dict file",
    )
    from .settings import all_settings

    for declared in all_settings():  # one flag per setting, from its declaration
        declared.add_flag(p)
    p.add_argument("--checkpoint", metavar="FILE", help="write a checkpoint after every epoch")
    p.add_argument("--resume", metavar="FILE", help="continue from such a checkpoint")
    _add_model_options(p)
    p.set_defaults(func=_run_train)


def _load_data(data: str) -> DatasetSplits:
    """A dataset root (prepared here) or a folder written by ``clothingclf prepare``."""
    import warnings
    from pathlib import Path

    from .data import load_splits, prepare_dataset
    from .exceptions import DatasetNotFoundError

    folder = Path(data)
    if (folder / "images.csv").is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the report below repeats them
            splits = prepare_dataset(folder)
        if splits.report.n_dropped:
            print(splits.report.summary())
        return splits
    if (folder / "train.csv").is_file():
        return load_splits(folder)
    raise DatasetNotFoundError(
        f"{data!r} holds neither images.csv (a dataset root) nor train.csv (a folder written "
        "by 'clothingclf prepare'). Point DATA at one of these."
    )


def _check_output_file(path: str, option: str) -> None:
    """Refuse, before any work, an output file path that a save at the end would refuse."""
    from pathlib import Path

    from ._paths import file_in_the_way, refuse_to_replace_non_file
    from .exceptions import SaveError

    target = Path(path)
    try:
        refuse_to_replace_non_file(target, f"write {option}")
        blocker = file_in_the_way(target.parent)
    except OSError as error:  # a link loop, a name too long
        raise SaveError(f"Cannot write {option} {path!r} ({error.strerror or error}).") from None
    if blocker is not None:
        raise SaveError(
            f"Cannot write {option} {path!r}: {str(blocker)!r} is a file, not a folder. "
            "Choose another path."
        )


def _run_train(args: argparse.Namespace) -> int:
    from .classifier import ClothingClassifier

    _check_output_file(args.output, "--output")
    if args.checkpoint is not None:
        _check_output_file(args.checkpoint, "--checkpoint")
    splits = _load_data(args.data)
    print(
        f"{len(splits.train)} train, {len(splits.val)} val, {len(splits.test)} test images; "
        f"{len(splits.classes)} classes"
    )
    from .settings import all_settings

    weights = None if str(args.weights).lower() == "none" else args.weights
    clf = ClothingClassifier(
        backbone=args.backbone,
        weights=weights,
        recipe=args.recipe,
        device=args.device,
        **{s.name: getattr(args, s.name) for s in all_settings()},
    )
    clf.fit(splits, resume=args.resume, checkpoint=args.checkpoint)
    if clf.interrupted_:
        print(f"Interrupted: keeping the {clf.holds_} weights so far (epoch {clf.best_epoch_}).")
    if len(splits.test):
        print()
        print(clf.evaluate(splits.test))
    clf.save(args.output)
    accuracy = clf.best_val_accuracy_
    detail = f", val accuracy {accuracy:.4f}" if accuracy is not None else ""
    print(f"\nSaved {args.output} ({clf.holds_} weights; best epoch {clf.best_epoch_}{detail})")
    return 0


_COMMANDS.append(_add_train)


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved classifier on a dataset split",
        description="Load MODEL and print accuracy, balanced accuracy, macro F1, per-class "
        "scores and the confusion matrix on one split of DATA (a dataset root, prepared with "
        "the default options, or a folder written by 'clothingclf prepare').",
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("data", metavar="DATA", help="dataset root or prepared splits folder")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="(test)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    _add_model_options(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from .classifier import ClothingClassifier

    clf = ClothingClassifier.load(args.model, device=args.device)
    splits = _load_data(args.data)
    report = clf.evaluate(getattr(splits, args.split))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0


_COMMANDS.append(_add_evaluate)


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

    from .classifier import ClothingClassifier, Prediction
    from .exceptions import ImageNotFoundError, InvalidImageError

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


_COMMANDS.append(_add_predict)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="label real photos with the bundled model, then train a small one (offline)",
        description="First the clothing model bundled in the package labels the real photos "
        "bundled with it (one per class, from the dataset's test split) and prints each "
        "label, its confidence and whether it was right. Then a small network is trained "
        "from random weights on a synthetic dataset on the CPU, evaluated and saved. Needs "
        "no network; under a minute on two cores.",
    )
    p.add_argument(
        "-o", "--output", default="clothingclf-demo", metavar="DIR", help="(clothingclf-demo)"
    )
    p.add_argument(
        "--n-per-class", type=int_in(5, 1000), default=DEMO.n_per_class, help="images per class"
    )
    p.add_argument("--epochs", type=int_in(1, 1000), default=DEMO.epochs)
    p.add_argument("--image-size", type=int_in(16, 512), default=DEMO.image_size)
    p.add_argument("--seed", type=int, default=0, help="(0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or epoch lines")
    p.add_argument(
        "--force", action="store_true", help="write into DIR even if it holds other files"
    )
    p.set_defaults(func=_run_demo)


@dataclass(frozen=True)
class _DemoSettings:
    """The training part's settings: the synthetic garments learnt to about 90 % in about
    35 seconds on two CPU cores, so that the whole demo takes under a minute."""

    backbone: str = "resnet18"
    n_per_class: int = 60
    image_size: int = 48
    epochs: int = 12
    optimizer: Literal["sgd", "nesterov", "adamw"] = "adamw"
    lr: float = 0.003
    batch_size: int = 32
    min_scale: float = 1.0
    flip: bool = False


DEMO = _DemoSettings()


def _run_demo(args: argparse.Namespace) -> int:
    import time

    started = time.perf_counter()
    _claim_demo_folder(args.output, args.force)
    _demo_pretrained()
    _demo_training(args, started)
    return 0


_DEMO_MARKER = ".clothingclf-demo"


def _claim_demo_folder(output: str, force: bool) -> None:
    """Refuse a folder that holds files an earlier demo did not write (unless ``force``),
    and mark it as the demo's."""
    from pathlib import Path

    from .exceptions import InvalidParameterError

    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"--output {output!r} is a file; give a folder for the demo.")
    foreign = folder.is_dir() and any(folder.iterdir()) and not (folder / _DEMO_MARKER).exists()
    if foreign and not force:
        raise InvalidParameterError(
            f"--output {output!r} already holds files that the demo did not write; nothing "
            "was changed. Choose another folder, or pass --force to write into it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _DEMO_MARKER).write_text("written by clothingclf demo\n", encoding="utf-8")


def _demo_pretrained() -> None:
    """Part 1: the bundled model on the bundled photos."""
    from .classifier import ClothingClassifier
    from .exceptions import MissingDependencyError
    from .pretrained import sample_photos

    try:
        clf = ClothingClassifier.pretrained(device="cpu")
    except MissingDependencyError as error:
        print(f"(Skipping the bundled model: {error})\n")
        return
    photos = sample_photos()
    print(f"The bundled model labels {len(photos)} real photos (one per class, never trained on):")
    right = 0
    for path, label, prediction in zip(
        photos["path"], photos["label"], clf.predict_top(photos, k=1), strict=True
    ):
        correct = prediction.label == label
        right += correct
        mark = "right" if correct else f"wrong, it is {label}"
        print(
            f"  {os.path.basename(path):<26} {prediction.label:<11} {prediction.score:5.2f}  {mark}"
        )
    print(
        f"{right} of {len(photos)} right ({right / len(photos):.0%}). On the 465 photos of the "
        "test split it scores 88 % (docs/model_card.rst).\n"
    )


def _demo_training(args: argparse.Namespace, started: float) -> None:
    """Part 2: train a small network from random weights on synthetic data."""
    import time
    from pathlib import Path

    from .classifier import ClothingClassifier
    from .data import prepare_dataset
    from .datasets import make_synthetic

    output = Path(args.output)
    root = make_synthetic(
        output / "data", n_per_class=args.n_per_class, image_size=args.image_size, seed=args.seed
    )
    splits = prepare_dataset(root, output_dir=output / "splits", seed=args.seed)
    print(
        f"Now training your own: a synthetic dataset in {root}: {len(splits.train)} train, "
        f"{len(splits.val)} val, {len(splits.test)} test images of {len(splits.classes)} "
        f"classes ({', '.join(splits.classes)})"
    )
    clf = ClothingClassifier(
        backbone=DEMO.backbone,
        weights=None,
        recipe="seed",
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=DEMO.batch_size,
        optimizer=DEMO.optimizer,
        lr=DEMO.lr,
        device="cpu",
        seed=args.seed,
        num_workers=0,
        progress=not args.no_progress,
        min_scale=DEMO.min_scale,
        flip=DEMO.flip,
    )
    print(f"Training {DEMO.backbone} from random weights at {args.image_size} px ...")
    clf.fit(splits)
    print(f"\nEvaluation on the test split ({time.perf_counter() - started:.0f} s so far):")
    print(clf.evaluate(splits.test))
    model_path = output / "model.safetensors"
    clf.save(model_path)
    sample = splits.test["path"].iloc[0]
    print(f"\nSaved the model to {model_path} ({time.perf_counter() - started:.0f} s in all).")
    print(f"Try: clothingclf predict {sample} --model {model_path} --top-k 3")
    print("  or: clothingclf predict YOUR_PHOTO.jpg   (the bundled model)")


_COMMANDS.append(_add_demo)


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML/Markdown evaluation report with figures",
        description="Evaluate MODEL on DATA and write into --output a self-contained "
        "report.html, report.md, the confusion matrix, training curves and a gallery of the "
        "most confidently wrong images as PNG files, per_class.csv, predictions.csv and "
        "report.json. DATA is a dataset root (split with the default options), a folder "
        "written by 'clothingclf prepare --output', or a CSV file with columns path and "
        'label. Needs matplotlib: pip install "clothingclf[plot]".',
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("data", metavar="DATA", help="dataset root, prepared folder, or CSV file")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="report folder")
    p.add_argument(
        "--split", choices=("test", "val", "train", "all"), default="test", help="(test)"
    )
    p.add_argument(
        "--mistakes", type=int_in(0), default=16, metavar="N", help="images in the gallery (16)"
    )
    p.add_argument("--title", help="page title (Evaluation report)")
    p.add_argument(
        "--force", action="store_true", help="replace files of the report's names not made by it"
    )
    p.add_argument("--batch-size", type=_POSITIVE, help="images per forward pass")
    _add_model_options(p)
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    import warnings

    from .classifier import ClothingClassifier
    from .report import write_report

    clf = ClothingClassifier.load(args.model, device=args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small classes; the split is still used
        files = write_report(
            clf,
            args.data,
            args.output,
            split=args.split,
            max_mistakes=args.mistakes,
            title=args.title,
            batch_size=args.batch_size,
            force=args.force,
        )
    e = files.evaluation
    print(
        f"{e.n_samples} images: accuracy {e.accuracy:.4f}, balanced accuracy "
        f"{e.balanced_accuracy:.4f}, macro F1 {e.macro_f1:.4f}, {len(files.mistakes)} wrong"
    )
    written = [files.html, files.markdown, *files.figures.values(), *files.tables.values()]
    print(f"Wrote {', '.join(p.name for p in written)}, report.json to {files.output_dir}")
    return 0


_COMMANDS.append(_add_report)


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export a saved classifier to ONNX or TorchScript",
        description="Write MODEL as an ONNX or TorchScript file that maps normalised float32 "
        "images N x 3 x S x S to class probabilities N x C, and FILE.json beside it with the "
        "class names and the preprocessing. The export is checked against the PyTorch model "
        'on batches of 1 and 3 images. ONNX needs pip install "clothingclf[onnx]".',
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="(onnx)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="file to write")
    p.add_argument("--opset", type=int_in(7), help="ONNX opset (17)")
    p.add_argument("--no-verify", action="store_true", help="skip the parity check")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .classifier import ClothingClassifier

    clf = ClothingClassifier.load(args.model, device="cpu")
    exported = clf.export(
        args.output, format=args.format, opset=args.opset, verify=not args.no_verify
    )
    meta = exported.metadata
    check = (
        "not checked"
        if exported.max_abs_diff is None
        else f"matches PyTorch to {exported.max_abs_diff:.1e}"
    )
    inputs = meta.get("inputs") or [meta]
    shapes = ", ".join(
        f"{item['input_name']} float32 batch x 3 x {item['input_shape'][2]} x "
        f"{item['input_shape'][3]}"
        for item in inputs
    )
    print(
        f"Wrote {exported.path} ({exported.format}: input{'s' if len(inputs) > 1 else ''} "
        f"{shapes}, output probabilities of {len(meta['classes'])} classes; {check})"
    )
    print(f"Wrote {exported.metadata_path} (classes and preprocessing)")
    return 0


_COMMANDS.append(_add_export)


def exit_status(error: ClothingClfError) -> int:
    """The exit status for a clothingclf error: 1 when the work failed, 2 when the input did.

    Failures are a training that diverged, an export that failed, an optional package that
    is not installed, and what the system refused: a file it would not write (disk full, no
    permission) or weights it could not download. Everything else is an argument, or a file
    named by one, that cannot work as given: fix the command line and rerun.
    """
    from .exceptions import (
        ExportError,
        MissingDependencyError,
        SaveError,
        TrainingDivergedError,
        WeightsUnavailableError,
    )

    if isinstance(error, (TrainingDivergedError, ExportError, MissingDependencyError)):
        return 1
    system_refused = isinstance(error.__cause__, OSError) or (
        isinstance(error, OSError) and bool(error.errno)
    )
    if isinstance(error, (SaveError, WeightsUnavailableError)) and system_refused:
        return 1
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success; 2 for a usage error, a bad argument value or a file
        named on the command line that is missing, of the wrong kind or not what the command
        reads; 1 for a failure (a diverged training, a failed export or write, a missing
        optional package, some images of ``predict`` unreadable, an unexpected error: one
        line on stderr, ``CLOTHINGCLF_DEBUG=1`` shows the traceback); 130 when interrupted.
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
        return exit_status(error)
    except KeyboardInterrupt:
        print(f"clothingclf {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``clothingclf ... | head``): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as error:  # what no check foresaw: one line, not a traceback
        if os.environ.get("CLOTHINGCLF_DEBUG"):
            raise
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"clothingclf {args.command}: error: {type(error).__name__}: {detail} (unexpected: "
            "set CLOTHINGCLF_DEBUG=1 to see where, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
