"""clothingclf.checkpoint: safetensors files, atomic writes, loads that never run code."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_save

from clothingclf import checkpoint
from clothingclf.checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    atomic_save,
    read_model_file,
    safe_load,
)
from clothingclf.exceptions import (
    InvalidParameterError,
    ModelFileError,
    SaveError,
    UnsupportedFormatError,
)


def _model_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "format": "clothingclf",
        "format_version": FORMAT_VERSION,
        "library_version": "0.2.0",
        "model": {"kind": "torchvision", "name": "resnet18", "num_features": 3, "num_classes": 2},
        "state_dict": {"head.weight": torch.ones(2, 3)},
        "classes": ["Hat", "Shoes"],
        "preprocessing": {
            "image_size": 8,
            "resize_size": 9,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
        "config": {},
        "metrics": {"best_val_accuracy": None},
        "holds": "best",
        "history": [],
    }
    payload.update(changes)
    return payload


def _rewrite_header(path: Path, edit: Any) -> None:
    """Change the payload JSON in a file's header (the tensors and their hash stay)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = json.loads(header["__metadata__"]["clothingclf"])
    edit(body)
    header["__metadata__"]["clothingclf"] = json.dumps(body)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + length :])


class _RunsCode:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_values_and_kinds(tmp_path: Path) -> None:
    nested = {
        "history": [{"epoch": 1.0, "val_accuracy": float("nan")}],
        "steps": (1, 2),
        "by_id": {0: {"buffer": torch.arange(3)}, 1: None},
        "half": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "bf16": torch.tensor([1.5], dtype=torch.bfloat16),
        "rng": torch.get_rng_state(),
        "channels_last": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        "scalar": torch.tensor(7),
        "inf": float("-inf"),
    }
    atomic_save(_model_payload(extra=nested), tmp_path / "sub" / "m.safetensors")
    loaded = read_model_file(tmp_path / "sub" / "m.safetensors")
    assert torch.equal(loaded["state_dict"]["head.weight"], torch.ones(2, 3))
    extra = loaded["extra"]
    assert extra["steps"] == (1, 2) and extra["by_id"][1] is None
    assert torch.equal(extra["by_id"][0]["buffer"], torch.arange(3))
    assert np.isnan(extra["history"][0]["val_accuracy"]) and extra["inf"] == float("-inf")
    for key in ("half", "bf16", "rng", "channels_last", "scalar"):
        assert extra[key].dtype == nested[key].dtype and torch.equal(extra[key], nested[key])
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.safetensors"]


def test_file_is_plain_safetensors_with_a_hash(tmp_path: Path) -> None:
    from safetensors import safe_open

    atomic_save(_model_payload(), tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as opened:
        assert list(opened.keys()) == ["state_dict/head.weight"]
        metadata = opened.metadata()
    assert metadata["format"] == "clothingclf"
    assert json.loads(metadata["clothingclf"])["classes"] == ["Hat", "Shoes"]
    data = (tmp_path / "m.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert metadata["sha256"] == hashlib.sha256(data[8 + length :]).hexdigest()


def test_an_optimizer_state_round_trips(tmp_path: Path) -> None:
    weight = torch.nn.Parameter(torch.randn(3))
    optimizer = torch.optim.AdamW([weight])
    weight.grad = torch.ones(3)
    optimizer.step()
    atomic_save({"optimizer": optimizer.state_dict()}, tmp_path / "o.safetensors")
    state = safe_load(tmp_path / "o.safetensors")["optimizer"]
    assert state["param_groups"][0]["betas"] == (0.9, 0.999)
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))])
    fresh.load_state_dict(state)
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], optimizer.state[weight]["exp_avg"]
    )


def test_payload_that_a_file_cannot_hold_is_rejected_before_writing(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidParameterError, match=r"payload\['metrics'\]\['acc'\] is a numpy.float64"
    ):
        atomic_save(_model_payload(metrics={"acc": np.float64(0.5)}), tmp_path / "m.st")
    with pytest.raises(InvalidParameterError, match=r"sparse|layout"):
        atomic_save({"w": torch.eye(2).to_sparse()}, tmp_path / "m.st")
    assert not (tmp_path / "m.st").exists()
    with pytest.raises(InvalidParameterError, match="float8"):
        atomic_save({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, tmp_path / "f8.st")
    with pytest.raises(InvalidParameterError, match="beyond 64 bits"):
        atomic_save({"n": 10**400}, tmp_path / "big.st")
    with pytest.raises(InvalidParameterError, match="safetensors allows 100 MB"):
        atomic_save({"card": "x" * (101 * 2**20)}, tmp_path / "huge.st")
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.safetensors"
    atomic_save(_model_payload(classes=["old", "file"]), target)
    before = target.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SaveError) as caught:
        atomic_save(_model_payload(), target)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value) and "disk is full" in str(caught.value)
    assert target.read_bytes() == before
    monkeypatch.undo()
    assert read_model_file(target)["classes"] == ["old", "file"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_interrupted_write_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_model_payload(), tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    atomic_save(_model_payload(), tmp_path / "m.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_pickles_are_refused_unread_and_run_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "code-ran"
    archive = tmp_path / "evil.pt"
    torch.save({"format": "clothingclf", "payload": _RunsCode(marker)}, archive)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_RunsCode(marker)))

    def no_unpickling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(ModelFileError, match=r"torch.save archive.*nothing in it ran"):
        safe_load(archive)
    with pytest.raises(
        ModelFileError,
        match=r"Python pickle that would run code when unpickled \(it calls \w+\.system\): it "
        r"contains code\. clothingclf never unpickles, so it was refused",
    ):
        safe_load(plain)
    for path in (archive, plain):
        with pytest.raises(ModelFileError) as caught:
            read_model_file(path)
        assert str(path) in str(caught.value) and "allowlist" not in str(caught.value)
    assert not marker.exists()


def test_exports_are_named_for_what_they_are(tmp_path: Path) -> None:
    scripted = tmp_path / "m.ts.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still used
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    with pytest.raises(ModelFileError, match=r"TorchScript export.*torch.jit.load"):
        safe_load(scripted)
    onnx_like = tmp_path / "m.onnx"
    onnx_like.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x03onnx" + bytes(64))
    with pytest.raises(ModelFileError, match=r"ONNX model.*onnxruntime"):
        safe_load(onnx_like)


@pytest.mark.parametrize(
    "content",
    [b"", os.urandom(256), b"PK\x03\x04 not really a zip", struct.pack("<Q", 2**40) + b"{}"],
    ids=["empty", "random", "fake-zip", "huge-header-length"],
)
def test_garbage_is_a_model_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=r"garbage\.safetensors"):
        safe_load(path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    atomic_save(_model_payload(state_dict={"w": torch.zeros(1000)}), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="damaged"):
        read_model_file(path)


@pytest.mark.parametrize("where", ["last", "tensors", "header-start", "hash", "length"])
def test_a_changed_byte_is_refused(tmp_path: Path, where: str) -> None:
    """In the tensors the SHA-256 catches a changed byte; in the header's structure the JSON
    parser does (a hand-edited value is the field checks' work, below)."""
    path = tmp_path / "m.safetensors"
    state = {"head.weight": torch.randn(2, 3), "w": torch.randn(999)}
    atomic_save(_model_payload(state_dict=state), path)
    data = bytearray(path.read_bytes())
    position = {
        "last": len(data) - 1,
        "tensors": len(data) - 2000,
        "header-start": 8,
        "hash": data.index(b'"sha256":"') + 10,
        "length": 0,
    }[where]
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"damaged|is not a clothingclf file"):
        read_model_file(path)


def test_a_safetensors_file_of_another_kind_is_named(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(safetensors_save({"fc.weight": torch.zeros(2)}))
    with pytest.raises(ModelFileError, match=r"not one written by clothingclf.*weights="):
        read_model_file(path)


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        safe_load(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelFileError, match="is a directory"):
        safe_load(tmp_path)
    with pytest.raises(SaveError, match="is a directory"):
        atomic_save({}, tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        safe_load(fifo)  # would block forever if it were opened


def test_unreadable_file_is_a_permission_error_not_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.safetensors"
    atomic_save(_model_payload(), path)

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ModelFileError, match="permission denied") as caught:
        safe_load(path)
    assert "damaged" not in str(caught.value) and "corrupt" not in str(caught.value)


def test_format_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
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
    atomic_save({"format": CHECKPOINT_FORMAT, "epoch": 3}, path)
    with pytest.raises(ModelFileError, match="training checkpoint: pass it as fit"):
        read_model_file(path)
    atomic_save(_model_payload(format_version="1"), path)
    with pytest.raises(ModelFileError, match="format_version '1'"):
        read_model_file(path)
    payload = _model_payload()
    del payload["classes"]
    atomic_save(payload, path)
    with pytest.raises(ModelFileError, match="lacks the keys classes"):
        read_model_file(path)
    assert checkpoint.MODEL_FILE_KEYS[0] == "format"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(classes=["Hat", "Hat"]), "not unique: 'Hat' twice"),
        (lambda p: p.update(classes=["Hat", ""]), "non-empty names"),
        (lambda p: p.update(classes="HatShoes"), "must be a list"),
        (
            lambda p: p.update(classes=["Hat", "Shoes", "Dress"]),
            "scores 2 classes but the file names 3",
        ),
        (
            lambda p: p["preprocessing"].update(image_size=60000),
            r"'image_size'\] must be an int from 8 to 2048",
        ),
        (lambda p: p["preprocessing"].update(resize_size=True), r"'resize_size'\] must be an int"),
        (lambda p: p["preprocessing"].update(mean=[0.5, 0.5]), r"'mean'\] must be 3 finite"),
        (
            lambda p: p["preprocessing"].update(mean=[0.5, {"__float__": "nan"}, 0.5]),
            r"'mean'\] must be 3 finite",
        ),
        (lambda p: p["preprocessing"].update(std=[0.5, 0.0, 0.5]), r"'std'\] must be positive"),
        (lambda p: p["model"].update(num_features=10**9), "num_features must be 1 to"),
        (lambda p: p["model"].update(kind="pickle"), "architecture spec of kind"),
        (
            lambda p: p["model"].update(builder_kwargs={"image_size": 10**6}),
            "image_size'\\] must be 8 to 2048",
        ),
        (
            lambda p: p["metrics"].update(best_val_accuracy=7),
            r"best_val_accuracy'\] must be a number in \[0, 1\]",
        ),
        (lambda p: p.update(holds="all"), "'holds' must be 'best' or 'final'"),
        (lambda p: p.update(history="none"), "'history' must be a list"),
        (lambda p: p.update(history=[{"epoch": "one"}]), "'history' must be a list of rows"),
        (lambda p: p["metrics"].update(best_epoch=-1), r"metrics\['best_epoch'\] must be"),
    ],
)
def test_edited_fields_are_refused_with_the_field_named(
    tmp_path: Path, edit: Any, message: str
) -> None:
    path = tmp_path / "m.safetensors"
    atomic_save(_model_payload(), path)
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match=message):
        read_model_file(path)


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    atomic_save(_model_payload(state_dict={"head.weight": torch.full((2, 3), float("nan"))}), path)
    with pytest.raises(ModelFileError, match=r"NaN or infinite values \(head.weight\)"):
        read_model_file(path)


def test_dicts_that_look_like_the_formats_markers_round_trip(tmp_path: Path) -> None:
    card = {
        "a": {"__float__": "nan"},
        "b": {"__tuple__": [1]},
        "c": {"__tensor__": "x"},
        "d": {"__items__": []},
    }
    atomic_save({"card": card}, tmp_path / "m.safetensors")
    assert safe_load(tmp_path / "m.safetensors")["card"] == card
