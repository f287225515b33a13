"""RDP of Gaussian steps on batches sampled without replacement (Wang, Balle, Kasiviswanathan
2019) and the RDP accountant's replace-one relation.

The reference is the paper's bound written out plainly in mpmath: the forward differences as
their alternating sums at enough digits to survive the cancellation, the binomial sum term by
term.
"""

from __future__ import annotations

import math
from functools import cache

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import DEFAULT_ORDERS
from accounting.accountant import UnsupportedEventError
from accounting.events import (
    Composed,
    Gaussian,
    NonPrivate,
    NoOp,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
    SelfComposed,
)
from accounting.rdp.accountant import RdpAccountant
from accounting.rdp.conversions import delta_from_rdp, epsilon_from_rdp
from accounting.rdp.sampled_gaussian import poisson_gaussian_rdp
from accounting.rdp.without_replacement import rdp_sampled_without_replacement
from tests.strategies import log_uniform

# ------------------------------------------------------------------ mpmath reference


@cache
def _gaussian_moments(sigma: float, digits: int) -> list:
    """``E[L^j] = exp((j - 1) j / (2 sigma^2))`` for ``j = 0 .. 257`` at ``digits`` digits."""
    with mpmath.workdps(digits):
        c = mpmath.mpf(1) / (2 * mpmath.mpf(sigma) ** 2)
        return [mpmath.exp(c * j * (j - 1)) for j in range(258)]


@cache
def _forward_difference(sigma: float, order: int) -> mpmath.mpf:
    """``sum_j C(l, j) (-1)^(l - j) exp((j - 1) j / (2 sigma^2))``, at doubling precision until
    two evaluations agree to 30 digits (the sum cancels by hundreds of digits at large noise)."""

    def alternating_sum(digits):
        moments = _gaussian_moments(sigma, digits)
        with mpmath.workdps(digits):
            return mpmath.fsum(mpmath.binomial(order, j) * (-1) ** (order - j) * moments[j]
                               for j in range(order + 1))

    digits = 60
    previous = alternating_sum(digits)
    while True:
        digits *= 2
        current = alternating_sum(digits)
        if current > 0 and abs(current - previous) <= mpmath.mpf(10) ** -30 * current:
            return current
        previous = current


def wbk_reference(q: float, sigma: float, alpha: int) -> float:
    """The WBK bound at an integer order, capped by the Gaussian's ``alpha / (2 sigma^2)``."""
    with mpmath.workdps(40):
        q_, sigma_ = mpmath.mpf(q), mpmath.mpf(sigma)
        total = mpmath.mpf(1)
        for i in range(2, alpha + 1):
            plain = 2 * mpmath.exp((i - 1) * i / (2 * sigma_**2))  # 2 e^((i - 1) eps(i))
            if alpha <= 256 or i == 2:
                low = _forward_difference(sigma, 2 * (i // 2))
                high = _forward_difference(sigma, 2 * ((i + 1) // 2))
                weight = min(4 * mpmath.sqrt(low * high), plain)
            else:
                weight = plain
            total += mpmath.binomial(alpha, i) * q_**i * weight
        return float(min(mpmath.log(total) / (alpha - 1), alpha / (2 * sigma_**2)))


@pytest.mark.parametrize("sigma", [0.3, 1.0, 4.0, 20.0, 80.0])
@pytest.mark.parametrize("q", [1e-5, 250 / 60000, 0.2, 0.7])
def test_integer_orders_match_mpmath(q, sigma):
    alphas = [2, 3, 4, 7, 32, 101, 255, 256, 257, 300]
    ours = rdp_sampled_without_replacement(q, sigma, alphas)
    reference = np.array([wbk_reference(q, sigma, alpha) for alpha in alphas])
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=0)


@pytest.mark.parametrize("q, sigma", [(250 / 60000, 1.3), (0.2, 6.0), (0.05, 0.6)])
def test_fractional_orders_interpolate_log_a(q, sigma):
    # Corollary 10: (alpha - 1) RDP is linear between neighbouring integer orders
    alphas = np.array([1.25, 1.5, 2.5, 7.3, 100.9, 256.5, 290.2])
    below, above = np.floor(alphas), np.ceil(alphas)

    def log_a(order):
        if order == 1:
            return 0.0
        gaussian = order / (2 * sigma**2)
        rdp = wbk_reference(q, sigma, int(order))
        assert rdp < gaussian  # the cap does not bind here, so log A is (order - 1) rdp
        return (order - 1) * rdp

    fraction = alphas - below
    expected = np.array([((1 - f) * log_a(b) + f * log_a(a)) / (x - 1)
                         for x, b, a, f in zip(alphas, below, above, fraction, strict=True)])
    expected = np.minimum(expected, alphas / (2 * sigma**2))
    np.testing.assert_allclose(rdp_sampled_without_replacement(q, sigma, alphas), expected,
                               rtol=1e-10, atol=0)


def test_order_two_closed_form():
    # A_2 = 1 + q^2 min(4 (e^(1/sigma^2) - 1), 2 e^(1/sigma^2))
    for q, sigma in [(1e-4, 0.8), (0.01, 1.0), (0.3, 3.0), (0.9, 0.5)]:
        e = math.exp(1 / sigma**2)
        expected = min(math.log1p(q * q * min(4 * (e - 1), 2 * e)), 1 / sigma**2)
        assert rdp_sampled_without_replacement(q, sigma, 2.0)[0] == pytest.approx(
            expected, rel=1e-13)


def test_closed_forms_at_q_zero_and_one():
    orders = np.array([1.01, 1.5, 2.0, 3.0, 64.0, 1e3, 1e6])
    for sigma in [0.1, 1.0, 7.5, 1e4]:
        assert np.array_equal(rdp_sampled_without_replacement(1.0, sigma, orders),
                              orders / (2 * sigma**2))
        assert np.array_equal(rdp_sampled_without_replacement(0.0, sigma, orders),
                              np.zeros(orders.shape))


def test_cap_by_the_unsampled_gaussian():
    # near q = 1 the binomial bound exceeds the Gaussian's alpha / (2 sigma^2), which bounds the
    # subsampled mechanism too (joint convexity)
    orders = np.array([2.0, 10.0, 100.0])
    for sigma in [0.5, 2.0]:
        uncapped = [wbk_reference(0.9, sigma, int(a)) for a in orders]
        assert np.array_equal(rdp_sampled_without_replacement(0.9, sigma, orders),
                              np.minimum(uncapped, orders / (2 * sigma**2)))
    assert rdp_sampled_without_replacement(0.9, 2.0, 2.0)[0] == 2.0 / 8.0


def test_large_orders_stay_bounded():
    # MAX_ORDER and orders just above the forward-difference range, at extreme parameters
    orders = np.array([257.0, 1000.5, 1e5, 1e6])
    for q, sigma in [(1e-9, 1e-3), (0.5, 1e-160), (1e-3, 1e300), (0.999999, 50.0)]:
        values = rdp_sampled_without_replacement(q, sigma, orders)
        assert not np.any(np.isnan(values))
        assert np.all(values >= 0)
        with np.errstate(over="ignore"):  # inf at sigma = 1e-160
            assert np.all(values <= orders / (2 * np.float64(sigma) ** 2))


@pytest.mark.parametrize(
    "args, error, name",
    [
        ((-0.1, 1.0, [2.0]), ValueError, "sample_rate"),
        ((1.5, 1.0, [2.0]), ValueError, "sample_rate"),
        ((0.1, 0.0, [2.0]), ValueError, "noise_multiplier"),
        ((0.1, math.inf, [2.0]), ValueError, "noise_multiplier"),
        ((0.1, 1.0, [1.0]), ValueError, "orders"),
        ((0.1, 1.0, [2e6]), ValueError, "orders"),
        (([0.1, 0.2], 1.0, [2.0]), TypeError, "sample_rate"),
        ((0.1, "1", [2.0]), TypeError, "noise_multiplier"),
    ],
)
def test_bad_input(args, error, name):
    with pytest.raises(error, match=name):
        rdp_sampled_without_replacement(*args)


# ------------------------------------------------------------------ properties

rates = log_uniform(-8.0, 0.0)
sigmas = log_uniform(-1.0, 3.0)
order_lists = st.lists(st.floats(1.001, 256.0), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(rates, sigmas, order_lists)
def test_at_least_the_poisson_rdp(q, sigma, orders):
    # termwise: 4 M_i >= M_i at even i, sqrt(M_(i-1) M_(i+1)) >= M_i and 2 E[L^i] >= E[(L-1)^i]
    # at odd i, with Poisson's A = 1 + sum C(alpha, i) q^i M_i; the chord at fractional orders is
    # above the convex log A; both are capped by alpha / (2 sigma^2)
    ours = rdp_sampled_without_replacement(q, sigma, orders)
    poisson = poisson_gaussian_rdp(q, sigma, orders)
    assert np.all(ours >= poisson * (1 - 1e-9))


@settings(max_examples=60, deadline=None)
@given(rates, sigmas, st.lists(st.floats(1.001, 2e4), min_size=1, max_size=6),
       st.floats(1.0, 10.0))
def test_monotone_in_q_and_sigma(q, sigma, orders, factor):
    base = rdp_sampled_without_replacement(q, sigma, orders)
    assert np.all(np.isfinite(base)) and np.all(base >= 0)
    more_sampled = rdp_sampled_without_replacement(min(1.0, q * factor), sigma, orders)
    assert np.all(more_sampled >= base * (1 - 1e-10))
    noisier = rdp_sampled_without_replacement(q, sigma * factor, orders)
    assert np.all(noisier <= base * (1 + 1e-10))
    assert np.all(base <= np.asarray(orders) / (2 * sigma**2))


@settings(max_examples=60, deadline=None)
@given(rates, sigmas, st.floats(1.001, 255.0), st.floats(0.0, 1.0))
def test_nondecreasing_in_order_up_to_256(q, sigma, alpha, step):
    # Above 256 the plain Theorem 9 terms (as in dp_accounting) are not monotone in the order
    # (they jump up at 257, then can fall), so only the forward-difference range is asserted.
    orders = [alpha, min(256.0, alpha + step), min(256.0, alpha + 10 * step)]
    values = rdp_sampled_without_replacement(q, sigma, orders)
    assert values[0] <= values[1] * (1 + 1e-10)
    assert values[1] <= values[2] * (1 + 1e-10)


# ------------------------------------------------------------------ accountant wiring

WOR = SampledWithoutReplacement(60000, 250, Gaussian(1.3))


def test_replace_one_epsilon_matches_the_direct_conversion():
    acc = RdpAccountant(neighboring="replace_one").compose(WOR, 3600)
    rdp = 3600 * rdp_sampled_without_replacement(250 / 60000, 1.3, DEFAULT_ORDERS)
    np.testing.assert_allclose(acc.rdp, rdp, rtol=1e-12)
    # the order search runs over every order when other steps are composed: exact equality
    assert acc.get_epsilon_and_order(1e-5) == epsilon_from_rdp(acc.rdp, DEFAULT_ORDERS, 1e-5)
    assert acc.get_delta(2.0) == delta_from_rdp(acc.rdp, DEFAULT_ORDERS, 2.0)[0]
    # dp_accounting 0.6's RDP accountant (REPLACE_ONE, its orders) reports 1.9683 here
    assert 1.9682 <= acc.get_epsilon(1e-5) <= 1.96835


def test_mixed_gaussian_and_without_replacement_add_rdp():
    orders = [1.5, 2.0, 8.0, 32.0]
    acc = RdpAccountant(orders=orders, neighboring="replace_one")
    acc.compose(WOR, 100).compose(Gaussian(4.0), 3).compose(
        SampledWithoutReplacement(1000, 10, Gaussian(0.9)), 7)
    expected = (100 * rdp_sampled_without_replacement(250 / 60000, 1.3, orders)
                + 3 * np.array(orders) / (2 * 2.0**2)  # Gaussian(4) is sigma 2 per replacement
                + 7 * rdp_sampled_without_replacement(0.01, 0.9, orders))
    np.testing.assert_allclose(acc.rdp, expected, rtol=1e-12)
    assert acc.steps == 110


def test_full_and_empty_batches():
    orders = [2.0, 5.5]
    acc = RdpAccountant(orders=orders, neighboring="replace_one")
    acc.compose(SampledWithoutReplacement(500, 500, Gaussian(2.0)), 2)
    np.testing.assert_allclose(acc.rdp, 2 * np.array(orders) / 8.0, rtol=1e-15)
    empty = RdpAccountant(neighboring="replace_one").compose(
        SampledWithoutReplacement(500, 0, Gaussian(2.0)), 10)
    assert empty.get_epsilon(1e-5) == 0.0 and empty.get_delta(0.0) == 0.0
    assert empty.steps == 10
    silent = RdpAccountant(neighboring="replace_one").compose(
        SampledWithoutReplacement(500, 20, NoOp()), 10)
    assert silent.get_epsilon(1e-5) == 0.0
    leaky = RdpAccountant(neighboring="replace_one").compose(
        SampledWithoutReplacement(500, 20, NonPrivate()))
    assert leaky.get_epsilon(1e-5) == math.inf


def test_count_beyond_the_float_range_is_infinite():
    acc = RdpAccountant(neighboring="replace_one").compose(WOR, 10**400)
    assert acc.get_epsilon(1e-5) == math.inf
    assert acc.get_delta(10.0) == 1.0


def test_copy_and_state_dict_keep_neighboring():
    acc = RdpAccountant(orders=[2.0, 3.5], neighboring="replace_one").compose(WOR, 11)
    clone = acc.copy()
    assert clone.neighboring == "replace_one"
    assert clone.get_epsilon(1e-5) == acc.get_epsilon(1e-5)
    state = acc.state_dict()
    assert state["options"]["neighboring"] == "replace_one"
    restored = RdpAccountant().load_state_dict(state)
    assert restored.neighboring == "replace_one"
    assert np.array_equal(restored.rdp, acc.rdp)
    assert RdpAccountant().neighboring == "add_remove"
    assert RdpAccountant().copy().neighboring == "add_remove"


def test_bad_neighboring():
    with pytest.raises(ValueError, match="neighboring"):
        RdpAccountant(neighboring="zero_out")


@pytest.mark.parametrize(
    "neighboring, event, message",
    [
        ("add_remove", WOR, 'neighboring="replace_one"'),
        ("add_remove", Composed((Gaussian(1.0), SelfComposed(WOR, 3))),
         'neighboring="replace_one"'),
        ("replace_one", PoissonSampled(0.01, Gaussian(1.0)),
         'PldAccountant\\(neighboring="replace_one"\\)'),
        ("replace_one", SampledWithoutReplacement(100, 10, SelfComposed(Gaussian(1.0), 2)),
         "only of a Gaussian"),
        ("replace_one", SampledWithoutReplacement(100, 10, WOR), "only of a Gaussian"),
    ],
)
def test_unsupported_combinations(neighboring, event, message):
    acc = RdpAccountant(neighboring=neighboring).compose(Gaussian(3.0))
    before = acc.rdp
    with pytest.raises(UnsupportedEventError, match=message):
        acc.compose(event)
    assert not acc.supports(event)
    assert np.array_equal(acc.rdp, before)  # nothing composed


def test_add_remove_behaviour_unchanged():
    # a Gaussian is sensitivity 1 under add/remove, 2 under replace-one
    add_remove = RdpAccountant(orders=[2.0]).compose(Gaussian(2.0))
    replace_one = RdpAccountant(orders=[2.0], neighboring="replace_one").compose(Gaussian(2.0))
    assert add_remove.rdp[0] == 2.0 / 8.0
    assert replace_one.rdp[0] == 4 * add_remove.rdp[0]
    poisson = RdpAccountant().compose(PoissonSampled(0.01, Gaussian(1.1)), 100)
    # the accountant's one-pair path and the general one agree to rounding (the one-pair
    # lattice is the closer of the two to the mpmath reference, tests/test_rdp_fast_paths.py)
    epsilon, order = poisson.get_epsilon_and_order(1e-5)
    general_epsilon, general_order = epsilon_from_rdp(
        100 * poisson_gaussian_rdp(0.01, 1.1, DEFAULT_ORDERS), DEFAULT_ORDERS, 1e-5)
    assert epsilon == pytest.approx(general_epsilon, rel=1e-13) and order == general_order


def test_random_allocation_epochs_kept_whole_under_add_remove():
    from accounting.random_allocation import random_allocation_rdp

    orders = np.array([1.5, 2.0, 3.0, 12.0, 64.0])
    acc = RdpAccountant(orders=orders)
    acc.compose(RandomAllocation(100, Gaussian(1.0), 2), 5).compose(
        PoissonSampled(0.01, Gaussian(1.1)), 40)
    expected = (5 * random_allocation_rdp(100, 2, 1.0, orders)
                + 40 * poisson_gaussian_rdp(0.01, 1.1, orders))
    np.testing.assert_allclose(acc.rdp, expected, rtol=1e-12)
    assert acc.get_epsilon_and_order(1e-5) == epsilon_from_rdp(acc.rdp, orders, 1e-5)
    with pytest.raises(UnsupportedEventError, match="only of a Gaussian"):
        acc.compose(RandomAllocation(10, PoissonSampled(0.5, Gaussian(1.0))))
    with pytest.raises(UnsupportedEventError, match="replace-one"):
        RdpAccountant(neighboring="replace_one").compose(RandomAllocation(10, Gaussian(1.0)))
