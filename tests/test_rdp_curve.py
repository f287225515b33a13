"""epsilon_curve (epsilon over many step counts) and the shared-lattice RDP it evaluates, against
the general path (poisson_gaussian_rdp + epsilon_from_rdp, epsilon_grid), the q = 1 closed form and
the 50-digit mpmath reference."""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from accounting import RdpAccountant, clear_caches, compute_epsilon, epsilon_grid, reference
from accounting.rdp import DEFAULT_ORDERS, epsilon_curve, epsilon_from_rdp, poisson_gaussian_rdp
from accounting.rdp.sampled_gaussian import rdp_items, step_rdp_one_pair
from tests.strategies import deltas, log_uniform

RELATIVE = 1e-12
CONVERSION_ROUNDING = 1e-13

rates = st.one_of(log_uniform(-7.0, 0.0), st.just(1.0))
noises = log_uniform(-0.5, 2.0)
conversions = st.sampled_from(["improved", "classic"])
step_arrays = st.lists(st.integers(0, 10**8), min_size=1, max_size=400)


def _slow(q, sigma, steps, delta, conversion, orders=DEFAULT_ORDERS):
    """Every order evaluated, every total curve converted: the general path (nothing spent at
    0 steps, as RdpAccountant and epsilon_grid say, where the classic conversion alone would
    still charge log(1/delta) / (alpha - 1))."""
    steps = np.asarray(steps, dtype=float)
    per_step = poisson_gaussian_rdp(q, sigma, orders)
    with np.errstate(invalid="ignore", over="ignore"):
        totals = np.where(per_step > 0.0, steps[:, None] * per_step, 0.0)
    epsilon, order = epsilon_from_rdp(totals, orders, delta, conversion)
    at_order = np.take_along_axis(totals, np.searchsorted(orders, order)[:, None], 1)[:, 0]
    return np.where(steps == 0, 0.0, epsilon), order, at_order


def _close(value, expected, relative=RELATIVE, scale=0.0):
    """``value`` equals ``expected`` to ``relative``, and to the rounding of the conversion.

    Epsilon is ``T r + offset`` at the best order: a rounding-level difference ``rho`` in the
    per-step RDP ``r`` (both paths agree with mpmath to about 1e-14 relative, the binomial sum
    of large integer orders least) moves epsilon by ``rho T r``, large relative to an epsilon
    near 0. ``scale`` is ``T r`` at the best order.
    """
    value, expected = np.asarray(value), np.asarray(expected)
    assert np.array_equal(np.isinf(value), np.isinf(expected))
    finite = np.isfinite(expected)
    slack = CONVERSION_ROUNDING * np.broadcast_to(scale, expected.shape)[finite]
    assert np.all(np.abs(value[finite] - expected[finite])
                  <= relative * np.abs(expected[finite]) + slack + 1e-300)


@settings(max_examples=80, deadline=None)
@given(q=rates, sigma=noises, steps=step_arrays, delta=deltas, conversion=conversions)
def test_equals_the_general_path(q, sigma, steps, delta, conversion):
    epsilon, order = epsilon_curve(q, sigma, steps, delta, conversion)
    expected, _, scale = _slow(q, sigma, steps, delta, conversion)
    _close(epsilon, expected, scale=scale)
    # the order reported attains the epsilon reported
    per_step = poisson_gaussian_rdp(q, sigma, DEFAULT_ORDERS)
    positive = (np.asarray(steps) > 0) & (epsilon > 0)
    for count, value, alpha in zip(np.asarray(steps)[positive], epsilon[positive],
                                   order[positive], strict=True):
        at_order, _ = epsilon_from_rdp([count * per_step[DEFAULT_ORDERS == alpha][0]], [alpha],
                                       delta, conversion)
        assert at_order == pytest.approx(value, rel=RELATIVE)


@settings(max_examples=25, deadline=None)
@given(q=log_uniform(-5.0, -0.5), sigma=log_uniform(-0.3, 1.0), delta=deltas,
       low=st.integers(1, 1000), span=log_uniform(0.0, 5.0))
def test_many_step_counts_on_the_envelope_equal_the_general_path(q, sigma, delta, low, span):
    # thousands of step counts: the minimum is read off the lower envelope of the order lines
    steps = np.unique(np.geomspace(low, low * (1.0 + span), 5000).round().astype(np.int64))
    epsilon, _ = epsilon_curve(q, sigma, steps, delta)
    expected, _, scale = _slow(q, sigma, steps, delta, "improved")
    _close(epsilon, expected, scale=scale)


@settings(max_examples=30, deadline=None)
@given(q=rates, sigma=noises, steps=st.lists(st.integers(0, 10**7), min_size=1, max_size=30),
       delta=deltas, conversion=conversions)
def test_equals_epsilon_grid(q, sigma, steps, delta, conversion):
    epsilon, _ = epsilon_curve(q, sigma, steps, delta, conversion)
    expected, _ = epsilon_grid(q, sigma, np.array(steps), delta, conversion)
    _close(epsilon, expected, scale=_slow(q, sigma, steps, delta, conversion)[2])


@settings(max_examples=30, deadline=None)
@given(sigma=log_uniform(-1.0, 3.0), steps=step_arrays, delta=deltas)
def test_sample_rate_one_is_the_gaussian_closed_form(sigma, steps, delta):
    # RDP of T Gaussian steps: T alpha / (2 sigma^2) (Mironov 2017, Prop. 7), converted by the
    # improved conversion written out here, minimised over the default orders
    alpha = DEFAULT_ORDERS
    steps = np.asarray(steps, dtype=float)
    curve = steps[:, None] * alpha / (2.0 * sigma**2)
    candidates = curve + np.log1p(-1.0 / alpha) - (np.log(delta) + np.log(alpha)) / (alpha - 1)
    candidates = np.maximum(candidates, 0.0)
    candidates[curve <= -np.log1p(-(delta**2))] = 0.0
    epsilon, _ = epsilon_curve(1.0, sigma, steps, delta)
    _close(epsilon, candidates.min(axis=1), 1e-13)


# each example costs seconds of mpmath: no shrinking phase
@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate])
@example(q=0.1, sigma=1.0, steps=1, delta=0.1)  # epsilon 0 by Bretagnolle-Huber
@given(q=log_uniform(-4.0, -0.5), sigma=log_uniform(-0.2, 1.0), steps=st.integers(1, 10**6),
       delta=deltas)
def test_agrees_with_the_50_digit_reference(q, sigma, steps, delta):
    epsilon, order = epsilon_curve(q, sigma, [steps], delta)
    if epsilon[0] == 0.0:
        # Bretagnolle-Huber at the order reported: sqrt(1 - exp(-T rdp)) <= delta, in mpmath
        total = steps * reference.rdp(q, sigma, float(order[0]), digits=30)
        assert mpmath.sqrt(-mpmath.expm1(-total)) <= delta * (1 + 1e-12)
        return
    # the reference at the order found and its neighbours: none of them does better
    where = int(np.flatnonzero(DEFAULT_ORDERS == order[0])[0])
    nearby = DEFAULT_ORDERS[max(where - 1, 0): where + 2].tolist()
    values = [steps * reference.rdp(q, sigma, alpha, digits=30) for alpha in nearby]
    exact, _ = reference.rdp_to_epsilon_improved(values, nearby, delta, digits=30)
    assert abs(mpmath.mpf(float(epsilon[0])) - exact) <= 1e-10 * abs(exact) + 1e-300


@settings(max_examples=40, deadline=None)
@given(q=log_uniform(-7.0, -1e-9), sigma=log_uniform(-2.5, 3.0),
       orders=st.lists(st.floats(1.001, 300.0), min_size=1, max_size=60))
def test_shared_lattice_equals_rdp_items(q, sigma, orders):
    alphas = np.array(orders)
    ones = np.ones(alphas.size)
    with np.errstate(all="ignore"):  # as poisson_gaussian_rdp and epsilon_curve call them
        expected = rdp_items(q * ones, sigma * ones, alphas)
        _close(step_rdp_one_pair(q, sigma, alphas), expected)


@settings(max_examples=40, deadline=None)
@given(q=rates, sigma=noises, delta=deltas,
       steps=st.lists(st.integers(1, 10**7), min_size=2, max_size=50, unique=True))
def test_epsilon_grows_with_steps_and_falls_with_noise(q, sigma, delta, steps):
    steps = np.sort(steps)
    epsilon, _ = epsilon_curve(q, sigma, steps, delta)
    assert np.all(np.diff(epsilon) >= -1e-12 * epsilon[1:])
    quieter, _ = epsilon_curve(q, sigma * 1.5, steps, delta)
    assert np.all(quieter <= epsilon * (1 + 1e-12))


def test_orders_and_shapes():
    orders = [1.5, 2.0, 3.25, 8.0, 32.0]
    steps = np.array([[1, 10], [100, 1000]])
    epsilon, order = epsilon_curve(0.02, 0.9, steps, 1e-6, orders=orders)
    assert epsilon.shape == order.shape == (2, 2)
    expected, expected_order, _ = _slow(0.02, 0.9, steps.ravel(), 1e-6, "improved",
                                        np.array(orders))
    _close(epsilon.ravel(), expected)
    assert np.array_equal(order.ravel(), expected_order)
    # one count as a plain int: 0-d arrays with the values of a one-element array
    single, single_order = epsilon_curve(0.02, 0.9, 1000, 1e-6, orders=orders)
    assert single.shape == single_order.shape == ()
    assert single == epsilon[1, 1] and single_order == order[1, 1]


def test_nothing_spent_and_infinite_counts():
    epsilon, order = epsilon_curve(0.0, 1.0, [0, 5, 10**400], 1e-5)
    assert np.array_equal(epsilon, [0.0, 0.0, 0.0])
    assert np.all(order == DEFAULT_ORDERS[0])
    epsilon, _ = epsilon_curve(0.01, 1.0, [0, 10**400], 1e-5)
    assert epsilon[0] == 0.0 and epsilon[1] == np.inf
    epsilon, _ = epsilon_curve(0.01, 1.0, np.array([], dtype=int), 1e-5)
    assert epsilon.shape == (0,)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ((1.5, 1.0, [10], 1e-5), ValueError, "sample_rate"),
        ((0.1, 0.0, [10], 1e-5), ValueError, "noise_multiplier"),
        ((0.1, [1.0, 2.0], [10], 1e-5), TypeError, "noise_multiplier"),
        ((0.1, 1.0, [1.5], 1e-5), ValueError, "steps"),
        ((0.1, 1.0, [-1], 1e-5), ValueError, "steps"),
        ((0.1, 1.0, [float("inf")], 1e-5), ValueError, "steps"),
        ((0.1, 1.0, ["10"], 1e-5), TypeError, "steps"),
        ((0.1, 1.0, True, 1e-5), TypeError, "steps"),
        ((0.1, 1.0, [10], 1.0), ValueError, "delta"),
    ],
)
def test_bad_arguments_are_refused(arguments, error, match):
    with pytest.raises(error, match=match):
        epsilon_curve(*arguments)


def test_bad_conversion_and_orders_are_refused():
    with pytest.raises(ValueError, match="conversion"):
        epsilon_curve(0.1, 1.0, [10], 1e-5, conversion="fast")
    with pytest.raises(ValueError, match="orders"):
        epsilon_curve(0.1, 1.0, [10], 1e-5, orders=[0.5, 2.0])


def test_many_orders_take_the_bounded_memory_path():
    # more orders than the envelope compares pairwise: the minimum is taken in chunks
    orders = np.linspace(1.05, 200.0, 3000)
    steps = 37 * np.arange(1, 3000)
    epsilon, _ = epsilon_curve(0.01, 1.2, steps, 1e-6, orders=orders)
    expected, _, scale = _slow(0.01, 1.2, steps, 1e-6, "improved", orders)
    _close(epsilon, expected, scale=scale)


@settings(max_examples=40, deadline=None)
@given(q=st.one_of(log_uniform(-300.0, 0.0), st.just(1.0)), sigma=log_uniform(-200.0, 300.0),
       delta=log_uniform(-300.0, -0.3), conversion=conversions)
def test_extreme_arguments_equal_the_general_path(q, sigma, delta, conversion):
    # overflowing and underflowing RDP at any order: the same answer as the general path
    steps = [1, 10**6, 10**18]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning leaks out
        epsilon, _ = epsilon_curve(q, sigma, steps, delta, conversion)
    assert not np.any(np.isnan(epsilon))
    expected, _, scale = _slow(q, sigma, steps, delta, conversion)
    _close(epsilon, expected, scale=scale)


# Peers' default Rényi orders, from their documented definitions: dp_accounting's RdpAccountant
# and Opacus's RDPAccountant (the same list), and jax_privacy's DP-SGD accountant configuration
# (also dp-accelerator's DPSGDAccountant).
PEER_DEFAULT_ORDERS = {
    "dp_accounting / Opacus": np.array([1.0 + x / 10.0 for x in range(1, 100)]
                                       + list(range(12, 64)), dtype=float),
    "jax_privacy / dp-accelerator": np.concatenate((
        np.linspace(1.01, 8, num=50), np.arange(8, 64),
        np.linspace(65, 512, num=10, dtype=int))).astype(float),
}


@pytest.mark.parametrize("peer", sorted(PEER_DEFAULT_ORDERS))
def test_default_orders_include_every_peer_default(peer):
    assert np.isin(PEER_DEFAULT_ORDERS[peer], DEFAULT_ORDERS).all()
    assert np.all(np.diff(DEFAULT_ORDERS) > 0.0) and not DEFAULT_ORDERS.flags.writeable


@settings(max_examples=40, deadline=None)
@given(q=log_uniform(-6.0, -0.3), sigma=log_uniform(-0.3, 1.0), steps=step_arrays, delta=deltas,
       peer=st.sampled_from(sorted(PEER_DEFAULT_ORDERS)))
def test_default_epsilon_never_above_a_peer_default_set(q, sigma, steps, delta, peer):
    # the minimum over a superset of orders: never above the minimum over the peer's set
    ours, _ = epsilon_curve(q, sigma, steps, delta)
    on_peer_orders, _ = epsilon_curve(q, sigma, steps, delta, orders=PEER_DEFAULT_ORDERS[peer])
    assert np.all(ours <= on_peer_orders * (1.0 + 1e-12))


@settings(max_examples=150, deadline=None)
@given(q=rates, sigma=log_uniform(-1.0, 3.0), steps=st.integers(1, 10**9), delta=deltas,
       conversion=conversions)
@example(q=1e-6, sigma=50.0, steps=1, delta=0.5, conversion="improved")  # epsilon 0
def test_one_count_path_equals_the_general_path(q, sigma, steps, delta, conversion):
    # one count takes _one_count; the same count twice takes the envelope path: the same bits
    # and the same order, fresh or through an accountant's store
    one, order = epsilon_curve(q, sigma, [steps], delta, conversion)
    two, orders = epsilon_curve(q, sigma, [steps, steps], delta, conversion)
    assert one[0] == two[0] and order[0] == orders[0]
    # the accountants' shared per-step store may hold orders an earlier example evaluated in
    # another batch of orders (another lattice: values equal to rounding only): emptied first
    clear_caches(tables=False)
    accounting_epsilon, accounting_order = RdpAccountant(conversion=conversion).compose(
        q, sigma, steps).get_epsilon_and_order(delta)
    assert accounting_epsilon == one[0] and accounting_order == order[0]
    # compute_epsilon answers with the same search without building the accountant
    clear_caches(tables=False)
    assert compute_epsilon(q, sigma, steps, delta, conversion=conversion) == one[0]
