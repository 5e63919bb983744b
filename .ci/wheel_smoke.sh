#!/usr/bin/env bash
# Small real calls of the installed wheel, run from a folder outside the source tree.
set -euo pipefail
VENV=$1
"$VENV/bin/clothingclf" analyze resnet18 --json > analyze.json
"$VENV/bin/python" - <<'PY'
import json

import numpy as np

import clothingclf
from clothingclf import analysis

report = json.load(open("analyze.json"))
assert report["total_macs"] == 1_814_073_344, report["total_macs"]
assert report["receptive_field"]["size"] == [435, 435], report["receptive_field"]
image = clothingclf.open_image(np.zeros((8, 6, 3), dtype=np.uint8))
assert image.size == (6, 8) and image.mode == "RGB"
assert analysis.count_flops("resnet18").total_macs == 1_814_073_344
print("wheel smoke test passed")
PY
