"""What the sub-commands share: the parser class, the option kinds, reading DATA and
checking an output path before any work is done."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NoReturn

from .flags import int_in

if TYPE_CHECKING:
    from ..data import DatasetSplits


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line: ``clothingclf CMD: error: ...`` (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


POSITIVE = int_in(1)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options of every sub-command that runs a model."""
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")


def load_data(data: str) -> DatasetSplits:
    """A dataset root (prepared here) or a folder written by ``clothingclf prepare``: the
    splits of :func:`~clothingclf.open_splits`, with what preparing dropped printed."""
    import sys
    import warnings

    from ..data.sources import open_splits_noting_prepared

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the report below repeats them
        splits, prepared = open_splits_noting_prepared(data, seed=42)  # as 'prepare' (42)
    if prepared and splits.report.n_dropped:  # on stderr: stdout may be --json
        print(splits.report.summary(), file=sys.stderr)
    return splits


def check_output_file(path: str, option: str) -> None:
    """Refuse, before any work, an output file path that a save at the end would refuse."""
    from pathlib import Path

    from .._paths import refuse_blocked_folder, refuse_to_replace_non_file
    from ..exceptions import SaveError

    target = Path(path)
    try:
        refuse_to_replace_non_file(target, f"write {option}")
    except OSError as error:  # a link loop, a name too long
        raise SaveError(f"Cannot write {option} {path!r} ({error.strerror or error}).") from None
    refuse_blocked_folder(target.parent, f"The folder of {option}")
