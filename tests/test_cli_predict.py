"""clothingclf.cli.predict: the predict command, text and JSON, one line per bad image; a
folder or a file list streamed to CSV or JSON Lines, resumable, never over a stranger's file."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from pathlib import Path

import pytest

from clothingclf import ClothingClassifier
from clothingclf.cli import main


def test_predict_text_and_json(
    trained: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sorted((synthetic_root / "images").glob("*.jpg"))[:3]
    assert main(["predict", "--model", str(trained), *map(str, images), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(str(images[0]))
    assert len(lines[0].split("\t")[1].split("  ")) == 2

    assert (
        main(["predict", "--model", str(trained), *map(str, images), "--json", "--batch-size", "2"])
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == list(map(str, images))
    clf = ClothingClassifier.load(trained)
    assert [r["label"] for r in results] == clf.predict(list(images))
    assert set(results[0]) == {"image", "label", "score", "top_k"} and len(results[0]["top_k"]) == 1


def test_predict_bad_image_is_one_line_and_nonzero_exit(
    trained: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = sorted((synthetic_root / "images").glob("*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    status = main(["predict", "--model", str(trained), str(good), str(bad), str(missing), "--json"])
    captured = capsys.readouterr()
    assert status == 1
    assert [r["image"] for r in json.loads(captured.out)] == [str(good)]
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith(f"clothingclf predict: {bad}: error: ")
    assert errors[1].startswith(f"clothingclf predict: {missing}: error: ")
    assert errors[2] == "clothingclf predict: 2 of 3 images failed"
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", None])
def test_predict_min_score_leaves_the_unsure_photos_unlabelled(
    trained: Path,
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str | None,
) -> None:
    images = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))[:12]
    predictions = ClothingClassifier.load(trained).predict_top(images, k=2)
    threshold = sorted(p.score for p in predictions)[6]  # about half below it
    command = ["predict", "--model", str(trained), *images, "--top-k", "2"]
    command += ["--min-score", str(threshold)]
    if suffix is not None:
        out = tmp_path / f"labels{suffix}"
        assert main([*command, "-o", str(out)]) == 0
        got = _labels(out)
        capsys.readouterr()
        assert main([*command, "-o", str(out)]) == 0  # resumes over the empty labels
        assert "0 labelled, 12 already in" in capsys.readouterr().err
        if suffix == ".csv":
            with out.open(encoding="utf-8", newline="") as file:
                rows = list(csv.DictReader(file))
            assert [r["guess"] for r in rows] == [p.label for p in predictions]
            assert (
                main(["predict", "--model", str(trained), *images, "--top-k", "2", "-o", str(out)])
                == 2
            )
            assert "and --min-score" in capsys.readouterr().err  # another layout: refused
    else:
        assert main(command) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        got = {
            line.split("\t")[0]: "" if "(unsure)" in line else line.split("\t")[1].split()[0]
            for line in lines
        }
    for image, p in zip(images, predictions, strict=True):
        sure = p.score >= threshold
        assert got[image] in ((p.label,) if sure else ("", None)), (image, p)
    assert any(v in ("", None) for v in got.values()) and any(got.values())
    with pytest.raises(SystemExit) as usage:  # argparse's usage error, status 2
        main([*command[:-1], "1.5"])
    assert usage.value.code == 2
    assert "--min-score: must be from 0 to 1; found 1.5" in capsys.readouterr().err


def _labels(path: Path) -> dict[str, str]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as file:
            return {row["image"]: row["label"] for row in csv.DictReader(file)}
    return {r["image"]: r["label"] for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_streams_a_folder_to_a_file_and_resumes(
    trained: Path,
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
) -> None:
    images = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))
    out = tmp_path / f"labels{suffix}"
    model = ["--model", str(trained)]
    # A first run that labelled 5 photos, then was killed in the middle of a line.
    assert main(["predict", *model, *images[:5], "-o", str(out)]) == 0
    with out.open("a", encoding="utf-8") as file:
        file.write(f"{images[5]},Dre" if suffix == ".csv" else '{"image": "' + images[5])
    capsys.readouterr()
    assert main(["predict", *model, str(synthetic_root / "images"), "-o", str(out)]) == 0
    assert f"{len(images) - 5} labelled, 5 already in" in capsys.readouterr().err
    labels = _labels(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(images) + (suffix == ".csv")  # one row each, the half line gone
    assert list(labels) == images  # sorted folder order, each once
    clf = ClothingClassifier.load(trained)
    assert list(labels.values()) == clf.predict(images)
    before = out.read_bytes()
    assert main(["predict", *model, str(synthetic_root / "images"), "-o", str(out)]) == 0
    assert f"0 labelled, {len(images)} already in" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_predict_file_list_reports_and_skips_bad_photos(
    trained: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))[:4]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"junk")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([images[0], str(bad), "", *images[1:], images[0]]) + "\n")
    out = tmp_path / "out.jsonl"
    command = ["predict", "--model", str(trained), "--files-from", str(listing), "-o", str(out)]
    status = main(command)
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    assert f"{bad}: error: " in captured.err and "4 labelled, 0 already in" in captured.err
    assert list(_labels(out)) == images  # the bad one skipped, the duplicate labelled once
    # A rerun retries only the bad photo.
    assert main(command) == 1
    assert "0 labelled, 4 already in" in capsys.readouterr().err


def test_a_list_written_through_a_pipe_is_read_and_one_nobody_writes_does_not_block(
    trained: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--files-from <(find ...)`` is a FIFO with a writer: read. A FIFO that no program
    writes to: refused at once (status 2), where a plain open would wait forever."""
    images = sorted(map(str, (synthetic_root / "images").glob("*.jpg")))[:3]
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)
    command = ["predict", "--model", str(trained), "--files-from", str(fifo)]
    assert main(command) == 2
    assert "no program writes to" in capsys.readouterr().err

    def write() -> None:
        with fifo.open("w") as pipe:
            time.sleep(0.3)  # the reader is already waiting: it must not take this as empty
            pipe.write("\n".join(images) + "\n")

    writer = threading.Thread(target=write)
    writer.start()
    assert main([*command, "--json"]) == 0
    writer.join()
    assert [row["image"] for row in json.loads(capsys.readouterr().out)] == images


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("prices.csv", "name,price\nhat,3\n", [], "has the columns name, price"),
        ("prices.csv", "a,b\n1,2", [], "has the columns a, b"),  # no final newline either
        ("notes.jsonl", "my own notes", [], "holds no complete line"),
        ("notes.jsonl", "[1, 2]\nmore", [], "line 1 has no image"),
        # a user's JSON Lines file with an "image" field is not taken for ours (nor cut)
        ("notes.jsonl", '{"image": "a.jpg", "note": "x"}\n{"image": "b', [], "not a record"),
        (
            "notes.jsonl",
            '{"image": "a.jpg", "label": 1, "score": 1, "top_k": []}\n',
            [],
            "not a record",
        ),
        ("labels.csv", "image,label,score\n", ["--top-k", "2"], "with --top-k 2"),
        ("labels.csv", None, ["--json"], "--json prints to stdout"),
        ("labels.txt", None, [], ".csv or .jsonl"),
        ("labels.csv", None, ["--decode-threads", "-1"], "decode_threads must be an int >= 0"),
    ],
)
def test_predict_never_overwrites_a_file_it_did_not_write(
    trained: Path,
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | None,
    args: list[str],
    message: str,
) -> None:
    image = str(sorted((synthetic_root / "images").glob("*.jpg"))[0])
    out = tmp_path / name
    if content is not None:
        out.write_text(content)
    status = main(["predict", "--model", str(trained), image, "-o", str(out), *args])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    if content is None:
        assert not out.exists()  # nothing created by a run that labelled nothing
    else:
        assert out.read_text() == content  # left as it was


def test_predict_needs_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict"]) == 2
    assert "give image files or folders, or --files-from" in capsys.readouterr().err


def test_csv_cells_that_look_like_formulas_are_written_as_text(
    trained: Path,
    synthetic_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """File names from strangers reach the CSV: a cell starting with =, +, -, @ (or a quote)
    gets a leading quote, so a spreadsheet shows it instead of running it (OWASP), and a
    rerun still recognises the photos it labelled."""
    source = sorted((synthetic_root / "images").glob("*.jpg"))[0]
    names = ["=HYPERLINK(1).jpg", "+1.jpg", "-2.jpg", "@SUM.jpg", "'quoted.jpg", "plain.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(source.read_bytes())
    monkeypatch.chdir(tmp_path)  # relative names: each cell starts with the name itself
    command = ["predict", "--model", str(trained), "-o", "labels.csv", "--no-progress", "--"]
    command += names  # after "--": "-2.jpg" is a name, not an option
    assert main(command) == 0
    with (tmp_path / "labels.csv").open(encoding="utf-8", newline="") as file:
        cells = [row[0] for row in csv.reader(file)][1:]
    assert cells == [f"'{name}" for name in names[:5]] + ["plain.jpg"]
    capsys.readouterr()
    assert main(command) == 0
    assert "0 labelled, 6 already in" in capsys.readouterr().err
