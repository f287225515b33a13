"""The binomial sum of large integer orders over the cells that carry it, against every term and
against the 50-digit mpmath reference."""

from __future__ import annotations

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import poisson_gaussian_rdp, reference
from accounting.rdp import sampled_gaussian
from tests.strategies import log_uniform

large_orders = st.integers(sampled_gaussian._PROBED_ORDER + 1, 20_000)


@settings(max_examples=60, deadline=None)
@given(q=log_uniform(-8.0, -1e-9), sigma=log_uniform(-1.0, 3.0), alpha=large_orders)
def test_probed_sum_equals_every_term(q, sigma, alpha):
    arrays = np.array([q]), np.array([sigma]), np.array([float(alpha)])
    with np.errstate(all="ignore"):
        probed = sampled_gaussian._log_a_minus_1_integer_probed(*arrays)[0]
        full = sampled_gaussian._log_a_minus_1_integer_full(*arrays)[0]
    if np.isinf(full):
        assert probed == full
    else:
        # the same terms up to dropped ones below e^-38 of the sum: log A - 1 within 1e-14
        assert abs(probed - full) <= 1e-14 * max(1.0, abs(full))


@settings(max_examples=60, deadline=None)
@given(q=log_uniform(-8.0, -1e-9), sigma=log_uniform(-1.0, 3.0),
       alphas=st.lists(large_orders, min_size=1, max_size=40))
def test_many_items_at_once_equal_one_at_a_time(q, sigma, alphas):
    # the ragged probing of several items must not mix their cells
    alpha = np.array(alphas, dtype=float)
    together = poisson_gaussian_rdp(q, sigma, alpha)
    alone = np.array([poisson_gaussian_rdp(q, sigma, [a])[0] for a in alpha])
    assert np.array_equal(together, alone)


@settings(max_examples=15, deadline=None)
@given(q=log_uniform(-6.0, -0.3), sigma=log_uniform(-0.3, 1.5),
       alpha=st.integers(sampled_gaussian._PROBED_ORDER + 1, 1500))
def test_agrees_with_the_50_digit_binomial_sum(q, sigma, alpha):
    exact = reference.rdp(q, sigma, alpha, method="binomial", digits=30)
    value = poisson_gaussian_rdp(q, sigma, [alpha])[0]
    if mpmath.isinf(exact):
        assert np.isinf(value)
    else:
        assert abs(mpmath.mpf(value) - exact) <= 1e-10 * abs(exact)
