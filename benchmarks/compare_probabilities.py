"""Whether two ``bench_predict.py --probabilities`` files hold the same numbers, bit for bit.

    python benchmarks/compare_probabilities.py before.npz after.npz

A refactoring that must not change what ``predict_proba`` returns is checked this way: run
``bench_predict.py --probabilities`` on the commit before and the commit after (same
machine, same photos), then compare. Prints one line per run and exits 1 if any differs.
Two rows may differ for reasons of their own: ``engine='auto'`` (which engine wins the
timing) and int8 (the quantisation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = np.load(args.before), np.load(args.after)
    differing = 0
    for name in sorted(set(before.files) | set(after.files)):
        if name not in before.files or name not in after.files:
            print(f"{name:<60} only in {'after' if name in after.files else 'before'}")
            continue
        a, b = before[name], after[name]
        same = a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        worst = float(np.abs(a - b).max()) if a.shape == b.shape and a.size else float("nan")
        differing += not same
        print(f"{name:<60} {'bit-identical' if same else f'DIFFERS (max {worst:.1e})'}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
