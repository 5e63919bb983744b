"""How long clothingclf.analysis takes: count_flops + receptive_field, against FlopCounterMode.

For each model the network is built once with its weights on the ``meta`` device, then timed
(median of several runs):

* ``analysis``: ``count_flops`` followed by ``receptive_field`` (two traces, both reports);
* ``baseline``: one plain forward pass under :class:`torch.utils.flop_counter.FlopCounterMode`
  on the same meta model, the cheapest way torch itself offers to get a FLOP total.

The ratio ``analysis / baseline`` says what the per-layer rows, the parameter attribution and
the receptive field cost on top of a bare total. Also checked: both give the same total.

Run: ``python benchmarks/bench_analysis.py [--repeat 5]``; the table is printed and the
numbers are written to ``benchmarks/results/bench_analysis.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from clothingclf import analysis

MODELS = ("resnet18", "resnet50", "vit_b_16")
RESULTS = Path(__file__).resolve().parent / "results" / "bench_analysis.json"


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: imports, dispatcher caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _baseline(model: torch.nn.Module, size: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measure (5)")
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()
    size = args.input_size

    rows = []
    for name in MODELS:
        start = time.perf_counter()
        model = analysis.meta_model(name)
        build = time.perf_counter() - start

        def both(model: torch.nn.Module = model) -> tuple[int, tuple[int, int]]:
            flops = analysis.count_flops(model, input_size=size)
            rf = analysis.receptive_field(model, input_size=size)
            return flops.total_flops, rf.size

        ours = _median_seconds(both, args.repeat)
        base = _median_seconds(lambda model=model: _baseline(model, size), args.repeat)
        total, rf_size = both()
        rows.append(
            {
                "model": name,
                "build_meta_s": round(build, 4),
                "analysis_s": round(ours, 4),
                "baseline_flop_counter_s": round(base, 4),
                "ratio": round(ours / base, 2),
                "total_flops": total,
                "baseline_total_flops": _baseline(model, size),
                "receptive_field": list(rf_size),
            }
        )

    header = f"{'model':<10} {'analysis s':>11} {'FlopCounterMode s':>18} {'ratio':>6}  FLOPs equal"
    print(header)
    print("-" * len(header))
    for r in rows:
        same = r["total_flops"] == r["baseline_total_flops"]
        print(
            f"{r['model']:<10} {r['analysis_s']:>11.3f} {r['baseline_flop_counter_s']:>18.3f} "
            f"{r['ratio']:>6.2f}  {same}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "count_flops + receptive_field vs FlopCounterMode forward (meta device)",
        "input_size": [3, size, size],
        "repeat": args.repeat,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
