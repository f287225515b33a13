"""Random allocation: certified RDP against closed forms, mpmath and the Monte-Carlo estimate."""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.random_allocation import (
    MonteCarloEstimate,
    _add_log_moments_upper,
    _log_phi_upper,
    _remove_log_moments,
    random_allocation_epsilon,
    random_allocation_monte_carlo,
    random_allocation_rdp,
)


def _brute_remove_moment(t: int, sigma: float, alpha: int) -> mpmath.mpf:
    """E_Q[R^alpha] by enumerating the compositions (m_1..m_t) of alpha (multinomial sum)."""
    total = mpmath.mpf(0)
    for ms in itertools.product(range(alpha + 1), repeat=t):
        if sum(ms) != alpha:
            continue
        term = mpmath.factorial(alpha)
        for m in ms:
            term *= mpmath.exp(mpmath.mpf(m * (m - 1)) / (2 * mpmath.mpf(sigma) ** 2))
            term /= mpmath.factorial(m)
        total += term
    return total / mpmath.mpf(t) ** alpha


def _two_step_log_moment(sigma: float, power: int) -> mpmath.mpf:
    """log E_Q[R^power] for t = 2 by one mpmath integral (power may be negative).

    Rotating (x1, x2) to (u, w) = ((x1 + x2), (x1 - x2)) / sqrt(2): R = exp(-1/(2 sigma^2))
    exp(u / (sqrt(2) sigma^2)) cosh(w / (sqrt(2) sigma^2)), u and w independent N(0, sigma^2).
    """
    s = mpmath.mpf(sigma)
    p = mpmath.mpf(power)
    integral = mpmath.quad(
        lambda z: mpmath.npdf(z) * mpmath.cosh(z / (mpmath.sqrt(2) * s)) ** p,
        [-mpmath.inf, -5, 0, 5, mpmath.inf],
    )
    return -p / (2 * s**2) + p**2 / (4 * s**2) + mpmath.log(integral)


def test_one_step_is_the_gaussian():
    orders = np.array([1.5, 2.0, 3.0, 7.5, 32.0, 2000.0])
    for sigma in (0.5, 1.0, 3.0):
        got = random_allocation_rdp(1, 1, sigma, orders)
        np.testing.assert_allclose(got, orders / (2 * sigma**2), rtol=1e-15)


@pytest.mark.parametrize("t,sigma,alpha", [(2, 1.0, 5), (3, 0.7, 4), (4, 2.0, 6), (5, 1.3, 3)])
def test_remove_moments_against_brute_force(t, sigma, alpha):
    mpmath.mp.dps = 40
    moments = _remove_log_moments(t, sigma, alpha)
    for k in range(2, alpha + 1):
        expected = float(mpmath.log(_brute_remove_moment(t, sigma, k)))
        assert moments[k] >= expected
        assert moments[k] == pytest.approx(expected, rel=1e-11, abs=1e-13)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 2.5])
def test_two_steps_against_integral(sigma):
    mpmath.mp.dps = 20
    orders = np.array([2.0, 3.0, 5.0, 9.0])
    rdp = random_allocation_rdp(2, 1, sigma, orders)
    moments = _remove_log_moments(2, sigma, 9)
    for alpha, bound in zip(orders.astype(int), rdp, strict=True):
        remove = float(_two_step_log_moment(sigma, alpha)) / (alpha - 1)
        add = float(_two_step_log_moment(sigma, 1 - alpha)) / (alpha - 1)
        assert moments[alpha] / (alpha - 1) == pytest.approx(remove, rel=1e-10)
        assert bound >= max(remove, add)
        # the numerical add-direction bound alone is also above the exact add RDP
        assert _add_log_moments_upper(2, sigma, np.array([alpha - 1.0]))[0] / (alpha - 1) >= add


def test_rdp_is_below_the_gaussian_and_amplifies():
    orders = np.array([2.0, 4.0, 16.0, 64.0])
    rdp = random_allocation_rdp(240, 1, 1.3, orders)
    assert np.all(rdp <= orders / (2 * 1.3**2))
    # far below the Gaussian at small orders: amplification by allocation
    assert rdp[0] < 0.05 * 2 / (2 * 1.3**2)


def test_selections_decompose_into_rounds():
    orders = np.array([2.0, 8.0])
    np.testing.assert_allclose(random_allocation_rdp(100, 4, 1.0, orders),
                               4 * random_allocation_rdp(25, 1, 1.0, orders))
    np.testing.assert_allclose(random_allocation_rdp(103, 4, 1.0, orders),
                               4 * random_allocation_rdp(25, 1, 1.0, orders))


@pytest.mark.parametrize("t,sigma,epochs,delta", [(20, 1.0, 1, 1e-2), (50, 1.5, 2, 1e-2)])
def test_bound_above_monte_carlo_lower_limit(t, sigma, epochs, delta):
    estimate = random_allocation_monte_carlo(t, sigma, delta, epochs=epochs, samples=40_000,
                                             seed=7, confidence=0.999)
    assert isinstance(estimate, MonteCarloEstimate) and not estimate.is_bound
    assert estimate.epsilon_low <= estimate.epsilon_estimate <= estimate.epsilon_high
    assert random_allocation_epsilon(t, sigma, delta, epochs=epochs) >= estimate.epsilon_low


def test_monte_carlo_one_step_matches_gaussian():
    from accounting.gdp import gaussian_epsilon

    estimate = random_allocation_monte_carlo(1, 1.0, 1e-2, samples=200_000, seed=3)
    exact = gaussian_epsilon(1e-2, 1.0)
    assert estimate.epsilon_low - 0.02 <= exact <= estimate.epsilon_high + 0.02


_orders = st.lists(st.floats(1.01, 80.0), min_size=1, max_size=5)


@settings(max_examples=15, deadline=None)
@given(t=st.integers(1, 300), sigma=st.floats(0.5, 5.0), orders=_orders)
def test_rdp_nondecreasing_in_order(t, sigma, orders):
    orders = np.sort(np.array(orders))
    rdp = random_allocation_rdp(t, 1, sigma, orders)
    assert np.all(np.diff(rdp) >= -1e-12 * (1 + rdp[1:]))
    assert np.all(rdp <= orders / (2 * sigma**2) + 1e-12)


@settings(max_examples=6, deadline=None)
@given(t=st.integers(2, 200), sigma=st.floats(0.6, 4.0), factor=st.floats(1.05, 2.0))
def test_epsilon_monotone_in_sigma_steps_epochs(t, sigma, factor):
    orders = np.arange(2.0, 41.0)
    base = random_allocation_epsilon(t, sigma, 1e-5, orders=orders)
    assert random_allocation_epsilon(t, sigma * factor, 1e-5, orders=orders) <= base + 1e-9
    assert random_allocation_epsilon(2 * t, sigma, 1e-5, orders=orders) <= base + 1e-9
    assert random_allocation_epsilon(t, sigma, 1e-5, epochs=2, orders=orders) >= base


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0, selections=1, noise_multiplier=1.0, orders=[2.0]), "steps"),
    (dict(steps=5, selections=6, noise_multiplier=1.0, orders=[2.0]), "selections"),
    (dict(steps=5, selections=1, noise_multiplier=0.0, orders=[2.0]), "noise_multiplier"),
    (dict(steps=5, selections=1, noise_multiplier=1.0, orders=[1.0]), "orders"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_allocation_rdp(**kwargs)


def test_monte_carlo_refuses_unbounded_work():
    with pytest.raises(ValueError, match="samples"):
        random_allocation_monte_carlo(10, 1.0, 1e-3, samples=10**9)
    with pytest.raises(ValueError, match="MAX_MONTE_CARLO_WORK"):
        random_allocation_monte_carlo(10**4, 1.0, 1e-3, samples=10**6, epochs=100)
    # integers beyond the float range are refused by name, not by an OverflowError
    for name in ("steps", "epochs"):
        with pytest.raises(ValueError, match=name):
            random_allocation_monte_carlo(**{"steps": 10, "noise_multiplier": 1.0,
                                             "delta": 1e-3, name: 10**400})
    with pytest.raises(ValueError, match="steps"):  # one row of draws is held at once
        random_allocation_monte_carlo(2**20 + 1, 1.0, 1e-3, samples=2)


@pytest.mark.parametrize("sigma", [1e-300, 1e-160, 1e160, 1e300])
def test_monte_carlo_refuses_noise_beyond_its_range(sigma):
    with pytest.raises(ValueError, match=r"noise_multiplier must lie in \[1e-100, 1e100\]"):
        random_allocation_monte_carlo(10, sigma, 1e-3, samples=100, seed=1)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("sigma", [1e-300, 1e-160, 1e-120, 1e120, 1e160, 1e300])
def test_extreme_noise_gets_the_gaussian_bound(sigma):
    """Beyond [1e-100, 1e100] the bound is alpha / (2 sigma^2), evaluated without overflow:
    inf where it exceeds the float range, never a ZeroDivisionError or OverflowError."""
    orders = np.array([2.0, 8.0, 300.0])
    rdp = random_allocation_rdp(100, 1, sigma, orders)
    exact = [float(mpmath.mpf(a) / (2 * mpmath.mpf(sigma) ** 2)) for a in orders]
    assert rdp.tolist() == pytest.approx(exact, rel=1e-12)
    epsilon = random_allocation_epsilon(100, sigma, 1e-5)
    if sigma < 1.0:  # at least the Gaussian's privacy loss at its mean, 1 / (2 sigma^2)
        assert epsilon >= float(1 / (2 * mpmath.mpf(sigma) ** 2))
    else:
        assert 0.0 <= epsilon <= 1e-100


@pytest.mark.filterwarnings("error")
def test_epochs_beyond_the_float_range():
    """10**400 epochs: inf where each epoch spends something, 0 where none does (no NaN)."""
    assert random_allocation_epsilon(100, 1.0, 1e-5, epochs=10**400) == math.inf
    assert random_allocation_epsilon(100, 1e300, 1e-5, epochs=10**400) == 0.0


def test_huge_orders_fall_back_to_a_bound():
    rdp = random_allocation_rdp(10**6, 1, 2.0, [2.0, 5000.0])
    assert math.isfinite(rdp[1]) and rdp[1] <= 5000.0 / 8.0
    assert rdp[0] < 1e-4


@settings(max_examples=20, deadline=None)
@given(st.floats(0.3, 20.0), st.lists(st.floats(0.0, 50.0), min_size=1, max_size=20))
def test_laplace_bound_matrix_path_agrees_with_log_space(sigma, values):
    # the Taylor polynomial as one matrix product (small arguments) against the same bound
    # taken term by term in log space (forced by a huge argument beside them)
    v = np.array(values)
    direct = _log_phi_upper(v, 1.0 / sigma**2)
    logged = _log_phi_upper(np.append(v, 1e60), 1.0 / sigma**2)[:-1]
    np.testing.assert_allclose(direct, logged, rtol=1e-11, atol=1e-13)
    # and it lies above the Laplace transform of the lognormal (mpmath quadrature over
    # |z| <= 12, a lower estimate of it)
    s2 = 1.0 / sigma**2
    for value, bound in zip(v[:3], direct[:3], strict=False):
        with mpmath.workdps(20):
            part = mpmath.quad(lambda z, w=value: mpmath.npdf(z) * mpmath.exp(
                -w * mpmath.exp(z * mpmath.sqrt(s2) - s2 / 2)), mpmath.linspace(-12, 12, 25))
        assert float(mpmath.log(part)) <= bound + 1e-12
