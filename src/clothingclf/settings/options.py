"""How a fit runs on this machine: :class:`RunOptions`, every field declared with
``option(...)``, and :func:`resolve_options`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from .._kinds import Choice, Flag, Folder
from .declaration import COUNT, declared_settings, option, resolved_values

__all__ = ["RunOptions", "resolve_options"]


@dataclass(frozen=True)
class RunOptions:
    """How a fit runs on this machine; never saved, free to change on resume.

    Example:
        >>> resolve_options(num_workers=0).amp
        'auto'
    """

    num_workers: int = option(
        "processes that decode images into the cache (0: this one)",
        COUNT,
        default=min(4, os.cpu_count() or 1),
        flag="--workers",
    )
    progress: bool = option(
        "a progress bar (on a terminal) and one line per epoch on stderr",
        Flag("True or False"),
        default=True,
    )
    cache_dir: str | None = option(
        "keep the decoded images in memory-mapped files in this folder instead of in memory",
        Folder("None or a folder path"),
        default=None,
    )
    amp: Literal["auto", "bf16", "off"] = option(
        "bfloat16 autocast: auto where the hardware computes in it natively (CUDA with "
        "bf16, CPUs with AVX-512 BF16 or AMX), bf16 always, off never",
        Choice("one of 'auto', 'bf16', 'off'", choices=("auto", "bf16", "off")),
        default="auto",
    )
    channels_last: Literal["auto", "on", "off"] = option(
        "the channels-last memory layout: auto on the CPU and CUDA",
        Choice("one of 'auto', 'on', 'off'", choices=("auto", "on", "off")),
        default="auto",
    )
    compile: bool = option(
        "run the network through torch.compile", Flag("True or False"), default=False
    )
    reuse_memory: Literal["auto", "on", "off"] = option(
        "keep memory a training step frees on the heap for the next step (glibc; auto on "
        "the CPU), handed back when the fit ends",
        Choice("one of 'auto', 'on', 'off'", choices=("auto", "on", "off")),
        default="auto",
        added="0.2",
    )


def resolve_options(**overrides: Any) -> RunOptions:
    """The run options, defaults replaced by the ``overrides`` that are not ``None``.

    Raises:
        InvalidParameterError: An unknown option or a value that cannot work.
    """
    declared = list(declared_settings(RunOptions))
    base = {s.name: s.defaults["*"] for s in declared}
    return RunOptions(**resolved_values(declared, base, overrides, "a run option"))
