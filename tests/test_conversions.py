"""RDP to (epsilon, delta) conversions against their formulas evaluated in mpmath."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import DEFAULT_ORDERS, delta_from_rdp, epsilon_from_rdp, poisson_gaussian_rdp
from tests.strategies import deltas, typical_noise_multipliers, typical_sample_rates

steps = st.integers(1, 100_000)


def _curve(q, sigma, count):
    return count * poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)


def _mp_epsilon(curve, delta, conversion):
    """The conversion formulas, written independently in mpmath."""
    with mpmath.workdps(40):
        return _mp_epsilon_at_precision(curve, mpmath.mpf(delta), conversion)


def _mp_epsilon_at_precision(curve, delta, conversion):
    best = None
    for order, value in zip(DEFAULT_ORDERS, curve, strict=True):
        a, r = mpmath.mpf(order), mpmath.mpf(value)
        if conversion == "classic":
            candidate = r + mpmath.log(1 / delta) / (a - 1)
        else:
            candidate = r + mpmath.log((a - 1) / a) - (mpmath.log(delta) + mpmath.log(a)) / (a - 1)
            if delta**2 >= 1 - mpmath.exp(-r):
                candidate = mpmath.mpf(0)
        best = candidate if best is None else min(best, candidate)
    return max(best, 0)


@settings(max_examples=40, deadline=None)
@given(
    q=typical_sample_rates,
    sigma=typical_noise_multipliers,
    count=steps,
    delta=deltas,
    conversion=st.sampled_from(["classic", "improved"]),
)
def test_epsilon_matches_formula(q, sigma, count, delta, conversion):
    curve = _curve(q, sigma, count)
    epsilon, order = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta, conversion)
    exact = _mp_epsilon(curve, delta, conversion)
    assert epsilon == pytest.approx(float(exact), rel=1e-12, abs=1e-15)
    assert order in DEFAULT_ORDERS


@settings(max_examples=40, deadline=None)
@given(q=typical_sample_rates, sigma=typical_noise_multipliers, count=steps, delta=deltas)
def test_improved_never_worse_than_classic(q, sigma, count, delta):
    curve = _curve(q, sigma, count)
    improved = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta, "improved")[0]
    classic = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta, "classic")[0]
    assert improved <= classic


@settings(max_examples=40, deadline=None)
@given(
    q=typical_sample_rates,
    sigma=typical_noise_multipliers,
    count=steps,
    delta=deltas,
    conversion=st.sampled_from(["classic", "improved"]),
)
def test_delta_of_epsilon_round_trip(q, sigma, count, delta, conversion):
    curve = _curve(q, sigma, count)
    epsilon = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta, conversion)[0]
    recovered = delta_from_rdp(curve, DEFAULT_ORDERS, epsilon, conversion)[0]
    if epsilon > 0:
        assert recovered == pytest.approx(delta, rel=1e-9)
    else:
        assert recovered <= delta


@settings(max_examples=40, deadline=None)
@given(
    q=typical_sample_rates,
    sigma=typical_noise_multipliers,
    count=steps,
    delta=deltas,
    factor=st.floats(1.5, 100.0),
    conversion=st.sampled_from(["classic", "improved"]),
)
def test_epsilon_decreases_with_delta_and_delta_with_epsilon(
    q, sigma, count, delta, factor, conversion
):
    curve = _curve(q, sigma, count)
    tight = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta / factor, conversion)[0]
    loose = epsilon_from_rdp(curve, DEFAULT_ORDERS, delta, conversion)[0]
    assert tight >= loose
    assert delta_from_rdp(curve, DEFAULT_ORDERS, loose * 1.1 + 0.01, conversion)[0] <= (
        delta_from_rdp(curve, DEFAULT_ORDERS, loose, conversion)[0]
    )


@pytest.mark.parametrize("conversion", ["classic", "improved"])
def test_batch_of_curves_matches_one_by_one(conversion):
    grid = poisson_gaussian_rdp([[1e-3], [0.01], [0.1]], [0.8, 1.5], DEFAULT_ORDERS) * 1000
    epsilons, orders = epsilon_from_rdp(grid, DEFAULT_ORDERS, 1e-5, conversion)
    deltas_, delta_orders = delta_from_rdp(grid, DEFAULT_ORDERS, 2.0, conversion)
    assert epsilons.shape == orders.shape == deltas_.shape == (3, 2)
    for index in np.ndindex(3, 2):
        assert (epsilons[index], orders[index]) == epsilon_from_rdp(
            grid[index], DEFAULT_ORDERS, 1e-5, conversion
        )
        assert (deltas_[index], delta_orders[index]) == delta_from_rdp(
            grid[index], DEFAULT_ORDERS, 2.0, conversion
        )


def test_classic_formula_by_hand():
    # One order: epsilon = rdp + log(1/delta)/(alpha-1) = 0.5 + log(1e5)/9.
    assert epsilon_from_rdp([0.5], [10.0], 1e-5, "classic") == (
        pytest.approx(0.5 + np.log(1e5) / 9, rel=1e-15),
        10.0,
    )
    # delta = exp((alpha-1)(rdp-eps)) = exp(9 * (0.5 - 2)).
    assert delta_from_rdp([0.5], [10.0], 2.0, "classic")[0] == pytest.approx(
        np.exp(-13.5), rel=1e-14
    )


def test_improved_formula_by_hand():
    expected = 0.5 + np.log(0.9) - (np.log(1e-5) + np.log(10.0)) / 9
    assert epsilon_from_rdp([0.5], [10.0], 1e-5)[0] == pytest.approx(expected, rel=1e-15)


def test_kl_shortcut_gives_zero_epsilon():
    # sqrt(1 - exp(-1e-12)) ~ 1e-6 <= delta = 1e-5: total variation already below delta.
    assert epsilon_from_rdp([1e-12, 1e-12], [2.0, 3.0], 1e-5)[0] == 0.0


def test_infinite_rdp_gives_infinite_epsilon_and_unit_delta():
    assert epsilon_from_rdp([np.inf], [2.0], 1e-5)[0] == np.inf
    assert delta_from_rdp([np.inf], [2.0], 1.0)[0] == 1.0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: epsilon_from_rdp([1.0], [2.0], 0.0), "delta"),
        (lambda: epsilon_from_rdp([1.0], [2.0], 1.0), "delta"),
        (lambda: epsilon_from_rdp([1.0], [2.0], float("nan")), "delta"),
        (lambda: delta_from_rdp([1.0], [2.0], -0.1), "epsilon"),
        (lambda: delta_from_rdp([1.0], [2.0], float("inf")), "epsilon"),
        (lambda: epsilon_from_rdp([1.0], [1.0], 1e-5), "orders"),
        (lambda: epsilon_from_rdp([-1.0], [2.0], 1e-5), "rdp"),
        (lambda: epsilon_from_rdp([1.0, 2.0], [2.0], 1e-5), "rdp"),
        (lambda: epsilon_from_rdp([1.0], [2.0], 1e-5, "tight"), "conversion"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()
