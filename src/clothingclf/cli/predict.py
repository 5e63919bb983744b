"""The ``predict`` sub-command: label image files, folders or a file list with the bundled
model or a saved one.

Without ``--output`` each label is printed (or one JSON list with ``--json``). With
``--output FILE.csv`` or ``FILE.jsonl`` the labels are appended to the file as each batch is
done, so a catalogue of any size is labelled in constant memory, and a second run with the
same ``--output`` skips the photos already in it (a run cut short resumes where it stopped).
An image that cannot be read is reported on stderr and skipped; the others are still
labelled, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io
import json
import os
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .flags import number_in
from .shared import POSITIVE, add_model_options

if TYPE_CHECKING:
    from ..inference import Prediction

#: The files a folder given to ``predict`` is searched for (by suffix, any case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        help="label images (with the bundled model, or --model FILE)",
        description="Label each IMAGE (a file, or a folder searched for image files), and "
        "each path listed in --files-from, with the clothing model bundled in the package "
        "or the model file given by --model. Without --output the labels are printed; with "
        "--output FILE.csv or FILE.jsonl they are appended to FILE as they are made, and a "
        "rerun skips the images already in it. An image that cannot be read gets an error "
        "line on stderr and is skipped; the others are still labelled, and the exit status "
        "is 1.",
    )
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files or folders")
    p.add_argument(
        "--files-from",
        metavar="LIST",
        help="a text file of image paths, one per line ('-': standard input)",
    )
    p.add_argument(
        "--model",
        metavar="FILE",
        help="model file written by train or save() (default: the bundled model)",
    )
    p.add_argument("--top-k", type=POSITIVE, default=1, metavar="K", help="labels per image (1)")
    p.add_argument(
        "--min-score",
        type=number_in(0.0, 1.0),
        default=None,
        metavar="P",
        help="abstain below this top probability (0-1): the label is left empty (null in "
        "JSON, '(unsure)' when printed) for a person to check; CSV files get a last column "
        "'guess' with the most probable class",
    )
    p.add_argument(
        "--balance",
        type=_balance,
        default=None,
        metavar="B",
        help="for a model trained with logit adjustment (the bundled one): accuracy (the "
        "most photos right), balanced (every class alike: rare classes found more often), "
        "middle, or a number from 0 to 1 (default: the model's own)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="append the labels to FILE (.csv or .jsonl) as they are made; resumable",
    )
    p.add_argument("--batch-size", type=POSITIVE, default=32, help="images per forward pass (32)")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "torch", "onnxruntime", "openvino"],
        help="what runs the network (auto: the fastest installed on the CPU, timed once)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="auto: float32; bfloat16: OpenVINO where the CPU has it natively, else torch",
    )
    p.add_argument(
        "--decode-threads",
        type=int,
        default=None,
        metavar="N",
        help="threads decoding photos while the network runs (default: up to 4)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress line on stderr (with --output)"
    )
    add_model_options(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from ..exceptions import InvalidParameterError
    from ..predictor import Predictor
    from ..pretrained import pretrained_file

    if not args.images and args.files_from is None:
        raise InvalidParameterError(
            "predict needs images: give image files or folders, or --files-from LIST."
        )
    if args.output is not None and args.json:
        raise InvalidParameterError(
            "--json prints to stdout; with --output the format follows the file's suffix "
            "(.csv or .jsonl). Give one of the two."
        )
    if args.output is not None:
        _Sink.check_target(Path(args.output))  # before any work
    paths = _image_paths(args.images, args.files_from)
    # The predictor alone: labelling photos needs no estimator (nor scikit-learn's import).
    model = pretrained_file() if args.model is None else args.model
    predictor = Predictor.from_file(model, device=args.device)
    top_k = min(args.top_k, len(predictor.classes))
    guess = args.min_score is not None
    sink = _Sink.open(Path(args.output), top_k, guess=guess) if args.output else None
    todo = [path for path in paths if sink is None or path not in sink.done]
    options: dict[str, Any] = {
        "batch_size": args.batch_size,
        "engine": args.engine,
        "precision": args.precision,
        "decode_threads": args.decode_threads,
        "balance": args.balance,
    }
    outcomes = predictor.stream(todo, **options)
    results: list[dict[str, object]] = []
    failed = 0
    progress = _Progress(len(todo), len(paths) - len(todo), enabled=sink is not None)
    progress.enabled = progress.enabled and not args.no_progress and sys.stderr.isatty()
    try:
        for index, outcome in outcomes:
            path = todo[index]
            if isinstance(outcome, Exception):
                failed += 1
                progress.clear()
                print(f"clothingclf predict: {path}: error: {outcome}", file=sys.stderr)
                continue
            prediction = predictor.prediction(outcome, top_k, min_score=args.min_score)
            if sink is not None:
                sink.write(path, prediction)
            elif args.json:
                results.append({"image": path, **prediction.to_dict()})
            else:
                ranked = "  ".join(f"{label} {score:.3f}" for label, score in prediction.top_k)
                unsure = "" if prediction.label is not None else "(unsure)  "
                print(f"{path}\t{unsure}{ranked}")
            progress.update(index + 1)
    finally:
        progress.clear()
        if sink is not None:
            sink.close()
    if args.json:
        print(json.dumps(results, indent=2))
    if sink is not None:
        skipped = len(paths) - len(todo)
        print(
            f"clothingclf predict: {len(todo) - failed} labelled, {skipped} already in "
            f"{args.output}, {failed} failed",
            file=sys.stderr,
        )
    elif failed:
        print(f"clothingclf predict: {failed} of {len(todo)} images failed", file=sys.stderr)
    return 1 if failed else 0


def _balance(text: str) -> float:
    """An argparse ``type``: a name of :data:`~clothingclf.calibration.BALANCES` or a
    number from 0 to 1, as the number."""
    from ..calibration import BALANCES, Calibration

    try:
        value = BALANCES[text] if text in BALANCES else float(text)
        Calibration(balance=value)  # the library's one check of a balance
    except ValueError:  # not a number, or InvalidParameterError: out of range, NaN
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(BALANCES)} or a number from 0 to 1; found {text!r}"
        ) from None
    return value


def _image_paths(arguments: Sequence[str], files_from: str | None) -> list[str]:
    """The images named on the command line (folders searched, sorted) and in the list,
    duplicates dropped (first kept)."""
    from ..exceptions import DatasetNotFoundError

    paths: list[str] = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(argument)
                for name in names
                if name.lower().endswith(IMAGE_SUFFIXES)
            )
            if not found:
                raise DatasetNotFoundError(
                    f"The folder {argument!r} holds no image files "
                    f"({', '.join(IMAGE_SUFFIXES)}). Give image files or another folder."
                )
            paths.extend(found)
        else:
            paths.append(argument)  # a missing or unreadable file is reported when labelled
    if files_from is not None:
        paths.extend(_listed(files_from))
    return list(dict.fromkeys(paths))


def _listed(files_from: str) -> Iterator[str]:
    """The non-empty lines of a file list ('-': standard input)."""
    from ..exceptions import DatasetNotFoundError

    if files_from == "-":
        text = sys.stdin.read()
    else:
        try:
            text = _read_list(files_from).decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise DatasetNotFoundError(
                f"Cannot read the file list {files_from!r} ({reason}). Give a text file with "
                "one image path per line."
            ) from None
    return (line.strip() for line in text.splitlines() if line.strip())


def _read_list(name: str) -> bytes:
    """The bytes of a file list. A pipe (``<(find ...)``) is read as it is written; one that
    no program writes to is refused, rather than blocking forever as a plain open would."""
    posix = os.name == "posix"  # elsewhere no FIFO can be opened without a writer
    descriptor = os.open(name, os.O_RDONLY | (os.O_NONBLOCK if posix else 0))
    with os.fdopen(descriptor, "rb") as file:
        mode = os.fstat(descriptor).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a text file or a pipe")
        if not posix:
            return file.read()
        first = b""
        if stat.S_ISFIFO(mode):
            try:
                first = os.read(descriptor, 65536)
                if not first:  # end of file at once: no program has the pipe open to write
                    raise OSError(errno.EPIPE, "a FIFO that no program writes to")
            except BlockingIOError:  # a writer that has not written yet: wait for it
                pass
        os.set_blocking(descriptor, True)
        return first + file.read()


class _Progress:
    """``labelled N/M photos, R/s`` on one stderr line, redrawn at most twice a second."""

    def __init__(self, total: int, skipped: int, *, enabled: bool) -> None:
        self.total, self.skipped, self.enabled = total, skipped, enabled
        self.start = self.last = time.monotonic()
        self.shown = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and done < self.total):
            return
        rate = done / max(now - self.start, 1e-9)
        note = f" ({self.skipped} done before)" if self.skipped else ""
        print(
            f"\rlabelled {done}/{self.total} photos{note}, {rate:.1f}/s",
            end="",
            file=sys.stderr,
            flush=True,
        )
        self.last, self.shown = now, True

    def clear(self) -> None:
        if self.shown:
            print(file=sys.stderr)
            self.shown = False


class _Sink:
    """An output file of ``predict --output``: CSV or JSON Lines, appended to, resumable.

    An existing file is read first: the images it holds are skipped by this run. A file
    that is not one this command wrote (a CSV file: with the same ``--top-k``) is refused
    and left as it is; a last line cut short by a killed run is dropped, once the lines
    before it have shown the file is one of ours. A new file is created at the first label,
    so a run that fails before labelling anything leaves nothing behind.
    """

    def __init__(
        self, path: Path, kind: str, top_k: int, done: set[str], *, guess: bool = False
    ) -> None:
        self.path, self.kind, self.top_k, self.done = path, kind, top_k, done
        self.guess = guess  # --min-score: a CSV column with the top label of every row
        self.file: TextIO | None = None
        self.writer: Any = None

    @staticmethod
    def check_target(path: Path) -> str:
        """The format of ``path`` by its suffix, once checked that a file may be written
        there.

        Raises:
            InvalidParameterError: Not ``.csv`` or ``.jsonl``.
            SaveError: ``path`` is a folder, a FIFO, or lies below a file.
        """
        from .._paths import refuse_blocked_folder, refuse_to_replace_non_file
        from ..exceptions import InvalidParameterError, SaveError

        kind = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
        if kind is None:
            raise InvalidParameterError(
                f"--output {str(path)!r}: the suffix says the format; use .csv or .jsonl."
            )
        try:
            refuse_to_replace_non_file(path, "write --output")
        except OSError as error:
            raise SaveError(f"Cannot write --output {str(path)!r} ({error.strerror}).") from None
        refuse_blocked_folder(path.parent, "The folder of --output")
        return kind

    @classmethod
    def open(cls, path: Path, top_k: int, *, guess: bool = False) -> _Sink:
        kind = cls.check_target(path)
        done = _read_done(path, kind, top_k, guess=guess) if path.exists() else set()
        return cls(path, kind, top_k, done, guess=guess)

    def write(self, image: str, prediction: Prediction) -> None:
        if self.file is None:
            self._create()
        assert self.file is not None
        if self.kind == "csv":
            cells = prediction.flat().values()  # an abstained label (None): an empty cell
            row = [f"{v:.6f}" if isinstance(v, float) else v for v in cells]
            if self.guess:
                row.append(prediction.top_k[0][0])
            self.writer.writerow([_inert(cell) for cell in [image, *row]])
        else:
            record = {"image": image, **prediction.to_dict()}
            self.file.write(json.dumps(record) + "\n")  # ASCII: no line breaks inside
        self.done.add(image)
        self.file.flush()  # a killed run loses nothing it labelled (cheap beside the network)

    def _create(self) -> None:
        from ..exceptions import SaveError

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # surrogateescape: a file name that is not UTF-8 is written back byte for byte
            self.file = self.path.open("a", encoding="utf-8", errors="surrogateescape", newline="")
        except OSError as error:
            where = str(self.path)
            raise SaveError(f"Cannot write --output {where!r} ({error.strerror}).") from None
        self.writer = csv.writer(self.file) if self.kind == "csv" else None
        if self.writer is not None and self.file.tell() == 0:
            self.writer.writerow(_csv_header(self.top_k, guess=self.guess))

    def close(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


#: What spreadsheet programs read as the start of a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: Any, *, undo: bool = False) -> Any:
    """A CSV cell that a spreadsheet shows as text: one starting like a formula (from a file
    or class name) gets a leading ``'``, as OWASP advises, and so does one starting with
    ``'`` already, so that ``undo`` (reading our own file back) is exact."""
    if not isinstance(cell, str):
        return cell
    if undo:
        return cell[1:] if cell.startswith("'") else cell
    return "'" + cell if cell.startswith((*_FORMULA_STARTS, "'")) else cell


def _is_our_record(record: dict[str, Any]) -> bool:
    """Whether a JSON line has exactly the fields and types ``predict --output`` writes."""
    if set(record) != {"image", "label", "score", "top_k"}:
        return False
    top_k = record["top_k"]
    return (
        isinstance(record["label"], (str, type(None)))
        and isinstance(record["score"], (int, float))
        and isinstance(top_k, list)
        and all(
            isinstance(item, dict)
            and set(item) == {"label", "score"}
            and isinstance(item["label"], str)
            and isinstance(item["score"], (int, float))
            for item in top_k
        )
    )


def _csv_header(top_k: int, *, guess: bool = False) -> list[str]:
    """The CSV columns: ``image``, the labels and scores, and with ``--min-score`` a last
    column ``guess`` (the most probable class, also where ``label`` is left empty)."""
    from ..inference import Prediction

    return ["image", *Prediction.flat_columns(top_k), *(["guess"] if guess else [])]


def _read_done(path: Path, kind: str, top_k: int, *, guess: bool = False) -> set[str]:
    """The images an earlier run wrote to ``path``; a last line cut short is dropped once the
    complete lines have shown the file is one this command wrote.

    Raises:
        SaveError: The file is not an output of ``predict`` (a CSV file: with this
            ``--top-k`` and with or without ``--min-score``; each JSON line carries its own
            ``top_k``).
    """
    from ..exceptions import SaveError

    flags = f" with --top-k {top_k}{' and --min-score' if guess else ' and no --min-score'}"

    def refuse(why: str) -> SaveError:
        return SaveError(
            f"--output {str(path)!r} exists and {why}, so it is not a file this command "
            f"wrote{flags if kind == 'csv' else ''}; it was left as it is. Give another "
            "--output"
            + (", or the --top-k (and --min-score) it was written with." if kind == "csv" else ".")
        )

    try:
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as error:
        raise SaveError(f"Cannot read --output {str(path)!r} ({error.strerror}).") from None
    if not text:
        return set()
    complete, _, partial = text.rpartition("\n")
    if not complete and partial:
        raise refuse("holds no complete line")
    done: set[str] = set()
    if kind == "csv":
        try:
            rows = list(csv.reader(io.StringIO(complete + "\n")))
        except csv.Error as error:
            raise refuse(f"is not CSV ({error})") from None
        if not rows or rows[0] != _csv_header(top_k, guess=guess):
            raise refuse(f"has the columns {', '.join(rows[0]) if rows else 'none'}")
        done = {_inert(row[0], undo=True) for row in rows[1:] if row}
    else:
        for number, line in enumerate(complete.split("\n"), start=1):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise refuse(f"line {number} is not JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("image"), str):
                raise refuse(f"line {number} has no image")
            if not _is_our_record(record):
                raise refuse(
                    f"line {number} is not a record it writes (image, label, score, top_k "
                    "and nothing else)"
                )
            done.add(record["image"])
    if partial:  # the file is ours: drop the half line a killed run left
        with path.open("r+b") as file:
            file.truncate(len((complete + "\n").encode("utf-8", errors="surrogateescape")))
    return done
