"""Write the probabilities that the bundled models give with timm's EfficientNet-Lite0 in
place of the library's own network (same weights), for the bare-install smoke test to
compare against: a bare install must give the same numbers (to 1e-6) without timm."""

from __future__ import annotations

import json
import sys

import timm
import torch

from clothingclf import ClothingClassifier
from clothingclf.pretrained import list_pretrained, sample_photos

photos = list(sample_photos()["path"])
reference = {}
for name in list_pretrained():
    clf = ClothingClassifier.pretrained(name, device="cpu")
    for network, _ in clf.networks_:
        timm_net = timm.create_model("tf_efficientnet_lite0", num_classes=0)
        timm_net.load_state_dict(network.features.state_dict())
        network.features = timm_net.eval().to(memory_format=torch.channels_last)
    probabilities = clf.predict_proba(photos, engine="torch")
    reference[name] = probabilities.tolist()
names = [p.rsplit("/", 1)[-1] for p in photos]
with open(sys.argv[1], "w", encoding="utf-8") as stream:
    json.dump({"photos": names, "models": reference}, stream)
print(f"timm's probabilities of {', '.join(reference)} on {len(photos)} photos: {sys.argv[1]}")
