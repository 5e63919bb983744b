"""The ``clothingclf`` command line: a thin shell over the public API.

This module assembles the parser and runs a sub-command (:func:`main`); each sub-command
lives in the module of its group (``prepare``, ``analyze``, ``train`` for train and
evaluate, ``predict``, ``demo``, ``report``, ``export``) as an ``_add_<name>`` function that
declares its arguments and a ``_run_<name>`` function that calls the library and prints the
result; ``shared`` holds what several of them use, ``flags`` the range-checked number types
and the flags made from the settings' declarations. Errors that clothingclf raises on
purpose are printed as one line on stderr; the exit status is 2 when the command line is
wrong (an argument, or a file it names) and 1 when the work failed (:func:`exit_status`).
Nothing here holds logic of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from ..exceptions import ClothingClfError
from .analyze import add_analyze
from .demo import add_demo
from .export import add_export
from .predict import add_predict
from .prepare import add_prepare
from .report import add_report
from .shared import Parser
from .train import add_evaluate, add_train

__all__ = ["exit_status", "main"]

_Runner = Callable[[argparse.Namespace], int]

# Each entry adds one sub-command parser and sets ``func`` to its runner; ``--help`` lists
# the sub-commands in this order.
_COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_prepare,
    add_analyze,
    add_train,
    add_evaluate,
    add_predict,
    add_demo,
    add_report,
    add_export,
)


def _build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = Parser(
        prog="clothingclf",
        description="Classify clothing photos, prepare datasets, and analyse CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"clothingclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def exit_status(error: ClothingClfError) -> int:
    """The exit status for a clothingclf error: 1 when the work failed, 2 when the input did.

    Failures are a training that diverged, an export that failed, an optional package that
    is not installed, and what the system refused: a file it would not write (disk full, no
    permission) or weights it could not download. Everything else is an argument, or a file
    named by one, that cannot work as given: fix the command line and rerun.
    """
    from ..exceptions import (
        ExportError,
        MissingDependencyError,
        SaveError,
        TrainingDivergedError,
        WeightsUnavailableError,
    )

    if isinstance(error, (TrainingDivergedError, ExportError, MissingDependencyError)):
        return 1
    system_refused = isinstance(error.__cause__, OSError) or (
        isinstance(error, OSError) and bool(error.errno)
    )
    if isinstance(error, (SaveError, WeightsUnavailableError)) and system_refused:
        return 1
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success; 2 for a usage error, a bad argument value or a file
        named on the command line that is missing, of the wrong kind or not what the command
        reads; 1 for a failure (a diverged training, a failed export or write, a missing
        optional package, some images of ``predict`` unreadable, an unexpected error: one
        line on stderr, ``CLOTHINGCLF_DEBUG=1`` shows the traceback); 130 when interrupted.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    func: _Runner | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return func(args)
    except ClothingClfError as error:
        print(f"clothingclf {args.command}: error: {error}", file=sys.stderr)
        return exit_status(error)
    except KeyboardInterrupt:
        print(f"clothingclf {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``clothingclf ... | head``): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as error:  # what no check foresaw: one line, not a traceback
        if os.environ.get("CLOTHINGCLF_DEBUG"):
            raise
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"clothingclf {args.command}: error: {type(error).__name__}: {detail} (unexpected: "
            "set CLOTHINGCLF_DEBUG=1 to see where, and please report it)",
            file=sys.stderr,
        )
        return 1
