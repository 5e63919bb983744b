"""The ``clothingclf`` command line: a thin shell over the public API.

Each sub-command has an ``_add_<name>`` function that declares its arguments and a
``_run_<name>`` function that calls the library and prints the result. Errors that
clothingclf raises on purpose are printed as one line on stderr with exit status 2;
nothing here holds logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .exceptions import ClothingClfError

__all__ = ["main"]

_Runner = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clothingclf",
        description="Classify clothing photos, prepare datasets, and analyse CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"clothingclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


# Each entry adds one sub-command parser and sets ``func`` to its runner.
_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 2 for a usage error or a clothingclf error,
        130 when interrupted.
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
        return 2
    except KeyboardInterrupt:
        print(f"clothingclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
