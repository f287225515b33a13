"""RDP of the Poisson-subsampled Gaussian against closed forms and the mpmath reference."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import DEFAULT_ORDERS, poisson_gaussian_rdp, reference
from tests.strategies import (
    fractional_orders,
    integer_orders,
    noise_multipliers,
    sample_rates,
    typical_noise_multipliers,
    typical_sample_rates,
)

RELATIVE_TOLERANCE = 1e-10


def _relative_error(value: float, exact) -> float:
    return float(abs(mpmath.mpf(value) - exact) / abs(exact))


@settings(max_examples=60, deadline=None)
@given(q=sample_rates, sigma=noise_multipliers, alpha=fractional_orders)
def test_fractional_orders_agree_with_50_digit_integration(q, sigma, alpha):
    exact = reference.rdp(q, sigma, alpha, method="integral")
    value = poisson_gaussian_rdp(q, sigma, [alpha])[0]
    assert np.isfinite(value)
    assert _relative_error(value, exact) <= RELATIVE_TOLERANCE


@settings(max_examples=60, deadline=None)
@given(q=sample_rates, sigma=noise_multipliers, alpha=integer_orders)
def test_integer_orders_agree_with_50_digit_binomial_sum(q, sigma, alpha):
    exact = reference.rdp(q, sigma, alpha, method="binomial")
    value = poisson_gaussian_rdp(q, sigma, [alpha])[0]
    assert np.isfinite(value)
    assert _relative_error(value, exact) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize(
    ("q", "sigma", "alpha"),
    [
        (1e-8, 1e4, 1.0001),  # A - 1 ~ 5e-29: all digits lost if log(A) were taken directly
        (1e-8, 1.0, 2.5),
        (1e-8, 0.1, 10.9),  # two modes: one near 0, one far out in the tail
        (0.5, 0.1, 9999.5),  # mode at t ~ 1e5
        (0.999999, 0.3, 1.5),
        (256 / 60000, 1.1, 8.1),
        (4e-5, 1.2, 28.0),
        (0.3, 2.0, 1024.0),
        (1e-8, 1e4, 10_000.0),
        # Below the contract's sigma range, orders near 1: exp(s) overflows where psi still
        # needs its "- 1 - alpha u" (psi ~ (alpha - 1) u log u), found by accounting.testing.
        (0.9999, 0.0237, 1.01),
        (0.5, 0.03, 1.000001),
    ],
)
def test_edge_cases_agree_with_reference(q, sigma, alpha):
    exact = reference.rdp(q, sigma, alpha)
    assert _relative_error(poisson_gaussian_rdp(q, sigma, [alpha])[0], exact) <= 1e-11


@given(sigma=noise_multipliers, alpha=st.one_of(fractional_orders, integer_orders))
def test_full_batch_is_the_gaussian_mechanism(sigma, alpha):
    assert poisson_gaussian_rdp(1.0, sigma, [alpha])[0] == pytest.approx(
        alpha / (2 * sigma**2), rel=1e-15
    )


@given(sigma=noise_multipliers)
def test_zero_sample_rate_spends_nothing(sigma):
    assert np.all(poisson_gaussian_rdp(0.0, sigma, DEFAULT_ORDERS) == 0.0)


def test_known_value_order_two_closed_form():
    # A_2 = 1 + q^2 (exp(1/sigma^2) - 1) for the order-2 binomial sum.
    q, sigma = 0.01, 1.5
    with mpmath.workdps(50):
        exact = mpmath.log(1 + mpmath.mpf(q) ** 2 * mpmath.expm1(1 / mpmath.mpf(sigma) ** 2))
    assert _relative_error(poisson_gaussian_rdp(q, sigma, [2])[0], exact) <= 1e-14


@settings(max_examples=50, deadline=None)
@given(q=typical_sample_rates, sigma=typical_noise_multipliers)
def test_rdp_non_decreasing_and_scaled_convex_in_order(q, sigma):
    rdp = poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
    assert np.all(np.diff(rdp) >= -1e-13 * rdp[1:])
    # (alpha - 1) RDP(alpha) = log A_alpha is convex in alpha (Hoelder): slopes increase.
    scaled = (DEFAULT_ORDERS - 1) * rdp
    slopes = np.diff(scaled) / np.diff(DEFAULT_ORDERS)
    assert np.all(np.diff(slopes) >= -1e-9 * np.abs(slopes[1:]) - 1e-300)


@settings(max_examples=50, deadline=None)
@given(
    q=typical_sample_rates,
    factor=st.floats(1.01, 10.0),
    sigma=typical_noise_multipliers,
)
def test_rdp_increases_with_sample_rate(q, factor, sigma):
    low = poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
    high = poisson_gaussian_rdp(min(1.0, q * factor), sigma, DEFAULT_ORDERS)
    assert np.all(high > low)


@settings(max_examples=50, deadline=None)
@given(q=typical_sample_rates, sigma=typical_noise_multipliers, factor=st.floats(1.01, 10.0))
def test_rdp_decreases_with_noise(q, sigma, factor):
    assert np.all(
        poisson_gaussian_rdp(q, sigma * factor, DEFAULT_ORDERS)
        < poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
    )


@settings(max_examples=30, deadline=None)
@given(q=typical_sample_rates, sigma=typical_noise_multipliers)
def test_subsampled_below_full_batch(q, sigma):
    assert np.all(
        poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
        <= poisson_gaussian_rdp(1.0, sigma, DEFAULT_ORDERS)
    )


def test_vectorised_over_parameters_matches_scalar_calls():
    q = np.array([[1e-4], [0.01], [0.5]])
    sigma = np.array([0.7, 1.1, 4.0])
    grid = poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
    assert grid.shape == (3, 3, DEFAULT_ORDERS.size)
    for i in range(3):
        for j in range(3):
            # The quadrature nodes may differ between a batch and a single call (see
            # _DIRECT_BUDGET), so the two agree to rounding, not bit for bit.
            np.testing.assert_allclose(
                grid[i, j], poisson_gaussian_rdp(q[i, 0], sigma[j], DEFAULT_ORDERS), rtol=1e-13
            )


def test_overflowing_rdp_is_inf_not_nan():
    values = poisson_gaussian_rdp([0.5, 1.0], 1e-160, [2.0, 2.5])
    assert np.all(np.isinf(values)) and not np.any(np.isnan(values))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sample_rate": -0.1}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_rate": float("nan")}, "sample_rate"),
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": float("nan")}, "noise_multiplier"),
        ({"noise_multiplier": float("inf")}, "noise_multiplier"),
        ({"orders": [1.0]}, "orders"),
        ({"orders": [0.5, 2]}, "orders"),
        ({"orders": []}, "orders"),
        ({"orders": [float("nan")]}, "orders"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    arguments = {"sample_rate": 0.01, "noise_multiplier": 1.0, "orders": [2.0]} | kwargs
    with pytest.raises(ValueError, match=name):
        poisson_gaussian_rdp(**arguments)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="sample_rate"):
        poisson_gaussian_rdp("0.1", 1.0, [2.0])
    with pytest.raises(TypeError, match="orders"):
        poisson_gaussian_rdp(0.1, 1.0, None)
