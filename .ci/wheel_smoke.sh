#!/usr/bin/env bash
# One small real call of the installed wheel, run from a folder outside the source tree.
set -euo pipefail
VENV=$1
"$VENV/bin/python" - <<'PY'
import numpy as np
import clothingclf

image = clothingclf.open_image(np.zeros((8, 6, 3), dtype=np.uint8))
assert image.size == (6, 8) and image.mode == "RGB"
print("wheel smoke test passed")
PY
