"""The public API is what the docs list, no more and no less."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import clothingclf

DOCS_API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"


def _documented_names() -> set[str]:
    text = DOCS_API.read_text(encoding="utf-8")
    names = set(re.findall(r"^\.\. auto(?:class|function|data):: clothingclf\.(\w+)$", text, re.M))
    names |= set(re.findall(r"^\.\. automodule:: clothingclf\.(\w+)$", text, re.M))
    return names


def test_all_is_exactly_the_documented_api() -> None:
    exported = set(clothingclf.__all__) - {"__version__"}
    assert exported == _documented_names()


def test_every_exported_name_exists_and_has_a_docstring() -> None:
    for name in clothingclf.__all__:
        obj = getattr(clothingclf, name)
        if name != "__version__":
            assert obj.__doc__, f"clothingclf.{name} has no docstring"


def test_version_is_a_release_string() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[ab]\d+|rc\d+|\.dev\d+)?", clothingclf.__version__)


def test_cli_version_matches_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clothingclf.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"clothingclf {clothingclf.__version__}"
