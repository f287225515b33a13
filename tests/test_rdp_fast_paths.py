"""The one-(q, sigma) fast paths of the RDP core against independent computations.

- the power series of ``psi(u) = (1 + u)^alpha - 1 - alpha u`` in ``log1p(u)`` that the shared
  quadrature lattice uses near ``u = 0``, against mpmath at 40 digits;
- the shared lattice's per-step RDP (fractional orders, and the small integer orders it takes
  too) against the 25-digit reference of :mod:`accounting.reference`;
- ``RdpAccountant`` with one (q, sigma) pair (what ``compute_epsilon`` runs), which searches the
  orders as :func:`accounting.rdp.epsilon_curve` does, against the minimum over every default
  order of :func:`accounting.rdp.epsilon_from_rdp`.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import accounting
from accounting import reference
from accounting.rdp import (
    DEFAULT_ORDERS,
    RdpAccountant,
    epsilon_curve,
    epsilon_from_rdp,
    poisson_gaussian_rdp,
)
from accounting.rdp.sampled_gaussian import (
    _ELL_RADIUS,
    _psi_over_ell_squared,
    step_rdp_one_pair,
)
from tests.strategies import deltas, log_uniform

# Epsilon is T r + offset at the best order: a rounding-level difference in r (the paths agree
# with mpmath to about 1e-14 relative) moves epsilon by about 1e-14 T r (see test_rdp_curve).
RELATIVE = 1e-12
CONVERSION_ROUNDING = 1e-13

orders_above_one = log_uniform(-4.0, 3.0).map(lambda x: 1.0 + x)  # alpha in (1.0001, 1001)


@settings(max_examples=200, deadline=None)
@given(alpha=orders_above_one, fraction=st.floats(-1.0, 1.0).filter(lambda x: abs(x) > 1e-290))
def test_psi_series_in_log1p_agrees_with_mpmath(alpha, fraction):
    # psi / ell^2 = (e^(alpha ell) - 1 - alpha (e^ell - 1)) / ell^2 with ell = log1p(u), inside
    # |alpha ell| <= 0.5
    ell = fraction * _ELL_RADIUS / alpha
    value = _psi_over_ell_squared(np.array([ell]), np.array([alpha]))[0, 0]
    # the difference cancels about 2 log10(1 / |ell|) digits: carry that many more
    with mpmath.workdps(40 + int(-2.0 * np.log10(abs(ell)))):
        x, a = mpmath.mpf(ell), mpmath.mpf(alpha)
        exact = (mpmath.expm1(a * x) - a * mpmath.expm1(x)) / (x * x)
        assert abs(mpmath.mpf(value) / exact - 1) <= 1e-14


# each fractional order costs about a second of mpmath: few examples, no shrinking
@settings(max_examples=5, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(q=log_uniform(-6.0, -0.3), sigma=log_uniform(-0.3, 1.0),
       fractional=st.floats(1.01, 40.0).filter(lambda x: x != round(x)),
       integer=st.integers(2, 24))
def test_shared_lattice_agrees_with_the_reference(q, sigma, fractional, integer):
    # the largest default fractional order (10.9) makes the lattice long enough to take the
    # integer order as well
    alphas = np.array([fractional, float(integer), 10.9])
    with np.errstate(all="ignore"):  # as epsilon_curve calls it
        values = step_rdp_one_pair(q, sigma, alphas)
    for alpha, value in zip(alphas[:2], values[:2], strict=True):
        exact = reference.rdp(q, sigma, float(alpha), digits=25)
        assert abs(mpmath.mpf(float(value)) / exact - 1) <= 1e-13


def _general(q, sigma, steps, delta, conversion, orders=DEFAULT_ORDERS):
    """Every order evaluated by poisson_gaussian_rdp and converted by epsilon_from_rdp; with
    the total RDP at the best order."""
    totals = steps * poisson_gaussian_rdp(q, sigma, orders)
    epsilon, order = epsilon_from_rdp(totals, orders, delta, conversion)
    return epsilon, order, totals[list(orders).index(order)]


conversions = st.sampled_from(["improved", "classic"])


@settings(max_examples=60, deadline=None)
@given(q=log_uniform(-7.0, 0.0), sigma=log_uniform(-0.5, 2.0), steps=st.integers(1, 10**8),
       delta=deltas, conversion=conversions)
def test_one_pair_accountant_equals_the_minimum_over_every_order(q, sigma, steps, delta,
                                                                 conversion):
    accounting.clear_caches(tables=False)
    accountant = RdpAccountant(conversion=conversion).compose(q, sigma, steps)
    epsilon, order = accountant.get_epsilon_and_order(delta)
    expected, _, total = _general(q, sigma, steps, delta, conversion)
    assert abs(epsilon - expected) <= RELATIVE * expected + CONVERSION_ROUNDING * total + 1e-300
    # the order reported attains the epsilon reported
    at_order, _ = epsilon_from_rdp([steps * poisson_gaussian_rdp(q, sigma, [order])[0]], [order],
                                   delta, conversion)
    assert abs(at_order - epsilon) <= RELATIVE * epsilon + CONVERSION_ROUNDING * total + 1e-300
    # and the accountant's own full curve (its store filled in) gives the same bits
    assert accountant.get_epsilon(delta) == epsilon_from_rdp(accountant.rdp, DEFAULT_ORDERS,
                                                             delta, conversion)[0]


@settings(max_examples=30, deadline=None)
@given(q=log_uniform(-5.0, -0.3), sigma=log_uniform(-0.3, 1.0), steps=st.integers(1, 10**6),
       delta_list=st.lists(deltas, min_size=2, max_size=5))
def test_one_accountant_at_many_deltas_equals_fresh_ones(q, sigma, steps, delta_list):
    # later calls reuse the orders the earlier ones evaluated (the per-step store)
    accounting.clear_caches(tables=False)
    kept = RdpAccountant().compose(q, sigma, steps)
    for delta in delta_list:
        epsilon = kept.get_epsilon(delta)
        accounting.clear_caches(tables=False)
        fresh = RdpAccountant().compose(q, sigma, steps).get_epsilon(delta)
        assert epsilon == pytest.approx(fresh, rel=1e-13, abs=1e-15)
        assert epsilon == pytest.approx(float(epsilon_curve(q, sigma, steps, delta)[0]),
                                        rel=1e-13, abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(q=log_uniform(-4.0, -0.5), sigma=log_uniform(-0.3, 1.0), steps=st.integers(1, 10**6),
       delta=deltas, orders=st.lists(st.floats(1.01, 200.0), min_size=1, max_size=40))
def test_one_pair_accountant_with_its_own_orders(q, sigma, steps, delta, orders):
    # unsorted, possibly repeated, orders: the reported value is the minimum over them
    accounting.clear_caches(tables=False)
    epsilon = RdpAccountant(orders=orders).compose(q, sigma, steps).get_epsilon(delta)
    expected, _, total = _general(q, sigma, steps, delta, "improved", np.array(orders))
    assert abs(epsilon - expected) <= RELATIVE * expected + CONVERSION_ROUNDING * total + 1e-300


def test_compute_epsilon_is_the_curve_value_on_the_standard_settings():
    # the settings of the benchmarks and docs (A-D), against the general path
    for q, sigma, steps, delta in [(256 / 60000, 1.1, 14063, 1e-5), (250 / 60000, 1.3, 3600, 1e-5),
                                   (4 / 100000, 1.2, 500000, 1e-5), (1e-3, 0.8, 100000, 1e-6)]:
        expected, _, _ = _general(q, sigma, steps, delta, "improved")
        assert accounting.compute_epsilon(q, sigma, steps, delta) == pytest.approx(expected,
                                                                                  rel=1e-13)
        assert float(epsilon_curve(q, sigma, steps, delta)[0]) == pytest.approx(expected,
                                                                                rel=1e-13)
