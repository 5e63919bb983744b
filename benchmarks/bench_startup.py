"""Start-up cost: labelling one photo from a fresh process, against importing torch.

Every row is a fresh Python process, timed from its start to its exit (the median of
``--runs`` runs, rows interleaved so a machine that speeds up or slows down shifts them
all). The baselines, in the same run: ``python -c "import torch"`` and ``python -c "import
torch, torchvision"`` (what any torchvision model costs to start). Measured:

* ``import clothingclf`` (the package's own import; its modules load when first used);
* ``clothingclf predict photo.jpg`` with the bundled model (the cold command line);
* ``ClothingClassifier.pretrained().predict("photo.jpg")`` in a fresh interpreter;
* with ``--before SRC`` (the ``src`` folder of an older checkout, e.g. made with ``git
  worktree add /tmp/before <commit>``), the same three rows for that tree, through
  ``PYTHONPATH``: before and after side by side.

The photo is one of the package's bundled samples. ``python -X importtime`` shows where
an import's time goes; ``--importtime`` prints its 15 largest modules for the command line.

    python benchmarks/bench_startup.py --runs 7
    git worktree add /tmp/before HEAD~5
    python benchmarks/bench_startup.py --before /tmp/before/src --importtime
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SRC = Path(__file__).resolve().parents[1] / "src"

_PREDICT_CLI = "from clothingclf.cli import main; raise SystemExit(main(['predict', 'photo.jpg']))"
_PREDICT_API = (
    "from clothingclf import ClothingClassifier; "
    "print(ClothingClassifier.pretrained(device='cpu').predict('photo.jpg'))"
)


def _time(code: str, folder: Path, src: Path | None) -> float:
    """Seconds from the start of ``python -c code`` to its exit."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, check=True, capture_output=True
    )
    return time.perf_counter() - started


def _importtime(folder: Path) -> list[tuple[int, str]]:
    """The 15 modules whose import (their own and their imports') takes longest."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PREDICT_CLI],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:15]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per row (7)")
    parser.add_argument("--before", type=Path, help="the src folder of an older checkout")
    parser.add_argument("--importtime", action="store_true", help="where the CLI's time goes")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_startup.json")
    args = parser.parse_args(argv)

    from clothingclf.pretrained import sample_photos

    folder = Path(tempfile.mkdtemp())
    photos = sample_photos().set_index("label")["path"]
    shutil.copy(photos["T-Shirt"], folder / "photo.jpg")
    rows: dict[str, tuple[str, Path | None]] = {
        'python -c "import torch"': ("import torch", None),
        'python -c "import torch, torchvision" (baseline)': ("import torch, torchvision", None),
    }
    trees = [("", SRC)] + ([(" [before]", args.before)] if args.before else [])
    for tag, src in trees:
        rows[f"import clothingclf{tag}"] = ("import clothingclf", src)
        rows[f"clothingclf predict photo.jpg{tag}"] = (_PREDICT_CLI, src)
        rows[f"pretrained().predict('photo.jpg'){tag}"] = (_PREDICT_API, src)
    for code, src in rows.values():  # warm the file cache: every row starts warm
        _time(code, folder, src)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.runs):
        for name, (code, src) in rows.items():
            times[name].append(_time(code, folder, src))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians['python -c "import torch, torchvision" (baseline)']
    cli = medians["clothingclf predict photo.jpg"]
    print(f"{'fresh process':<52}{'median s':>9}{'vs torch+tv':>12}{'vs before':>10}")
    for name, value in medians.items():
        before = medians.get(f"{name} [before]")
        versus = f"{before / value:>9.2f}x" if before else f"{'':>10}"
        print(f"{name:<52}{value:>9.2f}{value / base:>11.2f}x{versus}")
    print(f"cold predict at {cli / base:.2f}x import torch, torchvision (target <= 1.5x)")
    if args.importtime:
        print("\nslowest imports of the command line (python -X importtime, cumulative):")
        for micros, name in _importtime(folder):
            print(f"{micros / 1e6:>8.2f} s  {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"medians": medians, "runs": times}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
