"""Every example in a docstring of src/pulsegate holds (the formulas' doctests): each
module that has one is run here, so no example goes unchecked."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def modules_with_examples() -> list[str]:
    names = []
    for path in sorted((SRC / "pulsegate").rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(SRC).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_modules_with_examples_are_found() -> None:
    assert len(modules_with_examples()) >= 40


@pytest.mark.parametrize("name", modules_with_examples())
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted and result.failed == 0, result
