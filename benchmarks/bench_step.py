"""Training-step speed of the ``fast`` recipe's network: eager against compiled, float32
against bfloat16 autocast, and ``fit`` itself against those bare steps.

Times one optimiser step (forward, loss, backward, AdamW) of EfficientNet-Lite0 with the
recipe's 18-class head on random batches, in the channels-last layout ``fit`` uses and
with BatchNorm on its stored statistics (the recipe's ``freeze_bn``), for each mode, and
prints images/s with the ratio to eager float32 measured in the same run.
``torch.compile``'s first steps (the compilation) are timed apart: ``fit`` pays them again
at every image size of its progressive schedule (3 sizes per network), so a compiled step
must win back that time within the epochs of one size to pay.

The ``fit`` row is the library's own ``fit`` (``recipe="fast"`` with one network, at the
same size and batch, ``amp="auto"``) on synthetic photos: images/s of its fine-tuning
epochs, from its history, so it counts what a bare step leaves out (cropping and
augmenting from the image cache, the data order, the loss). Its ratio
to ``eager-bf16`` is how close ``fit`` comes to a bfloat16 step, the bound of the current
approach where the CPU computes bfloat16 natively.

Examples::

    python benchmarks/bench_step.py                      # 160 px, batch 32
    python benchmarks/bench_step.py --size 224 --modes eager-fp32 compiled-fp32 fit
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("eager-fp32", "eager-bf16", "compiled-fp32", "compiled-bf16", "fit")


def _step_runner(mode: str, size: int, batch: int) -> tuple[Any, Any]:
    import torch
    from torch import nn

    from clothingclf.backbones import build_model

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=18, weights=None, image_size=size)[0]
    model.train().to(memory_format=torch.channels_last)
    for module in model.modules():  # the recipe's freeze_bn, as fit runs it
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.05)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    bf16 = mode.endswith("bf16")
    forward = torch.compile(model) if mode.startswith("compiled") else model
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 18, (batch,))

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(images), labels)
        loss.backward()
        optimiser.step()

    return step, model


def measure(mode: str, size: int, batch: int, steps: int) -> dict[str, float]:
    """Seconds of the first two steps (compilation, for a compiled mode) and images/s of
    the ``steps`` after them."""
    step, _ = _step_runner(mode, size, batch)
    started = time.perf_counter()
    for _ in range(2):
        step()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    return {"first_two_steps_s": warm, "images_per_s": steps * batch / seconds}


def measure_fit(size: int, batch: int, images: int, epochs: int) -> dict[str, float]:
    """``fit`` of the ``fast`` recipe's network at one size: seconds of its head stage
    (the backbone's features, the head alone) and images/s of its fine-tuning epochs."""
    from clothingclf import ClothingClassifier, prepare_dataset
    from clothingclf.data.synthetic import make_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic(Path(tmp) / "photos", n_per_class=images // 6 + 1, image_size=320)
        train = prepare_dataset(root, verify_images=False).train.head(images)
        clf = ClothingClassifier(
            backbone="efficientnet_lite0",
            weights=None,
            recipe="fast",
            image_size=size,
            batch_size=batch,
            size_schedule=(),
            extra_views=(),
            head_epochs=1,
            epochs=epochs,
            cache_dir=str(Path(tmp) / "cache"),
            progress=False,
        )
        clf.fit(train[["path", "label"]], None)
    rows = [row for row in clf.history_ if row["epoch"] >= 1]
    seconds = sum(row["seconds"] for row in rows)
    return {
        "first_two_steps_s": float(clf.history_[0]["seconds"]),
        "images_per_s": len(train) * len(rows) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="image side in px (160)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per mode (6)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--fit-images", type=int, default=192, help="photos of the fit row")
    parser.add_argument("--fit-epochs", type=int, default=2, help="its fine-tuning epochs")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_step.json")
    args = parser.parse_args(argv)

    import torch

    from clothingclf.training.precision import _cpu_has_native_bf16

    print(
        f"EfficientNet-Lite0, {args.size} px, batch {args.batch}, {torch.get_num_threads()} "
        f"threads, cpu capability {torch.backends.cpu.get_cpu_capability()}, native bf16: "
        f"{_cpu_has_native_bf16()}",
        flush=True,
    )
    rows = {}
    for mode in args.modes:
        rows[mode] = (
            measure_fit(args.size, args.batch, args.fit_images, args.fit_epochs)
            if mode == "fit"
            else measure(mode, args.size, args.batch, args.steps)
        )
        print(f"  {mode}: {rows[mode]}", flush=True)
    base = rows.get("eager-fp32", next(iter(rows.values())))["images_per_s"]
    bf16 = rows["eager-bf16"]["images_per_s"] if "eager-bf16" in rows else None
    print(
        f"\n{'mode':<16}{'images/s':>10}{'vs eager fp32':>15}{'vs eager bf16':>15}"
        f"{'first 2 steps s':>17}"
    )
    for mode, row in rows.items():
        versus_bf16 = f"{row['images_per_s'] / bf16:>14.2f}x" if bf16 else f"{'':>15}"
        print(
            f"{mode:<16}{row['images_per_s']:>10.1f}{row['images_per_s'] / base:>14.2f}x"
            f"{versus_bf16}{row['first_two_steps_s']:>17.1f}"
        )
    if "fit" in rows:
        print("fit: 'first 2 steps s' is its head stage (the backbone's features, the head)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
