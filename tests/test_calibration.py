"""Calibration postconditions: the answer meets the budget and is within tolerance of the edge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accounting import (
    PldAccountant,
    calibrate_noise_multiplier,
    calibrate_sample_rate,
    calibrate_steps,
    compute_epsilon,
)
from tests.strategies import deltas, typical_sample_rates

targets = st.floats(0.1, 20.0)
accountants = st.sampled_from(["rdp", "moments"])


@settings(max_examples=25, deadline=None)
@given(
    target=targets,
    delta=deltas,
    q=typical_sample_rates,
    steps=st.integers(1, 200_000),
    accountant=accountants,
)
def test_noise_multiplier_meets_target_within_tolerance(target, delta, q, steps, accountant):
    tolerance = 1e-6
    if accountant == "moments":  # its tail bound alone costs log(1/delta) / max_lambda
        assume(target > 1.01 * np.log(1 / delta) / 32)
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant, tolerance)
    assert compute_epsilon(q, sigma, steps, delta, accountant) <= target
    assert compute_epsilon(q, sigma - tolerance, steps, delta, accountant) > target


@settings(max_examples=25, deadline=None)
@given(target=targets, delta=deltas, q=typical_sample_rates, sigma=st.floats(0.5, 5.0))
def test_steps_are_the_most_that_fit(target, delta, q, sigma):
    steps = calibrate_steps(target, delta, q, sigma)
    if steps > 0:
        assert compute_epsilon(q, sigma, steps, delta) <= target
    assert compute_epsilon(q, sigma, steps + 1, delta) > target


@settings(max_examples=25, deadline=None)
@given(target=targets, delta=deltas, sigma=st.floats(0.5, 5.0), steps=st.integers(1, 100_000))
def test_sample_rate_meets_target_within_tolerance(target, delta, sigma, steps):
    tolerance = 1e-6
    q = calibrate_sample_rate(target, delta, sigma, steps, tolerance=tolerance)
    assert compute_epsilon(q, sigma, steps, delta) <= target
    if q < 1.0:
        assert compute_epsilon(q + tolerance, sigma, steps, delta) > target


def test_tutorial_noise_for_its_own_epsilon_recovers_the_noise():
    # TF Privacy tutorial: sigma 1.1 spends epsilon 2.59666 (RDP, improved) in 60 epochs.
    epsilon = compute_epsilon(256 / 60000, 1.1, 14063, 1e-5)
    sigma = calibrate_noise_multiplier(epsilon, 1e-5, 256 / 60000, 14063, tolerance=1e-9)
    assert sigma == pytest.approx(1.1, abs=1e-8)
    assert calibrate_steps(epsilon, 1e-5, 256 / 60000, 1.1) == 14063


def test_unreachable_target_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="out of reach"):
        calibrate_noise_multiplier(0.5, 1e-7, 0.1, 1, accountant="moments")


def test_full_batch_rate_when_budget_is_loose():
    assert calibrate_sample_rate(100.0, 1e-5, 10.0, 10) == 1.0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: calibrate_noise_multiplier(0.0, 1e-5, 0.01, 100), "target_epsilon"),
        (lambda: calibrate_noise_multiplier(-1.0, 1e-5, 0.01, 100), "target_epsilon"),
        (lambda: calibrate_noise_multiplier(float("inf"), 1e-5, 0.01, 100), "target_epsilon"),
        (lambda: calibrate_noise_multiplier(1.0, 2.0, 0.01, 100), "delta"),
        (lambda: calibrate_noise_multiplier(1.0, 1e-5, 0.0, 100), "sample_rate"),
        (lambda: calibrate_noise_multiplier(1.0, 1e-5, 0.01, 0), "steps"),
        (lambda: calibrate_noise_multiplier(1.0, 1e-5, 0.01, 10, tolerance=0), "tolerance"),
        (lambda: calibrate_steps(1.0, 1e-5, 0.0, 1.0), "sample_rate"),
        (lambda: calibrate_steps(1.0, 1e-5, 0.01, -1.0), "noise_multiplier"),
        (lambda: calibrate_sample_rate(1.0, 1e-5, 1.0, -5), "steps"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("target, q, steps", [(3.0, 256 / 60000, 14063), (1.0, 250 / 60000, 3600),
                                              (2.0, 1e-3, 100_000)])
def test_pld_noise_search_from_the_rdp_bracket_matches_the_generic_search(target, q, steps):
    """The PLD shortcut (RDP's noise as the safe end, one grid inside the bracket) returns a
    noise the automatic PLD accountant certifies, within a few tolerances of the generic
    search's (both on the safe side of the same certified bound)."""
    from accounting.calibration import calibrate
    from accounting.events import Gaussian, PoissonSampled, SelfComposed

    fast = calibrate_noise_multiplier(target, 1e-5, q, steps, accountant="pld", tolerance=1e-4)
    assert PldAccountant(tolerance=1e-2).compose(q, fast, steps).get_epsilon(1e-5) <= target
    generic = calibrate(
        lambda sigma: SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps), target, 1e-5,
        accountant="pld", bounds=(2.0**-20, 2.0**27), tolerance=1e-4, increasing=False,
        pld_tolerance=1e-2,
    )
    # one grid's bound and the automatic grids' differ by up to the bracket width (1e-2 of
    # epsilon): a relative 1e-2 of the noise covers it
    assert fast == pytest.approx(generic, rel=1e-2)
    assert fast <= calibrate_noise_multiplier(target, 1e-5, q, steps, tolerance=1e-4)
