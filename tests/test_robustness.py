"""Robustness: bad images through predict, bad model files through load and the CLI,
saves that fail part-way, and predict from several threads.

The outcome of each bad input is listed in docs/robustness.rst; every row there names the
test that proves it. Bad images and tables through prepare_dataset are in test_data.py,
hypothesis tests in test_property.py, the SIGKILL test in test_training.py and torchrun in
test_distributed.py.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from _image_zoo import GOOD, big_jpeg, write_zoo
from clothingclf import ClothingClassifier, DatasetSplits, prepare_dataset
from clothingclf.checkpoint import FORMAT_VERSION, atomic_save, safe_load
from clothingclf.cli import main
from clothingclf.exceptions import (
    ClothingClfError,
    DatasetError,
    DatasetNotFoundError,
    ImageNotFoundError,
    InvalidImageError,
    ModelFileError,
    SaveError,
    UnsupportedFormatError,
)


def tiny_features() -> nn.Module:
    """Two small convolutions: trains in a second, enough to give distinct outputs."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    )


def bad_tag_tiff() -> bytes:
    """A 5x4 TIFF whose StripOffsets tag has the type FLOAT: Pillow raises TypeError."""
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4), (1, 2, 3)).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    for entry in range(first + 2, first + 2 + 12 * count, 12):
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 11)  # type FLOAT
    return bytes(data)


def bad_flags_dds() -> bytes:
    """A 4x4 DDS whose pixel-format flags are unknown: Pillow raises NotImplementedError."""
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 255)).save(buffer, format="DDS")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, 80, 0x2000)  # DDS_PIXELFORMAT.dwFlags
    return bytes(data)


def rotated_pattern_jpeg() -> bytes:
    """48x16 pixels, red on the left and blue on the right, stored with EXIF orientation 6."""
    array = np.zeros((16, 48, 3), dtype=np.uint8)
    array[:, :24] = (220, 20, 20)
    array[:, 24:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def _tiny_classifier() -> ClothingClassifier:
    return ClothingClassifier(
        backbone=tiny_features(),
        weights=None,
        recipe="seed",
        image_size=32,
        epochs=1,
        batch_size=16,
        optimizer="adamw",
        lr=3e-3,
        progress=False,
        num_workers=0,
        device="cpu",
        min_scale=1.0,
        flip=False,
    )


@pytest.fixture(scope="module")
def run(
    synthetic_splits: DatasetSplits, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ClothingClassifier, Path]:
    """One epoch of a tiny network, and the training checkpoint it wrote."""
    checkpoint = tmp_path_factory.mktemp("run") / "checkpoint.safetensors"
    torch.manual_seed(0)
    return _tiny_classifier().fit(synthetic_splits, checkpoint=checkpoint), checkpoint


@pytest.fixture(scope="module")
def fitted(run: tuple[ClothingClassifier, Path]) -> ClothingClassifier:
    return run[0]


@pytest.fixture(scope="module")
def saved(fitted: ClothingClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    fitted.save(path)
    return path


@pytest.fixture(scope="module")
def torchvision_file(saved: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model file of a torchvision backbone (SqueezeNet 1.1, random weights), made
    without training: ``load`` rebuilds it from data alone, as the CLI does."""
    from clothingclf.backbones import build_model

    torch.manual_seed(0)
    net, preprocessing, spec = build_model(
        "squeezenet1_1", weights=None, num_classes=4, image_size=32
    )
    payload = safe_load(saved)
    payload.update(
        model=spec,
        state_dict=net.state_dict(),
        preprocessing=preprocessing.to_dict(),
        params={**payload["params"], "backbone": "squeezenet1_1"},
    )
    path = tmp_path_factory.mktemp("torchvision") / "squeezenet.pt"
    atomic_save(payload, path)
    return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    write_zoo(folder)
    (folder / "bad-tag.tif").write_bytes(bad_tag_tiff())
    (folder / "bad-flags.dds").write_bytes(bad_flags_dds())
    (folder / "exif6.jpg").write_bytes(rotated_pattern_jpeg())
    return folder


# ------------------------------------------------------------------ bad images through predict


@pytest.mark.parametrize("name", sorted(GOOD))
def test_predict_converts_odd_but_valid_images(
    fitted: ClothingClassifier, zoo: Path, name: str
) -> None:
    """Alpha, 16-bit, CMYK, palette, EXIF-rotated, 1x1: converted to RGB and labelled."""
    path = zoo / name
    probabilities = fitted.predict_proba(path)
    assert probabilities.shape == (1, len(fitted.classes_))
    assert np.isfinite(probabilities).all() and probabilities.sum() == pytest.approx(1.0)
    label = fitted.predict(path)
    assert label == fitted.classes_[int(probabilities.argmax())]
    # The same file as bytes, and inside a list with another image, gives the same result.
    np.testing.assert_array_equal(fitted.predict_proba(path.read_bytes()), probabilities)
    assert fitted.predict([path, zoo / "plain.jpg"])[0] == label


def test_predict_applies_exif_orientation(fitted: ClothingClassifier, zoo: Path) -> None:
    path = zoo / "exif6.jpg"
    with Image.open(path) as stored:
        upright = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
        sideways = np.asarray(stored.convert("RGB"))
    assert upright.shape == (48, 16, 3)
    from_file = fitted.predict_proba(path)
    np.testing.assert_allclose(from_file, fitted.predict_proba(upright), atol=1e-6)
    assert not np.allclose(from_file, fitted.predict_proba(sideways), atol=1e-6)


def _unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 000 does not stop root (CI containers): make os.access say what others would see.
    path.chmod(0)
    real = os.access
    monkeypatch.setattr(
        "clothingclf.images.os.access",
        lambda p, mode: False if Path(p) == path else real(p, mode),
    )


def _bomb(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (100, 100)).save(path, format="JPEG")  # 10,000 pixels > 2 x 3000
    # The good 24x16 photo beside it stays under the limit as it is resized (55x37).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)


@pytest.mark.parametrize(
    ("name", "error", "reason", "setup"),
    [
        ("empty.jpg", InvalidImageError, "is empty (0 bytes)", None),
        ("truncated.jpg", InvalidImageError, "truncated or corrupt", None),
        ("text.jpg", InvalidImageError, "not an image Pillow can read", None),
        ("folder.jpg", InvalidImageError, "is a directory", None),
        ("bad-tag.tif", InvalidImageError, "truncated or corrupt", None),
        ("bad-flags.dds", InvalidImageError, "truncated or corrupt", None),
        ("missing.jpg", ImageNotFoundError, "does not exist", None),
        ("locked.jpg", InvalidImageError, "not readable (permission denied)", _unreadable),
        ("bomb.jpg", InvalidImageError, "decompression bomb", _bomb),
    ],
)
def test_predict_on_a_bad_image_raises_an_error_naming_it(
    fitted: ClothingClassifier,
    zoo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    error: type[Exception],
    reason: str,
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None,
) -> None:
    path = zoo / name
    if setup is not None:
        path = tmp_path / name
        path.write_bytes(big_jpeg())
        setup(path, monkeypatch)
    good = zoo / "plain.jpg"
    try:
        for x in (path, str(path), [good, path, good]):
            with pytest.raises(error) as caught:
                fitted.predict(x)
            assert str(path) in str(caught.value) and reason in str(caught.value)
            assert isinstance(caught.value, ClothingClfError)
        with pytest.raises(error, match="(?s)" + name.replace(".", r"\.") + ".*" + reason[:6]):
            fitted.predict_top(path)
    finally:
        if path.exists():
            path.chmod(0o644)


@pytest.mark.parametrize(
    ("name", "make", "raised"),
    [
        ("bad-tag.tif", bad_tag_tiff, "TypeError"),
        ("bad-flags.dds", bad_flags_dds, "NotImplementedError"),
    ],
)
def test_decoder_crashes_found_by_fuzzing_are_invalid_images(
    zoo: Path, name: str, make: Callable[[], bytes], raised: str
) -> None:
    """Regression: Pillow raises TypeError / NotImplementedError for these corrupt headers;
    they must be InvalidImageError like every other bad file (else prepare_dataset crashed)."""
    from clothingclf.images import check_image, open_image

    with pytest.raises(InvalidImageError, match=raised):
        open_image(make())
    assert "truncated or corrupt" in (check_image(zoo / name) or "")


# ------------------------------------------------------------------ bad model files


class _Runs:
    """Unpickling this calls ``function(*arguments)``: the proof would be a marker file."""

    def __init__(self, function: Callable[..., Any], *arguments: Any) -> None:
        self.function = function
        self.arguments = arguments

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.function, self.arguments)


def _bad_model_files(folder: Path, saved: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the error must contain). Each of these would create ``marker``
    if loading ran code from it."""
    folder.mkdir(parents=True, exist_ok=True)
    good = safe_load(saved)
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, match: str, write: Callable[[Path], object]) -> None:
        path = folder / name
        write(path)
        files[name] = (path, match)

    touch = f"touch {marker}"
    exec_code = f"open({str(marker)!r}, 'w').close()"
    add("random.pt", "not a clothingclf file", lambda p: p.write_bytes(os.urandom(4096)))
    add("empty.pt", "is empty", lambda p: p.write_bytes(b""))
    add(
        "truncated.pt",
        "damaged",
        lambda p: p.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2]),
    )
    add(
        "evil-zip.pt",
        f"would run code when unpickled (it calls {os.system.__module__}.system): it contains code",
        lambda p: torch.save({**good, "history": _Runs(os.system, touch)}, p),
    )
    add(
        "evil-legacy.pt",
        f"would run code when unpickled (it calls {os.system.__module__}.system): it contains code",
        lambda p: torch.save(
            {"format": "clothingclf", "x": _Runs(os.system, touch)},
            p,
            _use_new_zipfile_serialization=False,
        ),
    )
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        add(
            f"evil-pickle{protocol}.pkl",
            "exec): it contains code. clothingclf never unpickles",
            lambda p, protocol=protocol: p.write_bytes(
                pickle.dumps(_Runs(exec, exec_code), protocol=protocol)
            ),
        )
    add(
        "newer.pt",
        f"format version {FORMAT_VERSION + 1}",
        lambda p: atomic_save({**good, "format_version": FORMAT_VERSION + 1}, p),
    )
    add("state-dict.pt", "is a torch.save archive", lambda p: torch.save(good["state_dict"], p))
    add("tensor.pt", "is a torch.save archive", lambda p: torch.save(torch.zeros(3), p))
    add("images.csv", "not a clothingclf file", lambda p: p.write_text("image,label\n"))
    files["dataset-folder"] = (folder, "is a directory")
    files["missing.pt"] = (folder / "missing.pt", "does not exist")
    return files


BAD_MODEL_NAMES = [
    "random.pt",
    "empty.pt",
    "truncated.pt",
    "evil-zip.pt",
    "evil-legacy.pt",
    "evil-pickle0.pkl",
    "evil-pickle2.pkl",
    f"evil-pickle{pickle.HIGHEST_PROTOCOL}.pkl",
    "newer.pt",
    "state-dict.pt",
    "tensor.pt",
    "images.csv",
    "dataset-folder",
    "missing.pt",
]


@pytest.fixture(scope="module")
def bad_models(
    saved: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, tuple[Path, str]], Path]]:
    folder = tmp_path_factory.mktemp("bad-models")
    marker = folder.parent / f"{folder.name}-code-ran"
    files = _bad_model_files(folder / "files", saved, marker)
    assert sorted(files) == sorted(BAD_MODEL_NAMES)
    yield files, marker
    assert not marker.exists(), "a model file ran code"


@pytest.mark.parametrize("name", BAD_MODEL_NAMES)
def test_load_refuses_a_bad_model_file_and_runs_nothing(
    bad_models: tuple[dict[str, tuple[Path, str]], Path], name: str
) -> None:
    files, marker = bad_models
    path, match = files[name]
    expected = UnsupportedFormatError if name == "newer.pt" else ModelFileError
    with pytest.raises(expected) as caught:
        ClothingClassifier.load(path, backbone=tiny_features())
    assert str(path) in str(caught.value) and match in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", BAD_MODEL_NAMES)
def test_cli_predict_with_a_bad_model_file_is_one_line_and_status_2(
    bad_models: tuple[dict[str, tuple[Path, str]], Path],
    zoo: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    files, marker = bad_models
    path, match = files[name]
    status = main(["predict", "--model", str(path), str(zoo / "plain.jpg")])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clothingclf predict: error: ")
    assert str(path) in lines[0] and match in lines[0]
    assert not marker.exists()


def test_malicious_model_file_runs_nothing_in_a_fresh_process(
    bad_models: tuple[dict[str, tuple[Path, str]], Path], zoo: Path, tmp_path: Path
) -> None:
    """The real entry point: exit status 2, one line on stderr, no traceback, no marker."""
    files, marker = bad_models
    evil = files["evil-zip.pt"][0]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "clothingclf",
            "predict",
            "--model",
            str(evil),
            str(zoo / "plain.jpg"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clothingclf predict: error: The model file")
    assert str(evil) in lines[0] and "it contains code" in lines[0]
    assert not marker.exists()


def test_a_valid_torchvision_model_file_loads_and_predicts(
    torchvision_file: Path, zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control for the two tests below: the undamaged file works, by API and CLI."""
    clf = ClothingClassifier.load(torchvision_file, device="cpu")
    assert clf.predict(zoo / "plain.jpg") in clf.classes_
    assert main(["predict", "--model", str(torchvision_file), str(zoo / "plain.jpg")]) == 0
    assert capsys.readouterr().out.startswith(str(zoo / "plain.jpg"))


def test_model_file_where_a_dataset_is_expected(
    torchvision_file: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = torchvision_file
    from clothingclf import load_splits, prepare_dataset

    with pytest.raises(DatasetError, match="is a file, not a dataset folder"):
        prepare_dataset(saved)
    with pytest.raises(DatasetNotFoundError, match=r"report\.json"):
        load_splits(saved)
    for argv in (
        ["train", str(saved), "-o", str(tmp_path / "m.pt"), "--weights", "none"],
        ["prepare", str(saved)],
        ["evaluate", str(saved), str(saved)],
        ["evaluate", str(synthetic_root), str(saved)],  # arguments swapped
    ):
        status = main(argv)
        err = capsys.readouterr().err
        assert status == 2, argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"clothingclf {argv[0]}: error: "), err
        assert str(saved) in lines[0] or str(synthetic_root) in lines[0]
    assert not (tmp_path / "m.pt").exists()


# Fields of a valid model file replaced by values of the wrong kind: a damaged or hand-made
# file. Each must be a ModelFileError naming the file, never a KeyError or TypeError.
DAMAGED = {
    "unknown torchvision name": {"model": {"name": "resnet81"}},
    "builder kwargs junk": {"model": {"builder_kwargs": {"zzz": 1}}},
    "builder kwargs not a dict": {"model": {"builder_kwargs": [1, 2]}},
    "unknown kind": {"model": {"kind": "keras"}},
    "model not a dict": {"model": "resnet18"},
    "num_classes not a number": {"model": {"num_classes": "four"}},
    "preprocessing not a dict": {"preprocessing": "bilinear"},
    "preprocessing negative size": {"preprocessing": {"image_size": -3}},
    "classes not strings": {"classes": [1, 2, 3, 4]},
    "classes of the wrong number": {"classes": ["a", "b"]},
    "weights of the wrong shape": {"state_dict": {"head.weight": torch.zeros(2, 2)}},
    "state_dict not a dict": {"state_dict": [1, 2]},
    "config not a dict": {"config": "fast"},
    "history not a list of dicts": {"history": [1, 2]},
    "metrics of the wrong kind": {"metrics": {"best_epoch": "x"}},
}


def _damage(payload: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    damaged = dict(payload)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(payload.get(key), dict) and key != "state_dict":
            damaged[key] = {**payload[key], **value}
        elif key == "state_dict":
            damaged[key] = {**payload[key], **value} if isinstance(value, dict) else value
        else:
            damaged[key] = value
    return damaged


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_model_file_is_a_model_file_error(
    torchvision_file: Path, tmp_path: Path, case: str
) -> None:
    payload = safe_load(torchvision_file)
    path = tmp_path / "damaged.pt"
    atomic_save(_damage(payload, DAMAGED[case]), path)
    with pytest.raises(ModelFileError) as caught:
        ClothingClassifier.load(path, device="cpu")
    assert str(path) in str(caught.value)


def test_resume_from_a_bad_file_is_a_model_file_error_and_runs_nothing(
    run: tuple[ClothingClassifier, Path],
    saved: Path,
    bad_models: tuple[dict[str, tuple[Path, str]], Path],
    synthetic_splits: DatasetSplits,
) -> None:
    """fit(resume=...) reads training checkpoints as safely as load() reads models."""
    files, marker = bad_models
    for name in ("random.pt", "truncated.pt", "evil-zip.pt", "evil-pickle2.pkl", "missing.pt"):
        path = files[name][0]
        with pytest.raises(ModelFileError, match=re.escape(str(path))):
            _tiny_classifier().fit(synthetic_splits, resume=path)
    with pytest.raises(ModelFileError, match="is not a clothingclf training checkpoint"):
        _tiny_classifier().fit(synthetic_splits, resume=saved)  # a model file, not a checkpoint
    assert not marker.exists()


# A training checkpoint with one field of the wrong kind or missing.
DAMAGED_CHECKPOINT = [
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "history",
    "epoch",
    "config",
    "best_state",
    "best_epoch",
    "image_passes",
]


@pytest.mark.parametrize("field", [*DAMAGED_CHECKPOINT, "missing epoch"])
def test_resume_from_a_damaged_checkpoint_is_a_model_file_error(
    run: tuple[ClothingClassifier, Path],
    synthetic_splits: DatasetSplits,
    tmp_path: Path,
    field: str,
) -> None:
    payload = safe_load(run[1], what="training checkpoint")
    if field == "missing epoch":
        del payload["epoch"]
    else:
        payload[field] = "x"
    path = tmp_path / "damaged.pt"
    atomic_save(payload, path)
    with pytest.raises(ModelFileError, match=re.escape(str(path))):
        _tiny_classifier().fit(synthetic_splits, resume=path)


# ------------------------------------------------------------------ saves that fail part-way


def _fail_writes_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """The save's stream writes half of what it is given, then raises ``error``."""
    real = os.fdopen

    class HalfWriter(io.FileIO):
        def write(self, data: Any) -> int:
            super().write(bytes(data)[: len(data) // 2])
            raise error

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return HalfWriter(fd, "wb") if "w" in mode else real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)


def _fail_write(monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_writes_with(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))


def _fail_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)


def _fail_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(src: Any, dst: Any) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)


@pytest.mark.parametrize(
    ("fail", "code", "advice"),
    [
        (_fail_write, errno.ENOSPC, "The disk is full"),
        (_fail_fsync, errno.ENOSPC, "The disk is full"),
        (_fail_replace, errno.EACCES, "writable"),
    ],
    ids=["write", "fsync", "rename"],
)
def test_failed_save_keeps_the_previous_model_file(
    fitted: ClothingClassifier,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail: Callable[[pytest.MonkeyPatch], None],
    code: int,
    advice: str,
) -> None:
    target = tmp_path / "model.safetensors"
    fitted.save(target)
    before = target.read_bytes()
    fail(monkeypatch)
    with pytest.raises(SaveError) as caught:
        fitted.save(target)
    monkeypatch.undo()
    error = caught.value
    assert isinstance(error, OSError) and error.errno == code
    assert str(target) in str(error) and advice in str(error) and "unchanged" in str(error)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp left
    assert ClothingClassifier.load(target, backbone=tiny_features()).classes_ == fitted.classes_


def test_ctrl_c_during_a_save_keeps_the_previous_model_file(
    fitted: ClothingClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.safetensors"
    fitted.save(target)
    before = target.read_bytes()
    _fail_writes_with(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fitted.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, {tests!r})
    from clothingclf import ClothingClassifier
    from clothingclf.exceptions import SaveError
    from test_robustness import tiny_features

    clf = ClothingClassifier.load({path!r}, backbone=tiny_features(), device="cpu")
    # A real part-way write failure, no mocks: the kernel refuses to grow any file past
    # {limit} bytes (EFBIG), as a full disk refuses with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
    try:
        clf.save({path!r})
    except SaveError as error:
        print(error.errno, error)
        sys.exit(0)
    sys.exit(3)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="RLIMIT_FSIZE is POSIX")
def test_save_cut_short_by_the_kernel_keeps_the_previous_file(saved: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(saved.read_bytes())
    limit = target.stat().st_size // 2
    code = _FILE_SIZE_LIMIT.format(tests=str(Path(__file__).parent), path=str(target), limit=limit)
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    assert completed.stdout.startswith(f"{errno.EFBIG} ") and str(target) in completed.stdout
    assert target.read_bytes() == saved.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


# ------------------------------------------------------------------ concurrency


def test_predict_from_four_threads_is_exactly_sequential(
    saved: Path, synthetic_splits: DatasetSplits
) -> None:
    clf = ClothingClassifier.load(saved, backbone=tiny_features(), device="cpu")
    paths = [*synthetic_splits.test["path"], *synthetic_splits.val["path"][:2]]
    assert len(paths) == 12
    whole = clf.predict_proba(paths, batch_size=4)
    labels = clf.predict(paths, batch_size=4)
    single = [clf.predict_proba(p) for p in paths]
    start = threading.Barrier(4)

    def work(worker: int) -> tuple[np.ndarray, list[str], dict[int, np.ndarray]]:
        start.wait()
        order = [(worker * 3 + i) % len(paths) for i in range(len(paths))]  # interleaved
        ones = {i: clf.predict_proba(paths[i]) for i in order}
        return clf.predict_proba(paths, batch_size=4), clf.predict(paths, batch_size=4), ones

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    for proba, names, ones in results:
        assert np.array_equal(proba, whole) and names == labels
        for i, value in ones.items():
            assert np.array_equal(value, single[i]), i


# ------------------------------------------------------------------ the docs page


def test_the_robustness_page_cites_only_tests_that_exist() -> None:
    """docs/robustness.rst names the test behind every outcome; a renamed or deleted test
    must not leave the page pointing at nothing."""
    tests = Path(__file__).parent
    page = (tests.parent / "docs" / "robustness.rst").read_text(encoding="utf-8")
    cited = page[page.index("The tests\n") :]
    found: list[tuple[str, str]] = []
    current = ""
    for match in re.finditer(r"``(?:(test_\w+\.py)::)?(test_\w+)``", cited):
        current = match.group(1) or current
        found.append((current, match.group(2)))
    assert len(found) > 40
    for file, name in found:
        assert re.search(rf"^def {name}\(", (tests / file).read_text(encoding="utf-8"), re.M), (
            f"{file}::{name} is cited in docs/robustness.rst but does not exist"
        )


def _special_paths(folder: Path) -> dict[str, Path]:
    """A path of each kind that is no readable regular file."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    loop = folder / "loop"
    if not loop.is_symlink():
        os.symlink(loop, loop)
    (folder / "dir").mkdir(exist_ok=True)
    return {
        "fifo": fifo,
        "symlink-loop": loop,
        "directory": folder / "dir",
        "name-too-long": folder / ("x" * 300),
        "missing": folder / "missing",
    }


_PATH_TAKERS: dict[str, Callable[[Any, Path], object]] = {
    "ClothingClassifier.load": lambda ctx, p: ClothingClassifier.load(p),
    "fit(resume=)": lambda ctx, p: _tiny_classifier().fit(ctx["splits"], resume=p),
    "prepare_dataset": lambda ctx, p: __import__("clothingclf").prepare_dataset(p),
    "load_splits": lambda ctx, p: __import__("clothingclf").load_splits(p),
    "open_image": lambda ctx, p: __import__("clothingclf").open_image(p),
    "predict": lambda ctx, p: ctx["fitted"].predict(p),
    "predict([good, bad])": lambda ctx, p: ctx["fitted"].predict([ctx["good"], p]),
    "save": lambda ctx, p: ctx["fitted"].save(p),
    "export": lambda ctx, p: ctx["fitted"].export(p, format="torchscript", verify=False),
}
# Writers make a missing file: that one is no error for them.
_WRITERS = ("save", "export")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("function", sorted(_PATH_TAKERS))
def test_every_path_taking_function_refuses_special_files_without_hanging(
    function: str,
    fitted: ClothingClassifier,
    synthetic_splits: DatasetSplits,
    zoo: Path,
    tmp_path: Path,
) -> None:
    """A FIFO would block a reader forever; a link loop or an over-long name raise OSErrors
    of their own. Each is a clothingclf error naming the path, for every function."""
    context = {"splits": synthetic_splits, "fitted": fitted, "good": zoo / "plain.jpg"}
    for kind, path in _special_paths(tmp_path / "special").items():
        if function == "prepare_dataset" and kind == "directory":
            continue  # an empty folder is a dataset folder without images.csv: covered above
        if function in _WRITERS and kind == "missing":
            continue
        with pytest.raises(ClothingClfError) as caught:
            _PATH_TAKERS[function](context, path)
        assert str(path)[:60] in str(caught.value), (function, kind, str(caught.value))
    fifo = tmp_path / "special" / "fifo"
    assert fifo.exists() and not fifo.is_file()  # no writer replaced it


_NOT_PATHS = {"None": None, "an int": 5, "bytes": b"model.safetensors", "NUL": "a\0b.safetensors"}


@pytest.mark.parametrize("kind", list(_NOT_PATHS))
def test_every_path_taking_function_refuses_what_is_no_path(
    fitted: ClothingClassifier, tmp_path: Path, kind: str
) -> None:
    """None, an int, bytes and a name with a NUL byte (which no file can have) get the
    library's error naming what was expected, never TypeError or "embedded null byte"."""
    from clothingclf import open_image
    from clothingclf.checkpoint import read_training_checkpoint

    value: Any = _NOT_PATHS[kind]
    calls: dict[str, tuple[Callable[[], object], type[ClothingClfError]]] = {
        "load": (lambda: ClothingClassifier.load(value), ModelFileError),
        "safe_load": (lambda: safe_load(value), ModelFileError),
        "read_training_checkpoint": (lambda: read_training_checkpoint(value), ModelFileError),
        "save": (lambda: fitted.save(value), ClothingClfError),
        "atomic_save": (lambda: atomic_save({"x": 1}, value), ClothingClfError),
        "export": (lambda: fitted.export(value, format="torchscript"), ClothingClfError),
    }
    if kind != "bytes":  # bytes are an encoded image to open_image and predict
        calls["open_image"] = (lambda: open_image(value), InvalidImageError)
    for name, (call, error) in calls.items():
        with pytest.raises(error, match=r"must be a path|NUL byte|Cannot read an image") as info:
            call()
        assert "TypeError" not in str(info.value), name
    assert list(tmp_path.iterdir()) == []


def test_a_name_longer_than_the_file_system_allows_is_the_libraries_error(
    fitted: ClothingClassifier, tmp_path: Path
) -> None:
    """An over-long name (to every path-taking function, and as an image id of a table) is
    a clothingclf error naming it, or a photo reported missing: never OSError ENAMETOOLONG."""
    from clothingclf import open_image
    from clothingclf.checkpoint import read_training_checkpoint

    long = str(tmp_path / ("x" * 300))
    calls: dict[str, Callable[[], object]] = {
        "load": lambda: ClothingClassifier.load(long),
        "safe_load": lambda: safe_load(long),
        "read_training_checkpoint": lambda: read_training_checkpoint(long),
        "save": lambda: fitted.save(long),
        "atomic_save": lambda: atomic_save({"x": 1}, long),
        "export": lambda: fitted.export(long, format="torchscript"),
        "open_image": lambda: open_image(long),
        "predict": lambda: fitted.predict(long),
        "prepare_dataset": lambda: prepare_dataset(long),
    }
    for name, call in calls.items():
        with pytest.raises(ClothingClfError, match=r"too long|longer than|does not exist") as info:
            call()
        assert "x" * 40 in str(info.value), name
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    for index in range(6):
        Image.new("RGB", (16, 16), (index * 40, 0, 0)).save(folder / "images" / f"i{index}.jpg")
    rows = [f"i{index},{'Hat' if index % 2 else 'Cap'}" for index in range(6)]
    (folder / "images.csv").write_text("image,label\n" + "\n".join([*rows, "y" * 300 + ",Hat"]))
    splits = prepare_dataset(folder, output_dir=tmp_path / "out")
    assert len(splits.train) + len(splits.val) + len(splits.test) == 6


def test_a_nul_byte_in_a_listed_path_is_reported_and_skipped(
    torchvision_file: Path, synthetic_splits: DatasetSplits, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    good = [str(p) for p in synthetic_splits.test["path"][:2]]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{good[0]}\nbad\0name.jpg\n{good[1]}\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    command = ["predict", "--model", str(torchvision_file), "--files-from", str(listing)]
    command += ["-o", str(out)]
    assert main([*command, "--no-progress"]) == 1  # one photo could not be read
    err = capsys.readouterr().err
    assert "NUL byte" in err and "Traceback" not in err
    assert out.read_text().count("\n") == 3  # the header and the two good photos
