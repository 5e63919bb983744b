"""clothingclf.checkpoint: atomic writes, and loads that never run code."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from clothingclf import checkpoint
from clothingclf.checkpoint import FORMAT_VERSION, atomic_save, read_model_file, safe_load
from clothingclf.exceptions import ModelFileError, SaveError, UnsupportedFormatError


def _model_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "format": "clothingclf",
        "format_version": FORMAT_VERSION,
        "library_version": "0.1.0",
        "model": {"kind": "torchvision", "name": "resnet18"},
        "state_dict": {"head.weight": torch.ones(2, 3)},
        "classes": ["Hat", "Shoes"],
        "preprocessing": {"image_size": 8, "resize_size": 9},
        "config": {},
        "metrics": {"best_val_accuracy": None},
        "holds": "best",
        "history": [],
    }
    payload.update(changes)
    return payload


class _RunsCode:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_values(tmp_path: Path) -> None:
    payload = _model_payload(history=[{"epoch": 1.0, "val_accuracy": 0.5}])
    atomic_save(payload, tmp_path / "sub" / "m.pt")  # missing folders are created
    loaded = read_model_file(tmp_path / "sub" / "m.pt")
    assert torch.equal(loaded["state_dict"]["head.weight"], torch.ones(2, 3))
    assert loaded["history"] == [{"epoch": 1.0, "val_accuracy": 0.5}]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.pt"]


def test_payload_that_a_safe_load_would_refuse_is_rejected_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"payload\['metrics'\]\['acc'\] is a numpy.float64"):
        atomic_save(_model_payload(metrics={"acc": np.float64(0.5)}), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_failed_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.pt"
    atomic_save(_model_payload(classes=["old", "file"]), target)
    before = target.read_bytes()

    def disk_full(obj: object, stream: Any) -> None:
        stream.write(b"PK\x03\x04 half of a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(SaveError) as caught:
        atomic_save(_model_payload(), target)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value) and "disk is full" in str(caught.value)
    assert target.read_bytes() == before
    assert read_model_file(target)["classes"] == ["old", "file"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_interrupted_write_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(obj: object, stream: Any) -> None:
        stream.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_model_payload(), tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    atomic_save(_model_payload(), tmp_path / "m.pt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "clothingclf", "payload": _RunsCode(marker)}, evil)
    plain_pickle = tmp_path / "evil.pkl"
    plain_pickle.write_bytes(pickle.dumps(_RunsCode(marker)))
    for path in (evil, plain_pickle):
        with pytest.raises(ModelFileError) as caught:
            safe_load(path)
        assert str(path) in str(caught.value)
    with pytest.raises(ModelFileError, match="could run code"):
        safe_load(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", os.urandom(256), b"PK\x03\x04 not really a zip"],
    ids=["empty", "random", "fake-zip"],
)
def test_garbage_is_a_model_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=r"garbage\.pt"):
        safe_load(path)


def test_truncated_file_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    atomic_save(_model_payload(state_dict={"w": torch.zeros(1000)}), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        read_model_file(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        safe_load(tmp_path / "nothing.pt")
    with pytest.raises(ModelFileError, match="is a directory"):
        safe_load(tmp_path)
    with pytest.raises(SaveError, match="is a directory"):
        atomic_save({}, tmp_path)


def test_format_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    atomic_save(_model_payload(format_version=FORMAT_VERSION + 1, library_version="9.0"), path)
    with pytest.raises(
        UnsupportedFormatError,
        match=rf"format version {FORMAT_VERSION + 1}, written by clothingclf",
    ):
        read_model_file(path)
    payload = _model_payload()
    del payload["format"]
    atomic_save(payload, path)
    with pytest.raises(ModelFileError, match="is not a clothingclf model file"):
        read_model_file(path)
    torch.save({"fc.weight": torch.zeros(1)}, path)  # a bare state_dict
    with pytest.raises(ModelFileError, match="bare state_dict"):
        read_model_file(path)
    atomic_save(_model_payload(format_version="1"), path)
    with pytest.raises(ModelFileError, match="format_version '1'"):
        read_model_file(path)
    payload = _model_payload()
    del payload["classes"]
    atomic_save(payload, path)
    with pytest.raises(ModelFileError, match="lacks the keys classes"):
        read_model_file(path)
    torch.save([1, 2], path)
    with pytest.raises(ModelFileError, match="holds a list"):
        read_model_file(path)
    assert checkpoint.MODEL_FILE_KEYS[0] == "format"
