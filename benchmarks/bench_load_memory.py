"""Memory of ``ClothingClassifier.load``: the peak it adds, against the file's size.

Each row is a fresh process that first loads a small model file (a SqueezeNet, so that
every import is made),
then loads the measured one and reports how much its peak resident memory grew
(``ru_maxrss``). The baseline is the file's own size, so the ratio is the bound SECURITY.md
states. Files: the bundled models, and model files of torchvision networks with random
weights written for the run (``--networks``, default ResNet-18 and ResNet-101).

    python benchmarks/bench_load_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

_MEASURE = textwrap.dedent(
    """
    import resource, sys
    from clothingclf import ClothingClassifier

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    ClothingClassifier.load(sys.argv[1], device="cpu")  # every import made
    before = peak_mib()
    ClothingClassifier.load(sys.argv[2], device="cpu")
    print(peak_mib() - before)
    """
)

_WRITE = textwrap.dedent(
    """
    import sys
    from clothingclf import __version__
    from clothingclf.backbones import build_model
    from clothingclf.checkpoint import FORMAT_NAME, FORMAT_VERSION, atomic_save
    from clothingclf.training import resolve_config

    name, path = sys.argv[1], sys.argv[2]
    net, prep, spec = build_model(name, weights=None, num_classes=3, image_size=64)
    atomic_save(
        {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "library_version": __version__, "model": spec, "state_dict": net.state_dict(),
            "classes": ["Cap", "Hat", "Shoes"], "preprocessing": prep.to_dict(),
            "config": resolve_config("seed", epochs=1).to_dict(),
            "metrics": {"best_val_accuracy": None, "final_val_accuracy": None, "best_epoch": 1},
            "holds": "best", "history": [],
            "params": {"backbone": name, "weights": None, "image_size": 64},
        },
        path,
    )
    """
)


def _run(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", default=["resnet18", "resnet101"])
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_load_memory.json")
    args = parser.parse_args(argv)

    from clothingclf.pretrained import list_pretrained, pretrained_file

    folder = Path(tempfile.mkdtemp())
    files = {name: pretrained_file(name) for name in list_pretrained()}
    for name in args.networks:
        _run(_WRITE, name, str(folder / f"{name}.safetensors"))
        files[f"{name} (random weights)"] = folder / f"{name}.safetensors"
    warm = folder / "warm.safetensors"  # a small file of another network: imports only
    _run(_WRITE, "squeezenet1_1", str(warm))
    print(f"{'file':<34}{'size MiB':>10}{'peak +MiB':>11}{'ratio':>8}")
    rows = []
    for name, path in files.items():
        size = path.stat().st_size / 2**20
        grown = float(_run(_MEASURE, str(warm), str(path)))
        rows.append({"file": name, "size_mib": size, "peak_growth_mib": grown})
        print(f"{name:<34}{size:>10.1f}{grown:>11.1f}{grown / size:>7.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
