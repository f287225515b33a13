"""Sampling without replacement against dp_accounting 0.6 (run with the peers' venv).

dp_accounting computes Wang, Balle and Kasiviswanathan's forward differences as alternating sums
in floating point, which cancel for large noise and large orders: there (q above a few percent,
sigma above about 6, orders above about 100) its value is off and ours follows the exact bound
(an mpmath check below). Everywhere else the two agree to 1e-9 relative; ours is further capped
by the unsampled Gaussian's ``alpha / (2 sigma^2)``.
"""

from __future__ import annotations

import pytest

dp_accounting = pytest.importorskip("dp_accounting")

import mpmath  # noqa: E402
import numpy as np  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant as dp_rdp  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from accounting.events import Gaussian, SampledWithoutReplacement  # noqa: E402
from accounting.rdp.accountant import RdpAccountant  # noqa: E402
from accounting.rdp.without_replacement import rdp_sampled_without_replacement  # noqa: E402

REPLACE_ONE = dp_accounting.privacy_accountant.NeighboringRelation.REPLACE_ONE
DP_ORDERS = np.array(dp_rdp.DEFAULT_RDP_ORDERS, dtype=float)


def _dp_capped(q, sigma, orders):
    theirs = dp_rdp._compute_rdp_sample_wor_gaussian(q, sigma, orders)
    return np.minimum(theirs, np.asarray(orders) / (2 * sigma**2))


def _orders(draw_integers, draw_fractional):
    return np.unique(np.concatenate([np.array(draw_integers, dtype=float),
                                     np.array(draw_fractional, dtype=float)]))


# dp_accounting's alternating sums stay accurate for q <= 0.03 at any noise, or noise <= 5
exact_settings = st.one_of(
    st.tuples(st.floats(-8.0, np.log10(0.03)), st.floats(-1.0, 2.0)),
    st.tuples(st.floats(-8.0, -1e-3), st.floats(-1.0, np.log10(5.0))),
).map(lambda pair: (10.0 ** pair[0], 10.0 ** pair[1]))


@settings(max_examples=40, deadline=None)
@given(exact_settings, st.lists(st.integers(2, 1100), min_size=1, max_size=4),
       st.lists(st.floats(1.01, 600.0), min_size=1, max_size=4))
def test_rdp_matches_dp_accounting(setting, integers, fractional):
    q, sigma = setting
    orders = _orders(integers, fractional)
    ours = rdp_sampled_without_replacement(q, sigma, orders)
    np.testing.assert_allclose(ours, _dp_capped(q, sigma, orders), rtol=1e-9, atol=0)


@pytest.mark.parametrize("q, sigma", [(250 / 60000, 0.65), (250 / 60000, 1.3),
                                      (256 / 60000, 0.55), (256 / 60000, 1.1),
                                      (4 / 100000, 1.2), (0.01, 1.0)])
def test_standard_settings_match_without_cap(q, sigma):
    ours = rdp_sampled_without_replacement(q, sigma, DP_ORDERS)
    theirs = dp_rdp._compute_rdp_sample_wor_gaussian(q, sigma, DP_ORDERS)
    assert np.all(theirs < DP_ORDERS / (2 * sigma**2))  # the cap does not bind here
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)


def test_dp_accounting_cancels_where_ours_is_exact():
    # q = 0.5, sigma = 10, order 96: the alternating sums lose every digit in floating point
    q, sigma, alpha = 0.5, 10.0, 96
    with mpmath.workdps(400):
        c = mpmath.mpf(1) / (2 * mpmath.mpf(sigma) ** 2)

        def difference(order):
            return mpmath.fsum(mpmath.binomial(order, j) * (-1) ** (order - j)
                               * mpmath.exp(c * j * (j - 1)) for j in range(order + 1))

        total = mpmath.mpf(1)
        for i in range(2, alpha + 1):
            low, high = difference(2 * (i // 2)), difference(2 * ((i + 1) // 2))
            weight = min(4 * mpmath.sqrt(low * high), 2 * mpmath.exp(c * i * (i - 1)))
            total += mpmath.binomial(alpha, i) * mpmath.mpf(q) ** i * weight
        exact = float(mpmath.log(total) / (alpha - 1))
    assert exact < alpha / (2 * sigma**2)
    ours = rdp_sampled_without_replacement(q, sigma, [alpha])[0]
    theirs = dp_rdp._compute_rdp_sample_wor_gaussian(q, sigma, [alpha])[0]
    assert ours == pytest.approx(exact, rel=1e-12)
    assert abs(theirs / exact - 1) > 0.5


def _dp_epsilon(n, b, sigma, steps, delta=1e-5, orders=None):
    accountant = dp_rdp.RdpAccountant(orders, REPLACE_ONE)
    event = dp_accounting.SampledWithoutReplacementDpEvent(n, b,
                                                           dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("n, b, sigma, steps", [
    (60000, 250, 1.3, 3600), (60000, 250, 0.65, 3600), (60000, 256, 1.1, 14063),
    (60000, 256, 0.55, 14063), (100000, 4, 1.2, 500000), (10000, 100, 1.0, 1000),
])
def test_accountant_epsilon_matches_dp_accounting(n, b, sigma, steps):
    event = SampledWithoutReplacement(n, b, Gaussian(sigma))
    theirs = _dp_epsilon(n, b, sigma, steps)
    same_orders = RdpAccountant(orders=DP_ORDERS, neighboring="replace_one").compose(event, steps)
    assert same_orders.get_epsilon(1e-5) == pytest.approx(theirs, rel=1e-9)
    ours = RdpAccountant(neighboring="replace_one").compose(event, steps)
    assert ours.get_epsilon(1e-5) <= theirs * (1 + 1e-12)


def test_gaussian_convention_under_replace_one():
    # our Gaussian(sigma) is a sum of records of norm <= 1 (sensitivity 2 under replacement),
    # dp_accounting's GaussianDpEvent is measured against the sensitivity itself
    ours = RdpAccountant(orders=DP_ORDERS, neighboring="replace_one")
    ours.compose(Gaussian(8.0), 5).compose(SampledWithoutReplacement(60000, 250, Gaussian(1.3)),
                                           1000)
    theirs = dp_rdp.RdpAccountant(DP_ORDERS, REPLACE_ONE)
    theirs.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(4.0), 5))
    theirs.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.SampledWithoutReplacementDpEvent(
        60000, 250, dp_accounting.GaussianDpEvent(1.3)), 1000))
    np.testing.assert_allclose(ours.rdp, theirs.rdp, rtol=1e-9, atol=0)
    assert ours.get_epsilon(1e-6) == pytest.approx(theirs.get_epsilon(1e-6), rel=1e-9)
