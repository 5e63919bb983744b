"""Prediction throughput: ``ClothingClassifier.predict`` on many files, and on one.

The baseline is the per-image loop people write first: for each file, Pillow opens it,
the evaluation transform makes a tensor, the model scores a batch of one. ``predict``
on a list of files streams them through a DataLoader in batches; on a single image it takes
a short path without a DataLoader. Both use the same network and preprocessing, and the
classifier is made without test-time augmentation so both do one forward pass per image.
With ``--extra-views`` (``1.3333`` for the ``fast`` recipe's second network, on the whole
photo) the classifier has several networks and the loop runs each of them on its own view of
every photo and averages their probabilities, as ``predict`` does.

Without ``--data`` it writes a synthetic set of photo-sized JPEGs (512 x 512) first.

    python benchmarks/bench_predict.py
    python benchmarks/bench_predict.py --data ../shared/data/clothing-dataset --files 500
    python benchmarks/bench_predict.py --backbone efficientnet_lite0 --extra-views 1.3333
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset root (images.csv)")
    parser.add_argument("--files", type=int, default=200, help="files to predict")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20, help="single-image latency samples")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument(
        "--extra-views",
        type=float,
        nargs="*",
        default=[],
        metavar="ASPECT",
        help="further networks, as the training option (fast: 1.3333)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_predict.json")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from clothingclf import ClothingClassifier, prepare_dataset
    from clothingclf.data.synthetic import make_synthetic

    root = args.data
    if root is None:
        root = make_synthetic(
            Path(tempfile.mkdtemp()) / "synthetic", n_per_class=args.files // 6 + 2, image_size=512
        )
    splits = prepare_dataset(root, verify_images=False)
    table = splits.train.sample(min(args.files, len(splits.train)), random_state=0)
    paths = table["path"].tolist()
    # A classifier with the real architecture and preprocessing; its weights do not matter
    # for speed, so it is fitted for one epoch on a handful of images.
    clf = ClothingClassifier(
        backbone=args.backbone,
        weights=None,
        image_size=args.image_size,
        epochs=1,
        batch_size=args.batch_size,
        progress=False,
        tta=False,
        extra_views=tuple(args.extra_views),
    )
    clf.fit(splits.train.head(16)[["path", "label"]], None)
    # The loop gets its own plain copies (default memory layout), as a network made
    # outside clothingclf would be; predict uses the classifier's (channels-last).
    networks = [
        (
            copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval(),
            prep.eval_transform(),
        )
        for model, prep in clf.networks_
    ]
    shapes = ", ".join(f"{p.input_shape[1]} x {p.input_shape[0]}" for _, p in clf.networks_)
    print(f"{len(paths)} files, {args.backbone}, {len(networks)} network(s): {shapes} px")

    def per_image(items: list[str]) -> list[int]:
        out = []
        with torch.no_grad():
            for path in items:
                image = Image.open(path).convert("RGB")
                total = 0
                for model, transform in networks:
                    total = total + model(transform(image).unsqueeze(0)).softmax(1)
                out.append(int(total.argmax(1)))
        return out

    # What the last speed-up of training would give prediction: the same predict call (whose
    # networks are channels-last already) under bfloat16 autocast where the hardware has it
    # (clothingclf.training.speed_settings), applied from outside.
    from clothingclf.training import speed_settings

    bf16, _ = speed_settings(clf.device_)

    def predict_fast(items: list[str]) -> list[str]:
        with torch.autocast(clf.device_.type, dtype=torch.bfloat16, enabled=bf16):
            return clf.predict(items, batch_size=args.batch_size)

    per_image(paths[:4])  # warm-up
    clf.predict(paths[:4])
    predict_fast(paths[:4])
    # Alternate the three, several rounds, and keep each one's median time: on a shared
    # machine this is fairer than one run of each in a row.
    times: dict[str, list[float]] = {"loop": [], "predict": [], "fast": []}
    for _ in range(args.rounds):
        started = time.perf_counter()
        baseline_labels = per_image(paths)
        times["loop"].append(time.perf_counter() - started)
        started = time.perf_counter()
        labels = clf.predict(paths, batch_size=args.batch_size)
        times["predict"].append(time.perf_counter() - started)
        started = time.perf_counter()
        predict_fast(paths)
        times["fast"].append(time.perf_counter() - started)
    baseline, ours, fast = (statistics.median(times[k]) for k in ("loop", "predict", "fast"))
    index = {name: i for i, name in enumerate(clf.classes_)}
    agree = sum(index[a] == b for a, b in zip(labels, baseline_labels, strict=True)) / len(paths)

    def latency(fn: Any) -> float:
        samples = []
        for i in range(args.repeats):
            path = paths[i % len(paths)]
            started = time.perf_counter()
            fn(path)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    single_baseline = latency(lambda p: per_image([p]))
    single_ours = latency(clf.predict)

    rows = [
        {"name": "per-image loop, N files", "seconds": baseline, "images": len(paths)},
        {"name": "predict(list of N files)", "seconds": ours, "images": len(paths)},
        {
            "name": f"  same, bf16 autocast={bf16}",
            "seconds": fast,
            "images": len(paths),
        },
    ]
    print()
    print(f"{'run':<40}{'seconds':>9}{'images/s':>10}{'vs loop':>9}")
    for row in rows:
        row["images_per_second"] = row["images"] / row["seconds"]
        row["ratio"] = baseline / row["seconds"]
        print(
            f"{row['name']:<40}{row['seconds']:>9.2f}{row['images_per_second']:>10.2f}"
            f"{row['ratio']:>8.2f}x"
        )
    print(f"{'single image, per-image loop':<40}{single_baseline * 1000:>9.1f} ms")
    print(
        f"{'single image, predict(path)':<40}{single_ours * 1000:>9.1f} ms"
        f"{single_baseline / single_ours:>17.2f}x"
    )
    print(f"labels agreeing with the loop: {agree:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "files": len(paths),
                "backbone": args.backbone,
                "image_size": args.image_size,
                "input_shapes": [list(p.input_shape) for _, p in clf.networks_],
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
                "rows": rows,
                "single_ms": {"loop": single_baseline * 1000, "predict": single_ours * 1000},
                "agreement": agree,
                "all_seconds": times,
            },
            indent=2,
        )
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
