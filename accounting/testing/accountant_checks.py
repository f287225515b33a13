"""Checks of accountants: one job, holding an accountant's composition to its properties.

The accountant under test is made fresh by ``make_accountant() -> object``, an object with
``compose(q, sigma, steps)`` and ``get_epsilon(delta)``. The property checked and its source:

* composition is additive: splitting a record of a history or reordering the history changes
  nothing, and appending a record never decreases epsilon (the privacy loss of a composition is
  a sum over its steps, e.g. RDP adds up, Mironov 2017, "Rényi Differential Privacy",
  Proposition 1): :func:`check_composition`.

How a check runs and reports is :mod:`accounting.testing._harness`'s job; the public entry
points are :mod:`accounting.testing.properties` and :mod:`accounting.testing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from accounting.testing import strategies as sts
from accounting.testing._harness import (
    SHAPE_RTOL,
    CheckResult,
    _domain,
    _exceeds,
    _Falsified,
    _finish,
    _label,
    _relative_error,
    _run,
    _show,
)
from accounting.testing.domain import Domain

__all__ = ["AccountantFactory", "check_composition"]

#: ``make_accountant() -> object``: a fresh accountant with ``compose(q, sigma, steps)`` and
#: ``get_epsilon(delta)``.
AccountantFactory = Callable[[], Any]


def _epsilon_of(make_accountant: AccountantFactory, history, delta) -> float:
    """Epsilon of a fresh accountant composed with ``history``; a failure is a finding."""
    label = f"{_label(make_accountant)}() composed with {_show(list(history))}"
    try:
        accountant = make_accountant()
        for record in history:
            accountant.compose(*record)
        value = float(accountant.get_epsilon(delta))
    except Exception as error:
        raise _Falsified(f"{label} raised {type(error).__name__}: {error}") from error
    if math.isnan(value) or value < 0:
        raise _Falsified(f"{label} gave epsilon {_show(value)} at delta={_show(delta)}")
    return value


def check_composition(
    make_accountant: AccountantFactory,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check composition is additive: splitting, reordering or extending a history.

    For a heterogeneous history ``H`` (:func:`accounting.testing.strategies.
    composition_histories`), the epsilon must not change when a record ``(q, sigma, n)`` is
    split into ``(q, sigma, k)`` and ``(q, sigma, n - k)`` or when ``H`` is reversed (the
    privacy loss of a composition is a sum over its steps, e.g. RDP adds up, Mironov 2017,
    Proposition 1), and must not decrease when a record is appended.

    Parameters
    ----------
    make_accountant : callable
        Returns a fresh accountant with ``compose(q, sigma, steps)`` and
        ``get_epsilon(delta)``.
    rtol, max_examples, seed, raise_on_failure
        As in :func:`~accounting.testing.rdp_checks.check_rdp_monotone_in_sample_rate`.
    domain : Domain, optional
        The records (``q``, ``sigma``, ``steps``) and ``delta`` drawn.
    """
    domain = _domain(domain)

    def body(history, split_at, extra, delta):
        history = [tuple(record) for record in history]
        base = _epsilon_of(make_accountant, history, delta)
        q, sigma, n = history[0]
        k = 1 + split_at % n if n > 1 else 0
        if 0 < k < n:
            split = [(q, sigma, k), (q, sigma, n - k), *history[1:]]
            value = _epsilon_of(make_accountant, split, delta)
            if _relative_error(value, base) > rtol:
                raise _Falsified(
                    f"splitting {_show(history[0])} into {k} + {n - k} steps changed epsilon "
                    f"from {_show(base)} to {_show(value)} (delta={_show(delta)})"
                )
        reordered = _epsilon_of(make_accountant, history[::-1], delta)
        if _relative_error(reordered, base) > rtol:
            raise _Falsified(
                f"reversing the history changed epsilon from {_show(base)} to "
                f"{_show(reordered)} (delta={_show(delta)})"
            )
        longer = _epsilon_of(make_accountant, [*history, tuple(extra)], delta)
        if _exceeds(longer, base, rtol):
            raise _Falsified(
                f"appending {_show(tuple(extra))} decreased epsilon from {_show(base)} to "
                f"{_show(longer)} (delta={_show(delta)})"
            )

    strategies = {
        "history": sts.composition_histories(domain=domain),
        "split_at": st.integers(0, 10**6),
        "extra": sts.composition_histories(1, 1, domain=domain).map(lambda history: history[0]),
        "delta": sts.deltas(domain=domain),
    }
    result, _ = _run("composition additive (split, reorder, extend)", strategies, body,
                     max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)
