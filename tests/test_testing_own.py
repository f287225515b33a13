"""The verification kit passes on this package's own accountants."""

from __future__ import annotations

import numpy as np
import pytest

import accounting
from accounting.testing import (
    CheckResult,
    check_pld_below_rdp,
    check_rdp_reference,
    reference_epsilon,
    strategies,
    verify_accountant,
)


def improved_epsilon(q, sigma, steps, delta):
    return accounting.compute_epsilon(q, sigma, steps, delta, conversion="improved")


def classic_epsilon(q, sigma, steps, delta):
    return accounting.compute_epsilon(q, sigma, steps, delta, conversion="classic")


def rdp_delta(q, sigma, steps, epsilon):
    return accounting.RdpAccountant().compose(q, sigma, steps).get_delta(epsilon)


def moments_epsilon(q, sigma, steps, delta):
    return accounting.MomentsAccountant().compose(q, sigma, steps).get_epsilon(delta)


def test_poisson_gaussian_rdp_passes_every_rdp_check():
    report = verify_accountant(accounting.poisson_gaussian_rdp, kind="rdp", max_examples=25,
                               seed=1)
    assert report.passed and len(report.results) == 6
    assert all(isinstance(result, CheckResult) for result in report.results)
    assert "6/6 checks passed" in str(report)


def test_rdp_epsilon_and_delta_pass_every_check_including_the_round_trip():
    report = verify_accountant(improved_epsilon, kind="epsilon", delta_fn=rdp_delta,
                               max_examples=12, seed=2)
    assert report.passed
    assert [r.name for r in report.results if "round trip" in r.name or "delta(" in r.name]


def test_rdp_delta_passes_as_a_delta_function():
    report = verify_accountant(rdp_delta, kind="delta", epsilon_fn=improved_epsilon,
                               max_examples=10, seed=3)
    assert report.passed and len(report.results) == 6


def test_moments_accountant_is_the_classic_conversion_at_orders_lambda_plus_one():
    report = verify_accountant(moments_epsilon, kind="epsilon", orders=np.arange(2, 34),
                               conversion="classic", max_examples=8, seed=4,
                               skip=("monotone in q", "monotone in sigma"))
    assert report.passed and len(report.results) == 4


@pytest.mark.parametrize("factory", [accounting.RdpAccountant, accounting.MomentsAccountant])
def test_composing_accountants_are_additive(factory):
    assert verify_accountant(factory, kind="accountant", max_examples=15, seed=5).passed


def test_pld_check_with_an_honest_stand_in_improved_below_classic():
    # The improved conversion is never looser than the classic one (same RDP curve, and its
    # per-order epsilon is lower), so it plays the tight accountant's part honestly.
    result = check_pld_below_rdp(improved_epsilon, classic_epsilon, rtol=1e-9,
                                 max_examples=20, seed=6)
    assert result.passed


def test_tight_epsilon_kind_uses_the_pld_check():
    report = verify_accountant(improved_epsilon, kind="tight_epsilon",
                               rdp_epsilon=classic_epsilon, max_examples=8, seed=7)
    assert report.passed
    assert any("tight accountant" in r.name for r in report.results)
    assert not any("mpmath" in r.name for r in report.results)


def test_reference_check_can_decide_every_example_with_mpmath():
    result = check_rdp_reference(
        accounting.poisson_gaussian_rdp, exact=True, order=strategies.integer_orders(64),
        max_examples=10, seed=8,
    )
    assert result.passed


@pytest.mark.parametrize(
    ("q", "sigma", "steps", "delta", "conversion", "orders"),
    [
        (0.01, 1.1, 1000, 1e-5, "improved", None),  # default grid: fractional optimum
        (1.0, 3.0, 1, 1e-6, "classic", list(range(2, 65))),
        (1e-4, 50.0, 10, 1e-5, "improved", list(range(2, 65))),  # Bretagnolle-Huber: 0
        (0.05, 0.8, 200, 1e-8, "classic", list(range(2, 65))),
    ],
)
def test_reference_epsilon_matches_the_fast_accountant(q, sigma, steps, delta, conversion,
                                                        orders):
    fast = accounting.compute_epsilon(q, sigma, steps, delta, conversion=conversion,
                                      orders=orders)
    exact = reference_epsilon(q, sigma, steps, delta, orders, conversion)
    assert exact == pytest.approx(fast, rel=1e-9, abs=1e-12)
