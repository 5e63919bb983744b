"""Training throughput: ``ClothingClassifier.fit`` against a plain PyTorch loop.

The baseline is the loop of the original study, written the usual way: a Dataset that
decodes every JPEG in every epoch, torchvision's RandomResizedCrop + flip + normalise,
a DataLoader with workers, float32, NCHW, SGD. ``fit`` trains the same network at the same
resolution, batch size, optimiser and number of epochs (``recipe="seed"``), once with every
speed-up off (only the decoded-image cache), then adding channels-last, bfloat16 where the
hardware has it natively (``amp="auto"``), and the defaults of this machine, which also
keep freed memory on the heap between steps (``reuse_memory="auto"``). Images/s counts every
training image of every epoch over the whole wall time, decoding and caching included.

Without ``--data`` it writes a synthetic set of photo-sized JPEGs (512 x 512) first, so it
runs anywhere. Runs take a few minutes at the defaults; raise ``--images``/``--epochs``
for steadier numbers.

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --data ../shared/data/clothing-dataset --images 512
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def plain_loop(train: Any, args: argparse.Namespace, weights: list[float] | None) -> float:
    """The study's loop: decode + augment every image every epoch. Returns seconds."""
    import torch
    from torch.nn import functional as F
    from torchvision import transforms

    from clothingclf import ClothingDataset
    from clothingclf.backbones import build_model

    torch.manual_seed(0)
    model, prep, _ = build_model(
        args.backbone, weights=None, num_classes=int(train["label_id"].max()) + 1,
        image_size=args.image_size,
    )  # fmt: skip
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(args.image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )
    loader = torch.utils.data.DataLoader(
        ClothingDataset(train, transform=transform),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    weight = torch.tensor(weights) if weights else None
    started = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels, weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def fit_seconds(train: Any, args: argparse.Namespace, options: dict[str, Any]) -> float:
    from clothingclf import ClothingClassifier

    clf = ClothingClassifier(
        backbone=args.backbone,
        weights=None,
        image_size=args.image_size,
        recipe="seed",
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=False,
        **options,
    )
    started = time.perf_counter()
    clf.fit(train[["path", "label"]], None)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset root (images.csv)")
    parser.add_argument("--images", type=int, default=192, help="training images used")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_train.json")
    args = parser.parse_args(argv)

    import torch

    from clothingclf import prepare_dataset
    from clothingclf.data.synthetic import make_synthetic

    root = args.data
    if root is None:
        root = make_synthetic(
            Path(tempfile.mkdtemp()) / "synthetic",
            n_per_class=max(8, args.images // 6 + 2),
            image_size=512,
        )
    splits = prepare_dataset(root, verify_images=False)
    train = splits.train.sample(min(args.images, len(splits.train)), random_state=0)
    train = train.reset_index(drop=True)
    count = len(train) * args.epochs
    print(
        f"{len(train)} images x {args.epochs} epochs, {args.backbone} at {args.image_size} px, "
        f"batch {args.batch_size}, {args.workers} workers, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    baseline = plain_loop(train, args, splits.class_weights)
    rows.append({"name": "plain loop (decode every epoch, fp32)", "seconds": baseline})
    print(f"  plain loop: {baseline:.1f} s", flush=True)
    off = {"reuse_memory": "off"}
    variants = [
        ("fit, cache only (fp32, NCHW)", {"amp": "off", "channels_last": "off", **off}),
        ("fit, cache + channels_last", {"amp": "off", "channels_last": "on", **off}),
        ("fit, cache + channels_last + amp auto", off),
        ("fit, defaults of this machine", {}),
    ]
    for name, options in variants:
        seconds = fit_seconds(train, args, options)
        rows.append({"name": name, "seconds": seconds, "options": options})
        print(f"  {name}: {seconds:.1f} s", flush=True)

    print()
    print(f"{'run':<44}{'seconds':>9}{'images/s':>10}{'vs plain':>10}")
    for row in rows:
        row["images_per_second"] = count / row["seconds"]
        row["ratio"] = baseline / row["seconds"]
        print(
            f"{row['name']:<44}{row['seconds']:>9.1f}{row['images_per_second']:>10.2f}"
            f"{row['ratio']:>9.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "images": len(train),
                "epochs": args.epochs,
                "backbone": args.backbone,
                "image_size": args.image_size,
                "batch_size": args.batch_size,
                "workers": args.workers,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
