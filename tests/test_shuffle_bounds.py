"""Shuffled epochs: certified lower bound (Chua et al. 2024) and amplification-free upper bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.gdp import gaussian_epsilon
from accounting.shuffle import shuffle_lower_bound, shuffle_upper_bound


@pytest.mark.parametrize("sigma,epochs,delta", [(1.0, 1, 1e-5), (0.8, 4, 1e-3), (2.0, 9, 1e-6)])
def test_one_batch_is_the_gaussian(sigma, epochs, delta):
    # t = 1: P = N(2, sigma^2), Q = N(1, sigma^2), the Gaussian mechanism composed `epochs` times
    exact = gaussian_epsilon(delta, sigma, steps=epochs)
    bound = shuffle_lower_bound(1, sigma, epochs, delta)
    assert bound.epsilon <= exact
    assert bound.epsilon >= exact - epochs * bound.discretization - 1e-6


@pytest.mark.parametrize("batches,sigma,epochs", [(240, 1.3, 15), (50, 0.9, 3), (10, 2.0, 1)])
def test_lower_below_upper(batches, sigma, epochs):
    lower = shuffle_lower_bound(batches, sigma, epochs, 1e-5).epsilon
    assert 0.0 < lower <= shuffle_upper_bound(sigma, epochs, 1e-5, accountant="pld")
    assert lower <= shuffle_upper_bound(sigma, epochs, 1e-5)


def test_upper_is_the_gaussian_once_per_epoch():
    assert shuffle_upper_bound(1.3, 15, 1e-5, accountant="pld") == pytest.approx(
        gaussian_epsilon(1e-5, 1.3, steps=15), rel=1e-3)


@settings(max_examples=8, deadline=None)
@given(batches=st.integers(1, 300), sigma=st.floats(0.7, 3.0), epochs=st.integers(1, 6))
def test_monotone_in_epochs_and_sigma(batches, sigma, epochs):
    base = shuffle_lower_bound(batches, sigma, epochs, 1e-5, discretization=1e-3).epsilon
    more = shuffle_lower_bound(batches, sigma, epochs + 2, 1e-5, discretization=1e-3).epsilon
    noisier = shuffle_lower_bound(batches, sigma * 1.3, epochs, 1e-5,
                                  discretization=1e-3).epsilon
    slack = 3 * (epochs + 2) * 1e-3  # the rounding of losses to the grid, per epoch
    assert more >= base - slack
    assert noisier <= base + slack


def test_bad_arguments_and_capped_work():
    with pytest.raises(ValueError, match="batches"):
        shuffle_lower_bound(0, 1.0, 1, 1e-5)
    with pytest.raises(ValueError, match="delta"):
        shuffle_lower_bound(10, 1.0, 1, 1.0)
    with pytest.raises(ValueError, match="MAX_SHUFFLE_GRID"):
        shuffle_lower_bound(10, 1.0, 10**6, 1e-5, discretization=1e-3)
    with pytest.raises(ValueError, match="epochs"):
        shuffle_upper_bound(1.0, 0, 1e-5)


def _gaussian_epsilon_mpmath(mu, delta) -> float:
    """Exact epsilon of the Gaussian mechanism at ``mu = 1 / sigma`` (Balle & Wang 2018,
    Theorem 8), by bisection at 60 digits."""
    import mpmath

    with mpmath.workdps(60):
        mu, delta = mpmath.mpf(mu), mpmath.mpf(delta)

        def excess(eps):
            return (mpmath.ncdf(mu / 2 - eps / mu)
                    - mpmath.exp(eps) * mpmath.ncdf(-mu / 2 - eps / mu) - delta)

        lo, hi = mpmath.mpf(0), mu**2 + 100 * mu
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
        return float(lo)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("sigma", [1e-6, 1e-3, 0.05])
def test_small_noise_coarsens_the_default_grid(sigma):
    """Where the default grid would exceed MAX_SHUFFLE_GRID, it is coarsened: still a lower
    bound on the Gaussian's exact epsilon (one batch), within the epoch's grid step."""
    bound = shuffle_lower_bound(1, sigma, 1, 1e-5)
    exact = _gaussian_epsilon_mpmath(1 / sigma, 1e-5)
    assert bound.epsilon <= exact
    assert bound.epsilon >= exact - 2 * bound.discretization - 1e-9 * exact


@pytest.mark.parametrize("kwargs,names", [
    (dict(noise_multiplier=1e-300), ["noise_multiplier"]),
    (dict(noise_multiplier=1e-160), ["noise_multiplier"]),
    (dict(noise_multiplier=1e160), ["noise_multiplier"]),
    (dict(epochs=10**400), ["epochs"]),
    (dict(noise_multiplier=1e-6, discretization=1e-3),
     ["noise_multiplier", "discretization", "epochs"]),
])
def test_out_of_range_arguments_are_named(kwargs, names):
    """No ZeroDivisionError / OverflowError: a ValueError naming what is out of range."""
    with pytest.raises(ValueError) as error:
        shuffle_lower_bound(**{"batches": 240, "noise_multiplier": 1.3, "epochs": 3,
                               "delta": 1e-5, **kwargs})
    assert all(name in str(error.value) for name in names), str(error.value)
