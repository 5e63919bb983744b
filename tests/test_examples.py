"""Every script in examples/ runs end to end on synthetic data, in a subprocess as a user would."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Run(NamedTuple):
    stdout: str
    workdir: Path


# Runs a script with torch and clothingclf made unimportable.
_WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = sys.modules['clothingclf'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
# Runs a script whose fits train in float32 on every machine, as the tests in this process
# do (conftest.py: the oneDNN bfloat16 convolution bug at the tests' tiny image sizes).
_FLOAT32 = (
    "import runpy, sys; from clothingclf.training import precision; "
    "precision._cpu_has_native_bf16 = lambda: False; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _start(
    script: str, *args: str | Path, cwd: Path, without_torch: bool = False
) -> subprocess.Popen[str]:
    # One thread each: the examples run at once on a small machine, and oversubscribed cores
    # would make them slower, not faster.
    env = {**os.environ, "PYTHONWARNINGS": "error", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WITHOUT_TORCH if without_torch else _FLOAT32,
            str(EXAMPLES / script),
            *map(str, args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def runs(
    synthetic_root: Path, tiny_model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Run every example once, all at the same time, and check they exit with 0."""
    names = ("train", "predict", "pandas", "rf", "onnx", "onnx_pair")
    dirs = {name: tmp_path_factory.mktemp(name) for name in names}
    photos = dirs["predict"] / "photos"
    photos.mkdir()
    for image in sorted((synthetic_root / "images").glob("*.jpg"))[:5]:
        (photos / image.name).write_bytes(image.read_bytes())
    (photos / "broken.jpg").write_bytes(b"not an image")
    from clothingclf import ClothingClassifier

    ClothingClassifier.load(tiny_model_file, device="cpu").export(dirs["onnx"] / "model.onnx")
    # Two networks, the second on the whole photo at 3:4 (the fast recipe's pair), with
    # flip test-time augmentation: one graph with two inputs.
    from _nets import resnet_classifier
    from clothingclf import prepare_dataset

    pair = resnet_classifier(device="cpu", extra_views=(4 / 3,), tta=True).fit(
        prepare_dataset(synthetic_root)
    )
    pair.save(dirs["onnx_pair"] / "pair.safetensors")
    pair.export(dirs["onnx_pair"] / "model.onnx")
    commands = {
        "train": (
            "train_clothing_dataset.py",
            synthetic_root,
            "--output",
            "model.safetensors",
            "--backbone",
            "resnet18",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--workers",
            "0",
            "--quiet",
            "--report",
            "report",
        ),
        "predict": (
            "predict_folder_to_csv.py",
            tiny_model_file,
            photos,
            "--output",
            "predictions.csv",
            "--top-k",
            "2",
        ),
        "pandas": ("pandas_pipeline.py", tiny_model_file, synthetic_root, "-o", "review.csv"),
        "rf": (
            "analyse_custom_module.py",
            "--input-size",
            "64",
            "--width",
            "8",
            "--data",
            synthetic_root,
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--output",
            "small.safetensors",
        ),
        "onnx": ("onnx_without_torch.py", "model.onnx", *sorted(photos.glob("[!b]*.jpg"))),
        "onnx_pair": ("onnx_without_torch.py", "model.onnx", *sorted(photos.glob("[!b]*.jpg"))),
    }
    started = {
        name: _start(*cmd, cwd=dirs[name], without_torch=name.startswith("onnx"))
        for name, cmd in commands.items()
    }
    results = {}
    for name, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[name] = (process.returncode, stdout, stderr)
    for name, (code, stdout, stderr) in results.items():
        assert code == 0, f"{commands[name][0]} failed ({code}):\n{stdout}\n{stderr}"
    return {name: Run(results[name][1], dirs[name]) for name in commands}


def test_every_example_is_tested() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == [
        "analyse_custom_module.py",
        "onnx_without_torch.py",
        "pandas_pipeline.py",
        "predict_folder_to_csv.py",
        "train_clothing_dataset.py",
    ]
    for name in scripts:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert text.startswith('"""') and "argparse" in text, f"{name}: docstring and argparse"


def test_train_clothing_dataset(runs: dict[str, Run]) -> None:
    out, folder = runs["train"]
    assert "Test split:" in out and "accuracy" in out and "saved model.safetensors" in out
    assert (folder / "model.safetensors").is_file()
    assert (folder / "report" / "report.html").is_file()
    assert (folder / "report" / "confusion_matrix.png").is_file()


def test_predict_folder_to_csv(runs: dict[str, Run]) -> None:
    out, folder = runs["predict"]
    assert "labelled 5 of 6 images" in out
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["file"] for r in rows] == sorted(p.name for p in (folder / "photos").iterdir())
    broken = next(r for r in rows if r["file"] == "broken.jpg")
    assert broken["label"] == "" and "not an image" in broken["error"]
    good = [r for r in rows if r["file"] != "broken.jpg"]
    classes = {"Dress", "Pants", "Shoes", "T-Shirt"}
    assert len(good) == 5
    assert all(r["label"] in classes and r["label_2"] in classes for r in good)
    assert all(float(r["score"]) >= float(r["score_2"]) for r in good)


def test_pandas_pipeline(runs: dict[str, Run]) -> None:
    out, folder = runs["pandas"]
    assert "96 photos, 96 with a label the model knows" in out
    review = pd.read_csv(folder / "review.csv")
    assert list(review.columns) == ["image", "label", "predicted", "score", "path"]
    assert ((review["label"] != review["predicted"]) | (review["score"] < 0.6)).all()


def test_analyse_custom_module(runs: dict[str, Run]) -> None:
    out, folder = runs["rf"]
    assert "SmallCNN at 1 x 3 x 64 x 64" in out
    assert "receptive field:   31 px, stride 16" in out
    assert "from gradients:    31 x 31 px" in out
    assert "reloaded predictions identical: True" in out
    assert (folder / "small.safetensors").is_file()


@pytest.mark.parametrize("run", ["onnx", "onnx_pair"])
def test_onnx_without_torch_gives_the_probabilities_of_predict(
    runs: dict[str, Run], tiny_model_file: Path, run: str
) -> None:
    from clothingclf import ClothingClassifier

    out = runs[run].stdout
    photos = sorted((runs["predict"].workdir / "photos").glob("[!b]*.jpg"))
    model = tiny_model_file if run == "onnx" else runs[run].workdir / "pair.safetensors"
    expected = ClothingClassifier.load(model, device="cpu").predict_top(photos, k=1)
    lines = out.splitlines()
    assert len(lines) == len(photos) == 5
    for line, photo, prediction in zip(lines, photos, expected, strict=True):
        path, ranked = line.split("\t")
        label, score = ranked.split()
        assert path == str(photo) and label == prediction.label
        assert abs(float(score) - prediction.score) <= 1e-4
