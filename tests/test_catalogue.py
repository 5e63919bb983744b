"""clothingclf.catalogue: a local Dask cluster of 2 worker processes labels photos exactly as
one process's predict does, each worker loading the model once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clothingclf import ClothingClassifier, catalogue
from clothingclf.catalogue import label_partition, label_with_dask, worker_classifier
from clothingclf.exceptions import InvalidParameterError

distributed = pytest.importorskip("distributed", reason="needs the dask extra")


def _loads() -> tuple[int, int]:
    info = catalogue._loaded.cache_info()
    return info.misses, info.hits


def test_two_workers_label_as_one_process_does(
    tiny_model_file: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    photos = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))[:40]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"junk")
    paths = [*photos[:17], str(bad), *photos[17:]]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        table = label_with_dask(
            paths, tiny_model_file, client=client, partition_size=8, top_k=2, engine="torch"
        )
        loads = client.run(_loads)
    assert len(loads) == 2
    assert all(misses <= 1 for misses, _ in loads.values())  # the model loaded once per worker
    assert sum(misses + hits for misses, hits in loads.values()) == 6  # one call per partition
    assert list(table["image"]) == paths
    assert "bad.jpg" in table.loc[17, "error"] and pd.isna(table.loc[17, "label"])
    good = table.drop(index=17).reset_index(drop=True)
    assert (good["error"] == "").all()
    expected = ClothingClassifier.load(tiny_model_file).predict_top(photos, k=2, engine="torch")
    assert list(good["label"]) == [p.label for p in expected]
    assert list(good["label_2"]) == [p.top_k[1][0] for p in expected]
    assert np.allclose(good["score"], [p.score for p in expected], atol=1e-6)


def test_a_replaced_model_file_is_loaded_again(tiny_model_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.safetensors"
    shutil.copyfile(tiny_model_file, copy)
    first = worker_classifier(str(copy))
    assert worker_classifier(str(copy)) is first  # kept while the file is unchanged
    clf = ClothingClassifier.load(copy)
    clf.save(copy, weights_dtype="float16")  # retrained, say: another file at that path
    assert worker_classifier(str(copy)) is not first


def test_a_partition_in_this_process(tiny_model_file: Path, synthetic_root: Path) -> None:
    photos = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))[:3]
    table = label_partition(photos, str(tiny_model_file), options={"engine": "torch"})
    assert list(table.columns) == ["image", "label", "score", "error"]
    assert list(table["label"]) == ClothingClassifier.load(tiny_model_file).predict(photos)
    with pytest.raises(InvalidParameterError, match="partition_size"):
        label_with_dask(photos, tiny_model_file, client=None, partition_size=0)


@pytest.mark.parametrize(
    ("paths", "client", "message"),
    [
        ("photo.jpg", object(), "pass \\[path\\]"),  # one path: not one row per character
        (Path("photo.jpg"), object(), "pass \\[path\\]"),
        (["a.jpg", None], object(), "paths\\[1\\] must be a path"),
        ([b"a.jpg"], object(), "paths\\[0\\] must be a path"),
        (["a.jpg"], None, "client must be a dask.distributed.Client"),
    ],
)
def test_arguments_of_the_wrong_kind_are_refused(
    tiny_model_file: Path, paths: object, client: object, message: str
) -> None:
    pytest.importorskip("dask")
    with pytest.raises(InvalidParameterError, match=message):
        label_with_dask(paths, tiny_model_file, client=client)  # type: ignore[arg-type]
