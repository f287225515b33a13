"""The verification kit catches deliberately broken accountants, each by the right check."""

from __future__ import annotations

import numpy as np
import pytest

import accounting
from accounting.testing import (
    PropertyViolation,
    check_composition,
    check_epsilon_reference,
    check_pld_below_rdp,
    check_rdp_closed_form,
    check_rdp_reference,
    check_round_trip,
    properties,
    verify_accountant,
)

ORDERS = accounting.DEFAULT_ORDERS


def wrong_conversion_epsilon(q, sigma, steps, delta):
    """Classic conversion with log(1/delta) / alpha instead of / (alpha - 1): too small."""
    curve = steps * accounting.poisson_gaussian_rdp(q, sigma, ORDERS)
    return float(np.min(curve + np.log(1.0 / delta) / ORDERS))


def missing_q_rdp(q, sigma, orders):
    """One factor of q lost: RDP ~ 2 q alpha / sigma^2 instead of 2 q^2 alpha / sigma^2."""
    rdp = accounting.poisson_gaussian_rdp(q, sigma, orders)
    return rdp / q if q > 0 else rdp


def off_by_one_rdp(q, sigma, orders):
    """Moment order taken for the Rényi order: evaluates alpha + 1."""
    return accounting.poisson_gaussian_rdp(q, sigma, [alpha + 1.0 for alpha in orders])


def imprecise_rdp(q, sigma, orders):
    """``log A`` computed from ``A`` itself, losing every digit when ``A`` is near 1."""
    alphas = np.asarray(orders, dtype=float)
    exact = accounting.poisson_gaussian_rdp(q, sigma, alphas)
    log_a = (alphas - 1.0) * exact
    rounded = np.log(np.exp(np.minimum(log_a, 700.0))) / (alphas - 1.0)
    return np.where(log_a > 700.0, exact, rounded)  # no overflow: only the precision is lost


class ForgetfulAccountant:
    """Keeps only the last composition."""

    def __init__(self):
        self.record = None

    def compose(self, q, sigma, steps):
        self.record = (q, sigma, steps)
        return self

    def get_epsilon(self, delta):
        accountant = accounting.RdpAccountant()
        if self.record is not None:
            accountant.compose(*self.record)
        return accountant.get_epsilon(delta)


def test_wrong_conversion_is_caught_by_the_reference_with_a_readable_message():
    with pytest.raises(PropertyViolation) as caught:
        check_epsilon_reference(wrong_conversion_epsilon, conversion="classic",
                                max_examples=10, seed=11)
    found = caught.value
    assert "mpmath reference" in str(found) and "minimal counterexample" in str(found)
    example = found.counterexample
    exact = accounting.compute_epsilon(example["q"], example["sigma"], example["steps"],
                                       example["delta"], conversion="classic")
    assert example["value"] < exact * (1 - 1e-6)  # the failure is real, not a tolerance artefact


def test_missing_factor_of_q_is_caught_by_the_reference():
    report = verify_accountant(missing_q_rdp, kind="rdp", max_examples=15, seed=12,
                               raise_on_failure=False)
    assert report.failed("agrees with the mpmath reference")
    failure = next(r for r in report.failures if "mpmath" in r.name)
    assert 0 < failure.counterexample["q"] < 1


def test_off_by_one_in_orders_is_caught_by_the_closed_form():
    with pytest.raises(PropertyViolation, match="at q=1 the RDP must be alpha") as caught:
        check_rdp_closed_form(off_by_one_rdp, max_examples=10, seed=13)
    assert caught.value.result.name == "RDP closed forms at q=1 and q=0"
    report = verify_accountant(off_by_one_rdp, kind="rdp", max_examples=5, seed=13,
                               raise_on_failure=False)
    assert report.failed("closed forms") and report.failed("mpmath")


def test_loss_of_precision_is_caught_at_tiny_sample_rates():
    with pytest.raises(PropertyViolation, match="relative error") as caught:
        check_rdp_reference(imprecise_rdp, max_examples=30, seed=14)
    example = caught.value.counterexample
    # The shrunk example sits where A_alpha - 1 = (alpha - 1) RDP is far below 1.
    exact = accounting.poisson_gaussian_rdp(example["q"], example["sigma"], [example["alpha"]])
    assert (example["alpha"] - 1) * exact[0] < 1e-8


def test_verify_accountant_raises_an_assertion_error_listing_every_check():
    with pytest.raises(AssertionError) as caught:
        verify_accountant(off_by_one_rdp, kind="rdp", max_examples=5, seed=15)
    text = str(caught.value)
    assert "[FAIL] RDP closed forms" in text and "[PASS] RDP non-increasing in sigma" in text


def test_broken_composition_is_caught():
    with pytest.raises(PropertyViolation, match="changed epsilon|decreased epsilon"):
        check_composition(ForgetfulAccountant, max_examples=8, seed=16)


def test_mismatched_epsilon_and_delta_fail_the_round_trip():
    def classic_delta(q, sigma, steps, epsilon):
        return accounting.RdpAccountant(conversion="classic").compose(q, sigma, steps).get_delta(
            epsilon)

    with pytest.raises(PropertyViolation, match="round trip failed"):
        check_round_trip(accounting.compute_epsilon, classic_delta, max_examples=20, seed=17)


def test_pld_check_flags_a_tight_accountant_that_is_looser_than_rdp():
    def classic(q, sigma, steps, delta):
        return accounting.compute_epsilon(q, sigma, steps, delta, conversion="classic")

    result = check_pld_below_rdp(classic, accounting.compute_epsilon, max_examples=20, seed=18,
                                 raise_on_failure=False)
    assert not result.passed
    assert "reports more than the RDP bound" in result.message
    example = result.counterexample
    arguments = [example[key] for key in ("q", "sigma", "steps", "delta")]
    assert classic(*arguments) > accounting.compute_epsilon(*arguments) * (1 + 1e-6)


def test_nan_and_exceptions_from_the_callable_are_findings():
    def raises_at_zero(q, sigma, orders):
        if q == 0:
            raise ZeroDivisionError("q must be positive")
        return accounting.poisson_gaussian_rdp(q, sigma, orders)

    result = check_rdp_closed_form(raises_at_zero, max_examples=5, seed=19,
                                   raise_on_failure=False)
    assert not result.passed and "raised ZeroDivisionError: q must be positive" in result.message

    def nan_rdp(q, sigma, orders):
        return [float("nan")] * len(orders)

    with pytest.raises(PropertyViolation, match="returned NaN"):
        check_rdp_closed_form(nan_rdp, max_examples=5, seed=19)


def test_monotonicity_violations_are_caught_with_a_readable_counterexample():
    def decreasing_in_q(q, sigma, orders):
        return np.asarray(orders, dtype=float) * (1.0 - q) / sigma**2

    def increasing_in_sigma(q, sigma, orders):
        return np.asarray(orders, dtype=float) * q * sigma

    in_q = properties.check_rdp_monotone_in_sample_rate(
        decreasing_in_q, max_examples=30, seed=1, raise_on_failure=False
    )
    in_sigma = properties.check_rdp_monotone_in_noise(
        increasing_in_sigma, max_examples=30, seed=1, raise_on_failure=False
    )
    assert not in_q.passed and "decreased as the sample rate grew" in str(in_q)
    assert "q1=" in str(in_q) and "sigma=" in str(in_q)
    assert not in_sigma.passed and "grew with the noise" in str(in_sigma)
    assert "sigma1=" in str(in_sigma) and "q=" in str(in_sigma)
