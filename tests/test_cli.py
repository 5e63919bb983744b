"""clothingclf.cli: exit status and argument handling, the same for every sub-command.

Every sub-command with every kind of bad argument, and every kind of error the library
raises, gives one line on stderr, no traceback, and exit status 2 when the command line is
wrong, 1 when the work failed (an unexpected error says so, and shows its traceback with
CLOTHINGCLF_DEBUG=1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from clothingclf.cli import exit_status, main
from clothingclf.exceptions import (
    DatasetError,
    ExportError,
    InvalidParameterError,
    MissingDependencyError,
    ModelFileError,
    SaveError,
    TrainingDivergedError,
)

# Each case: the arguments, with {model} a model file, {data} a dataset root, {text} a text
# file, {dir} a folder, {fifo} a FIFO, {missing} a path that does not exist, {image} a photo
# and {out} a fresh output path. Grouped by the kind of mistake, for every sub-command.
BAD_ARGUMENTS: dict[str, list[list[str]]] = {
    "unknown option": [
        ["prepare", "{data}", "--nope"],
        ["analyze", "resnet18", "--nope"],
        ["train", "{data}", "-o", "{out}", "--nope"],
        ["evaluate", "{model}", "{data}", "--nope"],
        ["predict", "{image}", "--nope"],
        ["demo", "--nope"],
        ["report", "{model}", "{data}", "-o", "{out}", "--nope"],
        ["export", "{model}", "-o", "{out}", "--nope"],
        ["frobnicate"],
    ],
    "missing argument": [
        ["prepare"],
        ["analyze"],
        ["train", "{data}"],
        ["evaluate", "{model}"],
        ["predict"],
        ["report", "{model}", "{data}"],
        ["export", "{model}"],
        ["predict", "{image}", "--model"],
    ],
    "a word where a number belongs": [
        ["prepare", "{data}", "--test-size", "abc"],
        ["prepare", "{data}", "--seed", "abc"],
        ["analyze", "resnet18", "--input-size", "abc"],
        ["train", "{data}", "-o", "{out}", "--lr", "abc"],
        ["train", "{data}", "-o", "{out}", "--epochs", "two"],
        ["predict", "{image}", "--top-k", "x"],
        ["demo", "--seed", "abc"],
        ["report", "{model}", "{data}", "-o", "{out}", "--mistakes", "many"],
        ["export", "{model}", "-o", "{out}", "--opset", "seventeen"],
    ],
    "a number out of range": [
        ["prepare", "{data}", "--test-size", "2"],
        ["prepare", "{data}", "--val-size", "-0.5"],
        ["prepare", "{data}", "--workers", "0"],
        ["analyze", "resnet18", "--input-size", "0"],
        ["analyze", "resnet18", "--num-classes", "-1"],
        ["analyze", "{model}", "--network", "9"],
        ["train", "{data}", "-o", "{out}", "--epochs", "0"],
        ["train", "{data}", "-o", "{out}", "--lr", "-1"],
        ["train", "{data}", "-o", "{out}", "--aspect", "0"],
        ["train", "{data}", "-o", "{out}", "--image-size", "4"],
        ["train", "{data}", "-o", "{out}", "--mixup-alpha", "-2"],
        ["predict", "{image}", "--top-k", "0"],
        ["predict", "{image}", "--batch-size", "0"],
        ["demo", "--n-per-class", "0"],
        ["demo", "--image-size", "100000"],
        ["report", "{model}", "{data}", "-o", "{out}", "--batch-size", "0"],
        ["export", "{model}", "-o", "{out}", "--opset", "2"],
        ["export", "{model}", "-o", "{out}", "--opset", "99"],
    ],
    "a choice that is not offered": [
        ["analyze", "resnet_nine"],
        ["train", "{data}", "-o", "{out}", "--recipe", "slow"],
        ["train", "{data}", "-o", "{out}", "--backbone", "resnet_nine"],
        ["train", "{data}", "-o", "{out}", "--device", "abacus"],
        ["evaluate", "{model}", "{data}", "--split", "holdout"],
        ["predict", "{image}", "--device", "abacus"],
        ["report", "{model}", "{data}", "-o", "{out}", "--split", "holdout"],
        ["export", "{model}", "-o", "{out}", "--format", "tflite"],
    ],
    "a missing path": [
        ["prepare", "{missing}"],
        ["analyze", "{missing}.safetensors"],
        ["train", "{missing}", "-o", "{out}"],
        ["train", "{data}", "-o", "{out}", "--weights", "{missing}.pth"],
        ["evaluate", "{missing}", "{data}"],
        ["evaluate", "{model}", "{missing}"],
        ["predict", "{image}", "--model", "{missing}"],
        ["report", "{missing}", "{data}", "-o", "{out}"],
        ["report", "{model}", "{missing}", "-o", "{out}"],
        ["export", "{missing}", "-o", "{out}"],
    ],
    "a folder where a file belongs": [
        ["evaluate", "{dir}", "{data}"],
        ["predict", "{image}", "--model", "{dir}"],
        ["report", "{dir}", "{data}", "-o", "{out}"],
        ["export", "{model}", "-o", "{dir}"],
        ["train", "{data}", "-o", "{dir}"],
    ],
    "a FIFO where a file belongs": [
        ["prepare", "{fifo}"],
        ["evaluate", "{fifo}", "{data}"],
        ["predict", "{image}", "--model", "{fifo}"],
        ["export", "{fifo}", "-o", "{out}"],
        ["export", "{model}", "-o", "{fifo}"],
        ["train", "{data}", "-o", "{fifo}"],
        ["predict", "--model", "{model}", "--files-from", "{fifo}"],
        ["predict", "--model", "{model}", "--files-from", "{dir}"],
    ],
    "a file that is not what the command reads": [
        ["prepare", "{text}"],
        ["prepare", "{model}"],
        ["analyze", "{text}"],
        ["train", "{model}", "-o", "{out}"],
        ["train", "{data}", "-o", "{out}", "--resume", "{text}"],
        ["evaluate", "{text}", "{data}"],
        ["evaluate", "{data}", "{model}"],
        ["predict", "{image}", "--model", "{text}"],
        ["predict", "{image}", "--model", "{image}"],
        ["report", "{model}", "{text}", "-o", "{out}"],
        ["export", "{image}", "-o", "{out}"],
    ],
    "an output that is not the command's own": [
        ["prepare", "{data}", "-o", "{text}"],
        ["prepare", "{data}", "-o", "{text}/below"],
        ["demo", "-o", "{text}"],
        ["demo", "-o", "{data}"],
        ["report", "{model}", "{data}", "-o", "{text}"],
    ],
}

CASES = [(kind, argv) for kind, cases in BAD_ARGUMENTS.items() for argv in cases]


@pytest.fixture(scope="module")
def places(
    tiny_model_file: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("places")
    (folder / "notes.txt").write_text("not a model, not a table\n")
    (folder / "empty").mkdir()
    fifo = folder / "pipe"
    os.mkfifo(fifo)
    image = next((synthetic_root / "images").iterdir())
    return {
        "model": str(tiny_model_file),
        "data": str(synthetic_root),
        "text": str(folder / "notes.txt"),
        "dir": str(folder / "empty"),
        "fifo": str(fifo),
        "missing": str(folder / "nothing-here"),
        "image": str(image),
    }


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        status = int(stop.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, [line for line in err.splitlines() if line.strip()]


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
@pytest.mark.parametrize(("kind", "argv"), CASES, ids=[f"{k}: {' '.join(a)}" for k, a in CASES])
def test_every_bad_argument_is_one_line_and_status_2(
    kind: str,
    argv: list[str],
    places: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {p: Path(p).stat().st_mtime_ns for p in (places["text"], places["model"])}
    filled = [a.format(out=str(tmp_path / "out.safetensors"), **places) for a in argv]
    status, lines = _run(filled, capsys)
    assert status == 2, (kind, lines)
    assert len(lines) == 1 and "error:" in lines[0], lines
    assert "unexpected" not in lines[0], lines  # a clothingclf error, not a caught accident
    assert {p: Path(p).stat().st_mtime_ns for p in before} == before  # nothing overwritten


def test_failures_are_one_line_and_status_1(
    places: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Some photos unreadable: the others are labelled, each failure is one line, status 1.
    status = main(["predict", "--model", places["model"], places["image"], places["missing"]])
    out, err = capsys.readouterr()
    assert status == 1 and out.startswith(places["image"] + "\t")
    assert [line for line in err.splitlines() if "error" in line] == [
        f"clothingclf predict: {places['missing']}: error: "
        + err.split(f"{places['missing']}: error: ")[1].splitlines()[0]
    ]
    # The system refuses the write: status 1, and no traceback.
    status, lines = _run(
        ["export", places["model"], "--format", "torchscript", "-o", "/proc/clothingclf.pt"],
        capsys,
    )
    assert status == 1 and len(lines) == 1 and "Could not write" in lines[0], lines
    # A training whose loss becomes infinite.
    argv = ["train", places["data"], "-o", str(tmp_path / "m.safetensors"), "--recipe", "seed"]
    argv += ["--weights", "none", "--epochs", "1", "--image-size", "16", "--lr", "1e30"]
    argv += ["--optimizer", "sgd", "--workers", "0", "--no-progress", "--device", "cpu"]
    status, lines = _run(argv, capsys)
    assert status == 1 and len(lines) == 1 and "loss" in lines[0], lines
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidParameterError("x"), 2),
        (DatasetError("x"), 2),
        (ModelFileError("x"), 2),
        (SaveError("refused: not the command's own"), 2),
        (SaveError(28, "No space left on device"), 1),
        (TrainingDivergedError("x"), 1),
        (ExportError("x"), 1),
        (MissingDependencyError("x"), 1),
    ],
)
def test_exit_status_tells_input_errors_from_failures(error: Exception, status: int) -> None:
    assert exit_status(error) == status  # type: ignore[arg-type]


def test_errors_are_one_line_with_status_2(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"garbage")
    assert main(["predict", "--model", str(garbage), "x.jpg"]) == 2
    assert capsys.readouterr().err.startswith("clothingclf predict: error: The model file")
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "m.pt")]) == 2
    assert "neither images.csv" in capsys.readouterr().err
    status = main(["train", str(synthetic_root), "-o", "m.pt", "--backbone", "resnet81"])
    assert status == 2 and "Did you mean resnet18" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "resnet18", "--num-classes", "-1"],
        ["analyze", "resnet18", "--input-size", "0"],
        ["analyze", "resnet18", "--network", "0"],
        ["predict", "x.jpg", "--batch-size", "0"],
        ["predict", "x.jpg", "--top-k", "zero"],
        ["train", "data", "-o", "m.safetensors", "--epochs", "0"],
        ["train", "data", "-o", "m.safetensors", "--image-size", "4"],
        ["prepare", "data", "--workers", "0"],
        ["demo", "--n-per-class", "0"],
        ["demo", "--epochs", "-3"],
        ["demo", "--image-size", "100000"],
        ["export", "m.safetensors", "-o", "m.onnx", "--opset", "2"],
        ["report", "m.safetensors", "data", "-o", "r", "--mistakes", "-1"],
        ["evaluate", "m.safetensors"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in captured.err


def test_a_bad_value_in_the_library_is_one_line_and_status_2(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", str(synthetic_root), "--test-size", "2"]) == 2
    assert main(["prepare", str(synthetic_root), "-o", str(tmp_path / "f" / "below")]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["prepare", str(synthetic_root), "-o", str(tmp_path / "file" / "below")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(
        line.startswith("clothingclf prepare: error: ") for line in lines
    )
    assert "test_size must be a fraction" in lines[0] and "is a file" in lines[1]


def test_an_unexpected_error_is_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clothingclf import analysis

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(analysis, "meta_model", broken)
    assert main(["analyze", "resnet18"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "clothingclf analyze: error: RuntimeError: a bug (unexpected: set CLOTHINGCLF_DEBUG=1 "
        "to see where, and please report it)"
    ]
    monkeypatch.setenv("CLOTHINGCLF_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["analyze", "resnet18"])
