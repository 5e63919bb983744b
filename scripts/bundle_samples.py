#!/usr/bin/env python3
"""Copy a few real test photos into the package, for ``clothingclf demo``.

Takes, for every class of the clothing-dataset's test split (``prepare_dataset(root,
seed=42)``, the split the bundled model never trained on), its first photo by file name,
resizes it to 288 px on the shorter side (JPEG quality 85, EXIF orientation applied) and
writes it with a ``samples.csv`` of file names and labels to ``src/clothingclf/samples/``.
The photos are CC0, like the dataset.

    python scripts/bundle_samples.py --data ../shared/data/clothing-dataset
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from clothingclf import open_image, prepare_dataset

ROOT = Path(__file__).resolve().parents[1]
SHORT_SIDE = 288


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/clothing-dataset")
    parser.add_argument("--out", type=Path, default=ROOT / "src/clothingclf/samples")
    args = parser.parse_args()
    splits = prepare_dataset(args.data, seed=42)
    test = splits.test.assign(name=[Path(p).name for p in splits.test["path"]])
    chosen = test.sort_values("name").groupby("label", sort=True).head(1).sort_values("label")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path, label in zip(chosen["path"], chosen["label"], strict=True):
        image = open_image(path)
        scale = SHORT_SIDE / min(image.size)
        if scale < 1:
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, resample=3, reducing_gap=3.0)  # bicubic
        name = f"{label.lower().replace(' ', '-')}-{Path(path).stem[:8]}.jpg"
        image.save(args.out / name, quality=85, optimize=True)
        rows.append({"image": name, "label": label})
    pd.DataFrame(rows).to_csv(args.out / "samples.csv", index=False)
    total = sum((args.out / row["image"]).stat().st_size for row in rows)
    print(f"wrote {len(rows)} photos ({total / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    main()
