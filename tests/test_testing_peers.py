"""The kit run against dp_accounting's and Opacus' RDP functions (skipped when not installed).

Each test asserts what the kit finds, so a change in a peer's behaviour shows up here.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import strategies as st

from accounting import reference
from accounting.testing import PropertyViolation, check_rdp_reference, verify_accountant
from accounting.testing import strategies as sts

TYPICAL = {"sample_rate": sts.typical_sample_rates(), "noise_multiplier": st.floats(0.5, 20.0)}


def dp_accounting_rdp(q, sigma, orders):
    rdp = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    return rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, orders)


def opacus_rdp(q, sigma, orders):
    analysis = pytest.importorskip("opacus.accountants.analysis.rdp")
    return analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)


def _mpmath(example):
    return float(reference.rdp(example["q"], example["sigma"], example["alpha"], digits=20))


def test_dp_accounting_integer_orders_agree_at_typical_parameters():
    pytest.importorskip("dp_accounting")
    result = check_rdp_reference(dp_accounting_rdp, order=sts.integer_orders(64), **TYPICAL,
                                 max_examples=15, seed=21)
    assert result.passed


def test_dp_accounting_fractional_orders_are_flagged_as_too_high():
    pytest.importorskip("dp_accounting")
    with pytest.raises(PropertyViolation) as caught:
        check_rdp_reference(dp_accounting_rdp, order=sts.fractional_orders(11.0), **TYPICAL,
                            max_examples=15, seed=22)
    print(caught.value)
    example = caught.value.counterexample
    assert example["alpha"] != int(example["alpha"])
    # dp_accounting drops the binomial signs: an upper bound, never below the reference.
    assert example["value"] > _mpmath(example) * (1 + 1e-6)


def test_opacus_agrees_at_typical_parameters_but_not_at_tiny_sample_rates():
    pytest.importorskip("opacus")
    # integer orders: at fractional ones (q = 1e-5, alpha = 1.5) Opacus 1.6 is 7e-5 off
    assert check_rdp_reference(opacus_rdp, order=sts.integer_orders(64), **TYPICAL,
                               max_examples=10, seed=23).passed
    with pytest.raises(PropertyViolation) as caught:
        check_rdp_reference(opacus_rdp, sample_rate=sts.log_uniform(-8.0, -6.0),
                            order=sts.integer_orders(64), max_examples=10, seed=24)
    print(caught.value)
    example = caught.value.counterexample
    assert example["q"] <= 1e-6
    assert math.isfinite(example["value"])
    assert abs(example["value"] / _mpmath(example) - 1) > 1e-6


@pytest.mark.parametrize("fn", [dp_accounting_rdp, opacus_rdp], ids=["dp_accounting", "opacus"])
def test_full_suite_report_on_peers(fn):
    pytest.importorskip("dp_accounting" if fn is dp_accounting_rdp else "opacus")
    report = verify_accountant(fn, kind="rdp", max_examples=12, seed=0, raise_on_failure=False)
    print(report)
    # Both get the Gaussian mechanism (q = 1) and q = 0 right. Opacus breaks monotonicity in q
    # with NaN at large fractional orders (q=0.1, sigma=1, alpha=1030). dp_accounting has two
    # defects, and which one the draws meet first depends on hypothesis's generator: inf where
    # its fractional series does not converge (q=0.1, sigma=1, alpha=1.5), and a negative RDP
    # from rounding at tiny q (q=1e-11, sigma=100, alpha=2: -1.08e-25).
    assert not report.failed("closed forms")
    if fn is opacus_rdp:
        assert report.failed("non-decreasing in q")
        failure = next(r for r in report.failures if "non-decreasing in q" in r.name)
        assert "NaN" in failure.message
        return
    assert report.failures
    for failure in report.failures:
        assert "= inf" in failure.message or "negative RDP" in failure.message, failure.message
    assert dp_accounting_rdp(1e-11, 100.0, [2.0])[0] < 0.0  # the rounding defect, directly
