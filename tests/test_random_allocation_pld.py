"""Random allocation's certified PLD bracket against closed forms, mpmath quadrature, the
Monte-Carlo estimate and the RDP bound."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import PldAccountant
from accounting.accountant import UnsupportedEventError
from accounting.events import Gaussian, NoOp, RandomAllocation, SelfComposed
from accounting.pld.random_allocation import (
    MAX_ALLOCATION_STEPS,
    RandomAllocationPair,
    allocation_rounds,
    random_allocation_pld_epsilon_bounds,
)
from accounting.random_allocation import random_allocation_epsilon, random_allocation_monte_carlo


def _bisect(function, low, high, iterations=80):
    """Root of a decreasing ``function`` in ``[low, high]`` (mpmath numbers)."""
    for _ in range(iterations):
        mid = (low + high) / 2
        if function(mid) > 0:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _gaussian_epsilon(sigma: float, delta: float) -> float:
    """Exact epsilon of the Gaussian mechanism (Balle & Wang 2018), in mpmath."""
    with mpmath.workdps(30):
        mu = 1 / mpmath.mpf(sigma)

        def excess(eps):
            return (mpmath.ncdf(mu / 2 - eps / mu)
                    - mpmath.exp(eps) * mpmath.ncdf(-mu / 2 - eps / mu) - delta)

        return float(_bisect(excess, mpmath.mpf(0), mpmath.mpf(200)))


def _two_step_delta(sigma: float, eps, direction: str):
    """Exact delta(eps) of the two-step pair by one mpmath integral.

    Under Q, with u = (x1 + x2) / sqrt(2) and w = (x1 - x2) / sqrt(2) (independent
    N(0, sigma^2)), the ratio is R = c exp(a u) cosh(a w) with a = 1 / (sqrt(2) sigma^2) and
    c = exp(-1 / (2 sigma^2)). Remove: E_Q[(R - e^eps)_+]; add: E_Q[(1 - e^eps R)_+]; the
    expectation over u is the lognormal call/put closed form.
    """
    s = mpmath.mpf(sigma)
    a = 1 / (mpmath.sqrt(2) * s**2)
    c = mpmath.exp(-1 / (2 * s**2))
    growth = mpmath.exp(a**2 * s**2 / 2)

    def inner(w):
        k = c * mpmath.cosh(a * w)
        if direction == "remove":
            u0 = (eps - mpmath.log(k)) / a
            value = (k * growth * mpmath.ncdf(a * s - u0 / s)
                     - mpmath.exp(eps) * mpmath.ncdf(-u0 / s))
        else:
            kk = mpmath.exp(eps) * k
            u1 = -mpmath.log(kk) / a
            value = mpmath.ncdf(u1 / s) - kk * growth * mpmath.ncdf(u1 / s - a * s)
        return mpmath.npdf(w, 0, s) * value

    return mpmath.quad(inner, [-mpmath.inf, -5 * s, 0, 5 * s, mpmath.inf])


def _two_step_epsilon(sigma: float, delta: float, guess: float) -> float:
    """Exact epsilon of one epoch of two steps (worse direction), by the secant method from
    ``guess`` (delta(eps) is smooth and decreasing)."""
    out = 0.0
    with mpmath.workdps(16):
        for direction in ("remove", "add"):
            def log_excess(eps, direction=direction):
                return mpmath.log(_two_step_delta(sigma, eps, direction)) - mpmath.log(delta)

            root = mpmath.findroot(log_excess, (mpmath.mpf(guess), mpmath.mpf(guess) * 1.01),
                                   solver="secant", tol=1e-20)
            assert abs(_two_step_delta(sigma, root, direction) / delta - 1) < 1e-9
            out = max(out, float(root))
    return out


def _bounds(steps, sigma, delta, epochs=1, selections=1, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        event = SelfComposed(RandomAllocation(steps, Gaussian(sigma), selections), epochs)
        return PldAccountant(**options).compose(event).get_epsilon_bounds(delta)


@pytest.mark.parametrize("sigma,delta", [(0.8, 1e-5), (1.0, 1e-3), (2.5, 1e-6)])
def test_one_step_is_the_gaussian(sigma, delta):
    exact = _gaussian_epsilon(sigma, delta)
    bounds = _bounds(1, sigma, delta)
    assert bounds.lower <= exact <= bounds.upper
    assert bounds.upper - bounds.lower <= 2e-3


@pytest.mark.parametrize("steps,sigma,delta", [(4, 2.0, 1e-5), (7, 3.0, 1e-4)])
def test_all_steps_selected_is_the_composed_gaussian(steps, sigma, delta):
    # k = t: every record in every step, the Gaussian t times (noise sigma / sqrt(t))
    exact = _gaussian_epsilon(sigma / math.sqrt(steps), delta)
    bounds = _bounds(steps, sigma, delta, selections=steps)
    assert bounds.lower <= exact <= bounds.upper
    assert bounds.upper - bounds.lower <= 2e-3


@pytest.mark.parametrize("sigma,delta", [(1.0, 1e-3), (0.7, 1e-5), (4.0, 1e-10)])
def test_two_steps_against_quadrature(sigma, delta):
    bounds = _bounds(2, sigma, delta)
    exact = _two_step_epsilon(sigma, delta, bounds.upper)
    assert bounds.lower <= exact <= bounds.upper
    assert bounds.upper - exact <= 2e-3


@pytest.mark.parametrize("sigma,delta", [(1.0, 1e-3), (1.5, 1e-6)])
def test_two_step_pair_delta_against_quadrature(sigma, delta):
    # the per-direction upper and lower laws, composed once, bracket the exact delta(eps)
    for direction in ("remove", "add"):
        pair = RandomAllocationPair(2, sigma, direction)
        for eps in (0.1, 0.8, 2.0):
            with mpmath.workdps(20):
                exact = float(_two_step_delta(sigma, mpmath.mpf(eps), direction))
            upper = pair.dominating_pmf(1e-3, 1e-15, None)
            got = float(np.sum(upper.masses * -np.expm1(np.minimum(eps - upper.losses, 0.0))))
            got += upper.infinity_mass
            assert exact <= got <= exact * (1 + 1e-2) + 1e-12


def test_not_below_the_monte_carlo_confidence_bound():
    estimate = random_allocation_monte_carlo(100, 1.0, 1e-3, samples=200_000, seed=3)
    bounds = _bounds(100, 1.0, 1e-3)
    assert bounds.upper >= estimate.epsilon_low
    assert bounds.lower <= estimate.epsilon_high
    estimate = random_allocation_monte_carlo(20, 1.2, 1e-3, epochs=3, samples=200_000, seed=4)
    bounds = _bounds(20, 1.2, 1e-3, epochs=3)
    assert bounds.upper >= estimate.epsilon_low
    assert bounds.lower <= estimate.epsilon_high


def test_tutorial_setting_is_tight_and_below_rdp():
    bounds = _bounds(240, 1.3, 1e-5, epochs=15)
    assert bounds.tolerance_met
    rdp = random_allocation_epsilon(240, 1.3, 1e-5, epochs=15)
    assert bounds.upper < rdp
    assert bounds.upper - bounds.lower <= 1e-3


def test_rounds_of_k_selections():
    assert allocation_rounds(10, 3) == ((3, 2), (4, 1))
    assert allocation_rounds(12, 3) == ((4, 3),)
    assert allocation_rounds(5, 5) == ((1, 5),)
    # k of t never spends more than one record placed in k independent epochs of t / k steps
    # (its rounds), and more than one selection of t steps
    one = _bounds(30, 1.0, 1e-5)
    three = _bounds(30, 1.0, 1e-5, selections=3)
    assert three.lower >= one.lower
    assert three.upper <= _bounds(10, 1.0, 1e-5, epochs=3).upper + 1e-12


def test_refusals_and_fallbacks():
    with pytest.raises(UnsupportedEventError, match="add/remove"):
        PldAccountant(neighboring="replace_one").compose(RandomAllocation(10, Gaussian(1.0)))
    with pytest.raises(UnsupportedEventError, match="Gaussian"):
        PldAccountant().compose(RandomAllocation(10, NoOp()))
    with pytest.raises(ValueError, match="delta"):
        random_allocation_pld_epsilon_bounds(10, 1.0, 1.5)
    with pytest.raises(ValueError, match="selections"):
        random_allocation_pld_epsilon_bounds(10, 1.0, 1e-5, selections=11)
    with pytest.raises(ValueError, match="noise_multiplier"):
        random_allocation_pld_epsilon_bounds(10, -1.0, 1e-5)
    # outside the PLD's range the bracket is [0, RDP's bound], flagged
    for steps, sigma in ((10, 0.1), (MAX_ALLOCATION_STEPS + 1, 1.0)):
        bounds = _bounds(steps, sigma, 1e-5)
        assert not bounds.tolerance_met
        assert bounds.lower == 0.0
        assert bounds.upper == pytest.approx(random_allocation_epsilon(steps, sigma, 1e-5),
                                             rel=1e-12)
    pair = RandomAllocationPair(10, 0.1, "remove")
    assert pair.loss_extent(1e-10) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="direction"):
        RandomAllocationPair(10, 1.0, "replace")


@settings(max_examples=4, deadline=None)
@given(st.integers(8, 60), st.floats(0.8, 3.0), st.floats(1.05, 1.6),
       st.sampled_from([1e-7, 1e-5, 1e-3]))
def test_monotone_in_sigma_and_below_rdp(steps, sigma, factor, delta):
    low_noise = _bounds(steps, sigma, delta)
    high_noise = _bounds(steps, sigma * factor, delta)
    # more noise never spends more: the certified ends cannot cross
    assert high_noise.lower <= low_noise.upper
    assert low_noise.lower <= random_allocation_epsilon(steps, sigma, delta)
    assert 0.0 <= low_noise.lower <= low_noise.upper


@settings(max_examples=5, deadline=None)
@given(st.integers(2, 300), st.floats(0.8, 4.0), st.sampled_from([1e-3, 1e-4, 1e-2]),
       st.sampled_from(["remove", "add"]))
def test_upper_law_keeps_its_mass(steps, sigma, step, direction):
    pair = RandomAllocationPair(steps, sigma, direction)
    upper = pair.dominating_pmf(step, 1e-14, None)
    lower = pair.dominated_pmf(step, 1e-14, None)
    # the upper law loses no mass (up to rounding); the lower law never invents P-mass
    assert upper.masses.min() >= 0.0
    assert float(upper.masses.sum()) + upper.infinity_mass >= 1.0 - 1e-12
    assert float(lower.masses.sum()) <= 1.0 + 1e-12
    assert float(lower.q_masses.sum()) >= 1.0 - 1e-9
    # the bracket's ends: at every eps the upper delta is at least the lower law's threshold
    for eps in (0.0, 0.5, 2.0):
        up = float(np.sum(upper.masses * -np.expm1(np.minimum(eps - upper.losses, 0.0))))
        up += upper.infinity_mass
        p_tail = np.cumsum(lower.masses[::-1])[::-1]
        q_tail = np.cumsum(lower.q_masses[::-1])[::-1]
        assert float(np.max(p_tail - math.exp(eps) * q_tail)) <= up + 1e-12


def test_rdp_cap_of_random_allocation_is_asked_for_only_when_needed(monkeypatch):
    """RDP's random-allocation bound costs more than the PLD: a bracket that meets its target
    does not compute it (and is the same bracket), one that cannot be composed falls back to
    it."""
    import accounting
    from accounting.events import Gaussian, RandomAllocation, SelfComposed

    event = SelfComposed(RandomAllocation(240, Gaussian(1.3)), 15)
    expected = accounting.PldAccountant().compose(event).get_epsilon_bounds(1e-5)

    def refuse(self, delta):
        raise AssertionError("RDP cap computed although the PLD bracket met its target")

    with monkeypatch.context() as patch:
        patch.setattr(accounting.PldAccountant, "_rdp_epsilon", refuse)
        bounds = accounting.PldAccountant().compose(event).get_epsilon_bounds(1e-5)
    assert (bounds.lower, bounds.upper) == (expected.lower, expected.upper)
    rdp = accounting.RdpAccountant().compose(event).get_epsilon(1e-5)
    assert expected.tolerance_met and expected.upper <= rdp
