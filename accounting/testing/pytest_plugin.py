"""Pytest plugin: a ``verify_accountant`` fixture that runs the whole verification suite.

Enable it in a ``conftest.py``::

    pytest_plugins = ["accounting.testing.pytest_plugin"]

then add one test::

    def test_my_accountant(verify_accountant):
        verify_accountant(my_rdp, kind="rdp")

The fixture is :func:`accounting.testing.verify_accountant` with ``max_examples`` taken from
``--accounting-examples`` (default 30) unless given; a failing check fails the test with the
full report, each failure with its minimal counterexample.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from accounting.testing.verify import VerificationReport
from accounting.testing.verify import verify_accountant as _verify_accountant

__all__ = ["pytest_addoption", "verify_accountant"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--accounting-examples``."""
    parser.addoption(
        "--accounting-examples",
        type=int,
        default=30,
        help="Hypothesis examples per accounting.testing property check (default 30)",
    )


@pytest.fixture
def verify_accountant(request: pytest.FixtureRequest) -> Callable[..., VerificationReport]:
    """:func:`accounting.testing.verify_accountant`, with the command line's example count."""
    examples = request.config.getoption("--accounting-examples")
    return functools.partial(_verify_accountant, max_examples=examples)
