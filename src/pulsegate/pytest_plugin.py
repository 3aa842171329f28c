"""pytest plugin (entry point ``pytest11``): N+1 and query-count checks per test.

Full behaviour lands with issue 3; this registers the option and marker so every
pytest run that auto-loads the plugin works.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pulsegate")
    group.addoption("--pulsegate-nplusone", action="store", default=None,
                    choices=("fail", "warn", "off"),
                    help="What to do when a test runs N+1 queries: fail | warn | off "
                         "(default warn, or the pulsegate_nplusone ini value).")
    parser.addini("pulsegate_nplusone", "Default for --pulsegate-nplusone.", default="warn")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pulsegate(max_queries=None, nplusone=None): per-test SQL budget and "
                   "N+1 policy (fail | warn | off).")
