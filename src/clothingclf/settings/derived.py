"""What is derived from the declarations as a whole: every setting, those a resumed fit
must keep, what older files imply, and the settings table of the docs."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .declaration import UNKNOWN, Setting, declared_settings
from .options import RunOptions

__all__ = ["all_settings", "implied_values", "resume_settings", "settings_table"]


def all_settings() -> list[Setting]:
    """Every declared setting: :class:`TrainConfig`'s, then :class:`RunOptions`'."""
    return [*declared_settings(TrainConfig), *declared_settings(RunOptions)]


def resume_settings() -> tuple[str, ...]:
    """The training settings a resumed fit must keep (declared with ``resume=True``), in
    the order they are declared.

    Example:
        >>> resume_settings()[:4]
        ('epochs', 'batch_size', 'image_size', 'aspect')
    """
    return tuple(s.name for s in declared_settings(TrainConfig) if s.resume)


def implied_values() -> dict[str, Any]:
    """The value of each training setting added since the first release that model files
    and checkpoints written before it ran with, as :meth:`TrainConfig.to_dict` writes it
    (a tuple as a list). Settings whose older files do not tell (``image_size``, a
    parameter of the classifier before) are left out: such a file takes the recipe's value.

    Example:
        >>> implied = implied_values()
        >>> implied["ema_decay"], implied["extra_views"], "image_size" in implied
        (0.0, [], False)
    """
    return {
        s.name: list(s.implied) if isinstance(s.implied, tuple) else s.implied
        for s in declared_settings(TrainConfig)
        if s.added is not None and s.implied is not UNKNOWN
    }


def settings_table() -> str:
    """The reStructuredText table of every setting (the docs include it)."""
    rows = ["   * - Setting\n     - Meaning\n     - Values\n     - ``seed``\n     - ``fast``"]
    for s in all_settings():
        seed = s.defaults.get("seed", s.defaults.get("*"))
        fast = s.defaults.get("fast", s.defaults.get("*"))
        group = " (run option)" if s.runtime else ""
        rows.append(
            f"   * - ``{s.name}``{group}\n     - {s.help[0].upper()}{s.help[1:]}.\n"
            f"     - {s.kind.expected}\n     - ``{seed!r}``\n     - ``{fast!r}``"
        )
    head = ".. list-table::\n   :header-rows: 1\n   :widths: 18 44 22 8 8\n\n"
    return head + "\n".join(rows) + "\n"
