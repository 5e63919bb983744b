"""Guards shared by the tests (imported as ``from _guards import ...``)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch


def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way to unpickle fail until the test ends: a load that still works read
    nothing through pickle (safetensors and JSON only)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
