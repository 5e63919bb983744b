"""clothingclf.training.ensemble: several networks, one per view, averaged (``extra_views``).

The ``fast`` recipe trains a network on the centre square of each photo and another on the
whole 3:4 photo and averages their probabilities: these tests hold the pair to what it
promises (own views, averaged predictions and validation, save/load, export, report,
checkpoints and resume, older files) on tiny networks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _nets import tiny_classifier, tiny_features
from clothingclf import ClothingClassifier, DatasetSplits
from clothingclf.backbones import Preprocessing
from clothingclf.checkpoint import FORMAT_VERSION, atomic_save, safe_load
from clothingclf.exceptions import ModelFileError
from clothingclf.report import write_report
from clothingclf.training import network_file

PORTRAIT = 4 / 3

_tiny = tiny_classifier


@pytest.fixture(scope="module")
def pair(synthetic_splits: DatasetSplits, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A square and a portrait network, fitted with checkpoints; (classifier, folder)."""
    folder = tmp_path_factory.mktemp("pair")
    clf = _tiny(extra_views=(PORTRAIT,), val_every=2, tta=True).fit(
        synthetic_splits, checkpoint=folder / "fit.ckpt"
    )
    return clf, folder


def _own_probabilities(model: torch.nn.Module, prep: Preprocessing, paths: list[str]) -> np.ndarray:
    """One network's probabilities computed the plain way (with the mirror image)."""
    batch = torch.stack([prep.eval_transform()(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        model.eval()
        both = model(batch).double().softmax(1) + model(batch.flip(-1)).double().softmax(1)
    return (both / 2).numpy()


def test_two_networks_train_on_their_own_views_and_predict_their_average(
    pair: Any, synthetic_splits: DatasetSplits
) -> None:
    clf, folder = pair
    assert clf.config_.views() == [(32, 1.0), (32, PORTRAIT)]
    assert [prep.input_shape for _, prep in clf.networks_] == [(32, 32), (43, 32)]
    assert clf.model_ is clf.networks_[0][0] and clf.preprocessing_ is clf.networks_[0][1]
    # Both trained: their weights differ, each has its own checkpoint.
    first, second = (model.state_dict() for model, _ in clf.networks_)
    assert any(not torch.equal(first[key], second[key]) for key in first)
    assert (folder / "fit.ckpt").is_file() and (folder / "fit.network2.ckpt").is_file()
    # The history has both networks' epochs; each validated only epoch 2 (val_every=2).
    assert [(row["network"], row["epoch"]) for row in clf.history_] == [
        (net, epoch) for net in (0.0, 1.0) for epoch in (1.0, 2.0)
    ]
    validated = [not math.isnan(row["val_accuracy"]) for row in clf.history_]
    assert validated == [False, True] * 2

    paths = synthetic_splits.test["path"].tolist()
    expected = np.mean([_own_probabilities(m, p, paths) for m, p in clf.networks_], axis=0)
    np.testing.assert_allclose(clf.predict_proba(paths), expected, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(paths[0]), expected[:1], atol=1e-6)
    labels = clf.predict(paths)
    assert labels == [clf.classes_[i] for i in expected.argmax(1)]


def test_the_validation_accuracy_of_two_networks_is_that_of_their_average(
    pair: Any, synthetic_splits: DatasetSplits
) -> None:
    clf, _ = pair
    val = synthetic_splits.val
    truth = np.array([clf.classes_.index(label) for label in val["label"]])
    probabilities = clf.predict_proba(val)
    # The training loop validates from its cache; predict_proba decodes the files again:
    # the same view up to rounding, so the same labels here.
    assert clf.final_val_accuracy_ == pytest.approx(
        float((probabilities.argmax(1) == truth).mean())
    )
    assert clf.best_val_accuracy_ is not None


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_two_networks_save_load_and_export(
    pair: Any, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf, _ = pair
    path = tmp_path / "pair.pt"
    clf.save(path)
    payload = safe_load(path)
    assert payload["format_version"] == FORMAT_VERSION and len(payload["extra_networks"]) == 1
    loaded = ClothingClassifier.load(path, backbone=tiny_features())
    assert [prep for _, prep in loaded.networks_] == [prep for _, prep in clf.networks_]
    np.testing.assert_array_equal(
        loaded.predict_proba(synthetic_splits.test), clf.predict_proba(synthetic_splits.test)
    )
    assert pd.DataFrame(loaded.history_).equals(pd.DataFrame(clf.history_))  # NaN == NaN

    exported = clf.export(tmp_path / "pair.ts.pt", format="torchscript")
    meta = exported.metadata
    assert [item["input_shape"] for item in meta["inputs"]] == [
        ["batch", 3, 32, 32],
        ["batch", 3, 43, 32],
    ]
    assert [item["input_name"] for item in meta["inputs"]] == ["input", "input_2"]
    assert meta["output_averages"] == 2 and exported.max_abs_diff < 1e-4
    # The exported graph scores real photos as predict_proba does.
    graph = torch.jit.load(str(exported.path))
    paths = synthetic_splits.test["path"].tolist()[:3]
    views = [
        torch.stack([prep.eval_transform()(Image.open(p).convert("RGB")) for p in paths])
        for _, prep in clf.networks_
    ]
    with torch.no_grad():
        np.testing.assert_allclose(graph(*views).numpy(), clf.predict_proba(paths), atol=1e-5)

    # A damaged list of networks is a clear error, not a crash.
    atomic_save({**payload, "extra_networks": "two"}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="'extra_networks' must be a list of networks"):
        ClothingClassifier.load(tmp_path / "bad.pt", backbone=tiny_features())
    wrong = dict(payload["extra_networks"][0], state_dict={"x": torch.zeros(1)})
    atomic_save({**payload, "extra_networks": [wrong]}, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        ClothingClassifier.load(tmp_path / "wrong.pt", backbone=tiny_features())


def test_report_names_both_inputs(
    pair: Any, synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    clf, _ = pair
    pytest.importorskip("matplotlib")
    files = write_report(clf, synthetic_splits.test, tmp_path / "report", max_mistakes=2)
    assert "32 px; 32 x 43 px (width x height): 2 networks, averaged" in files.markdown.read_text()
    assert files.figures["training_curves"].stat().st_size > 0


def test_resuming_two_networks_ends_with_the_same_weights(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    # A fit stopped between the networks: the first one's checkpoint is complete, the
    # second's does not exist. Resuming keeps the first and trains the second as the
    # uninterrupted fit did.
    backbone = tiny_features()  # one starting point for both fits (fit copies it)
    options = {"extra_views": (PORTRAIT,), "val_every": 2, "tta": True}
    first = tmp_path / "fit.ckpt"
    whole = _tiny(backbone=backbone, **options)
    whole.fit(synthetic_splits, checkpoint=first)
    assert network_file(first, 1) == tmp_path / "fit.network2.ckpt"
    network_file(first, 1).unlink()  # as if the fit had stopped before network 2
    resumed = _tiny(backbone=backbone, **options)
    resumed.fit(synthetic_splits, resume=first, checkpoint=first)
    for (a, _), (b, _) in zip(resumed.networks_, whole.networks_, strict=True):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), key
    np.testing.assert_array_equal(
        resumed.predict_proba(synthetic_splits.test), whole.predict_proba(synthetic_splits.test)
    )
    assert resumed.final_val_accuracy_ == whole.final_val_accuracy_
    # Resuming the first network from nothing is still a mistake.
    with pytest.raises(ModelFileError):
        _tiny(backbone=backbone, **options).fit(synthetic_splits, resume=tmp_path / "missing.ckpt")


def test_an_older_fast_model_file_loads_as_the_one_network_it_is(
    synthetic_splits: DatasetSplits, tmp_path: Path
) -> None:
    # A file written before aspect, extra_views and val_every existed: its fit trained one
    # network on the square and validated every epoch, whatever "fast" means now.
    clf = _tiny(recipe="fast", extra_views=()).fit(synthetic_splits)
    clf.save(tmp_path / "new.pt")
    payload = safe_load(tmp_path / "new.pt")
    for name in ("aspect", "extra_views", "val_every"):
        del payload["config"][name]
    del payload["preprocessing"]["aspect"]
    atomic_save(payload, tmp_path / "old.pt")
    loaded = ClothingClassifier.load(tmp_path / "old.pt", backbone=tiny_features())
    assert (loaded.config_.extra_views, loaded.config_.val_every) == ((), 1)
    assert loaded.config_.aspect == loaded.preprocessing_.aspect == 1.0
    assert len(loaded.networks_) == 1
    np.testing.assert_array_equal(
        loaded.predict_proba(synthetic_splits.test), clf.predict_proba(synthetic_splits.test)
    )
