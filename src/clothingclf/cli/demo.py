"""The ``demo`` sub-command: the bundled model on the bundled photos, then a small
network trained offline on synthetic data, evaluated and saved into a folder of its own."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Literal

from .flags import int_in


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


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    from ..exceptions import InvalidParameterError

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
    from ..classifier import ClothingClassifier
    from ..pretrained import sample_photos

    clf = ClothingClassifier.pretrained(device="cpu")
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
    test = (clf.model_card_ or {}).get("test", {})
    print(
        f"{right} of {len(photos)} right ({right / len(photos):.0%}). On the "
        f"{test.get('photos', 465)} photos of the test split it scores "
        f"{test.get('accuracy', float('nan')):.0%} (docs/model_card.rst).\n"
    )


def _demo_training(args: argparse.Namespace, started: float) -> None:
    """Part 2: train a small network from random weights on synthetic data."""
    import time
    from pathlib import Path

    from ..classifier import ClothingClassifier
    from ..data import prepare_dataset
    from ..data.synthetic import make_synthetic

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
