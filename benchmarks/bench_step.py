"""Training-step speed of the ``fast`` recipe's network: eager against compiled, float32
against bfloat16 autocast.

Times one optimiser step (forward, loss, backward, AdamW) of EfficientNet-Lite0 with the
recipe's 18-class head on random batches, in the channels-last layout ``fit`` uses, for
each mode, and prints images/s with the ratio to eager float32 measured in the same run.
``torch.compile``'s first steps (the compilation) are timed apart: ``fit`` pays them again
at every image size of its progressive schedule (3 sizes per network), so a compiled step
must win back that time within the epochs of one size to pay.

Examples::

    python benchmarks/bench_step.py                      # 160 px, batch 32
    python benchmarks/bench_step.py --size 224 --modes eager-fp32 compiled-fp32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("eager-fp32", "eager-bf16", "compiled-fp32", "compiled-bf16")


def _step_runner(mode: str, size: int, batch: int) -> tuple[Any, Any]:
    import torch
    from torch import nn

    from clothingclf.backbones import build_model

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=18, weights=None, image_size=size)[0]
    model.train().to(memory_format=torch.channels_last)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="image side in px (160)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per mode (6)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
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
        rows[mode] = measure(mode, args.size, args.batch, args.steps)
        print(f"  {mode}: {rows[mode]}", flush=True)
    base = rows.get("eager-fp32", next(iter(rows.values())))["images_per_s"]
    print(f"\n{'mode':<16}{'images/s':>10}{'vs eager fp32':>15}{'first 2 steps s':>17}")
    for mode, row in rows.items():
        print(
            f"{mode:<16}{row['images_per_s']:>10.1f}{row['images_per_s'] / base:>14.2f}x"
            f"{row['first_two_steps_s']:>17.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
