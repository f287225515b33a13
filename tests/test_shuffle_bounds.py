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
