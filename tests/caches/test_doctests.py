"""The formulas' examples in the docstrings of caches/ and outbound/ hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["pulsegate.caches.keys", "pulsegate.caches.stats", "pulsegate.caches.commands",
           "pulsegate.caches.advice", "pulsegate.caches.queries", "pulsegate.outbound.urls",
           "pulsegate.outbound.health_score", "pulsegate.caches.vocabulary",
           "pulsegate.caches.module_strings"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted and result.failed == 0
