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
# The bundled model, from the installed wheel alone: no hub, no cached weights, no training.
"$VENV/bin/python" -c "from clothingclf.pretrained import sample_photos; import shutil; shutil.copy(sample_photos()['path'][15], 'photo.jpg')"
export TORCH_HOME="$(mktemp -d)" HF_HUB_OFFLINE=1
LABEL=$("$VENV/bin/python" -c "from clothingclf import ClothingClassifier; print(ClothingClassifier.pretrained().predict('photo.jpg'))")
echo "pretrained model labels photo.jpg: $LABEL"
[ "$LABEL" = "T-Shirt" ]
"$VENV/bin/clothingclf" predict photo.jpg | grep -q "^photo.jpg	T-Shirt "
echo "bundled model smoke test passed"
