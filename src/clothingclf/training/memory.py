"""The process heap while training: keep freed memory for the next step, return it after.

By default glibc's ``malloc`` serves large blocks (128 KiB and up, a threshold it raises as
it adapts) with their own ``mmap`` and unmaps them on ``free``, and returns the top of the
heap to the system whenever more than 128 KiB lie free there. A training step allocates and
frees the same activations every time, so until glibc has adapted each step maps fresh pages
that the kernel zeroes again on first touch. :func:`reused_memory` switches both off for
the length of a fit (``mallopt``: no ``mmap`` for blocks, no automatic trimming), so a step
reuses the pages the previous one freed; on leaving it restores glibc's defaults and hands
the freed memory back (``malloc_trim``). The gain is in the first epochs at a new image size
and in short fits (``docs/performance.rst``; measurements in ``benchmarks/RESULTS.md``).
Other C libraries (musl, macOS, Windows) have no such switches; there :func:`reused_memory`
and the trims change nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys
import threading
from collections.abc import Iterator
from typing import Any

# mallopt parameters and glibc's defaults for them (malloc.h; mallopt(3)).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_NEVER_TRIM = -1  # "Setting M_TRIM_THRESHOLD to -1 disables trimming completely."

_lock = threading.Lock()
_active = 0  # fits inside reused_memory() now (threads of one process share the heap)


@functools.cache
def _glibc() -> Any | None:
    """glibc's ``libc``, or ``None`` where the C library is another one (looked up once)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def heap_reuse_available() -> bool:
    """Whether this process's C library lets :func:`reused_memory` change anything."""
    return _glibc() is not None


def return_freed_memory() -> None:
    """Collect garbage and hand the heap's free pages back to the system (glibc only).

    glibc keeps freed heap pages (activations, batches) for reuse, so a process that has
    trained one network keeps holding what that training freed. The classifier calls this
    between the networks of a fit, so the next network does not allocate beside those pages.
    Off glibc it only collects garbage.
    """
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def trim_kept_memory() -> None:
    """Inside :func:`reused_memory`, hand the heap's free pages back now.

    The training loop calls it before each epoch: what the previous phase (the cache, the
    head stage, the last epoch and its validation) freed in blocks of shapes the next epoch
    does not ask for would otherwise stay mapped beside what it allocates, and raise the
    peak. One step's page faults per epoch are the cost. Outside the block (glibc trims by
    itself) and off glibc: no-op.
    """
    if _active > 0:
        libc = _glibc()
        if libc is not None:
            libc.malloc_trim(0)


@contextlib.contextmanager
def reused_memory(enabled: bool) -> Iterator[bool]:
    """Keep the memory that is freed inside the block for reuse (see the module docstring).

    Args:
        enabled: ``False`` changes nothing (the block runs as it is).

    Yields:
        Whether the switch is in effect (``False`` when disabled or not on glibc).

    Example:
        >>> with reused_memory(False) as active:
        ...     active
        False
    """
    global _active
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        if _active == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _active += 1
    try:
        yield True
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                gc.collect()
                libc.malloc_trim(0)
