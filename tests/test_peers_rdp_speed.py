"""epsilon_curve and epsilon_grid against dp-accelerator 0.1.0 (a Rust port of dp_accounting's
RDP) and dp_accounting 0.6's RdpAccountant, on the same orders.

Run in a venv with both peers: ``python -m pytest tests/test_peers_rdp_speed.py``.
"""

from __future__ import annotations

import pytest

dp_accelerator = pytest.importorskip("dp_accelerator")

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from accounting import epsilon_grid  # noqa: E402
from accounting.rdp import DEFAULT_ORDERS, epsilon_curve  # noqa: E402
from tests.strategies import log_uniform  # noqa: E402

#: dp-accelerator's own orders (its DPSGDAccountant's, those of dp_accounting's older default).
PEER_ORDERS = np.array(dp_accelerator.DPSGDAccountant(1.0, 1, 2).orders, dtype=float)
# Ours is exact to 1e-10 (mpmath, tests/test_rdp.py); the peer's series for fractional orders
# overestimates by up to 1e-4 relative (e.g. q = 0.1, sigma = 1, order 4.719) and a failed series
# leaves an order out, so on the same orders ours is at most the peer's, up to rounding.
ROUNDING = 1e-8

rates = log_uniform(-4.0, -0.7)
noises = st.floats(0.7, 8.0)
deltas = log_uniform(-10.0, -3.0)
step_lists = st.lists(st.integers(1, 10**6), min_size=1, max_size=50)


def _peer(q, sigma, steps, delta):
    return np.array(dp_accelerator.compute_epsilon_batch(q, sigma, list(steps),
                                                         PEER_ORDERS.tolist(), delta))


@settings(max_examples=40, deadline=None)
@given(q=rates, sigma=noises, steps=step_lists, delta=deltas)
def test_same_orders_never_above_the_peer(q, sigma, steps, delta):
    ours, _ = epsilon_curve(q, sigma, steps, delta, orders=PEER_ORDERS)
    assert np.all(ours <= _peer(q, sigma, steps, delta) * (1.0 + ROUNDING))


@settings(max_examples=40, deadline=None)
@given(q=rates, sigma=noises, steps=step_lists, delta=deltas)
def test_default_orders_never_above_the_peer(q, sigma, steps, delta):
    # the default orders include the peer's (jax_privacy's defaults)
    assert np.isin(PEER_ORDERS, DEFAULT_ORDERS).all()
    ours, _ = epsilon_curve(q, sigma, steps, delta)
    assert np.all(ours <= _peer(q, sigma, steps, delta) * (1.0 + ROUNDING))


@pytest.mark.parametrize(("q", "sigma", "steps", "delta", "expected"), [
    # mpmath (accounting.reference, 30 digits) at the order both pick, 4.718979591836735:
    # 4 * RDP = 0.403063480549268, converted: the peer's series gives 1.6052611161
    (0.1, 1.0, 4, 1e-3, 1.6051439583185911),
])
def test_where_the_peer_overestimates_ours_is_the_exact_value(q, sigma, steps, delta, expected):
    ours, order = epsilon_curve(q, sigma, [steps], delta, orders=PEER_ORDERS)
    assert order[0] == pytest.approx(4.718979591836735)
    assert ours[0] == pytest.approx(expected, rel=1e-12)
    assert _peer(q, sigma, [steps], delta)[0] > ours[0] * (1 + 5e-5)


def test_default_orders_close_to_the_peer_on_the_tutorial_curve():
    # setting A's (q, sigma, delta), epochs 1..100: the default orders land within 0.3% of the
    # peer's (either side can be closer to the best order at a given step count)
    q, sigma, delta = 256 / 60000, 1.1, 1e-5
    steps = 235 * np.arange(1, 101)
    ours, _ = epsilon_curve(q, sigma, steps, delta)
    assert np.all(np.abs(ours / _peer(q, sigma, steps, delta) - 1.0) <= 3e-3)


def test_grid_with_the_same_orders_matches_the_peer():
    rates, noises = np.geomspace(1e-4, 0.1, 7), np.linspace(0.6, 5.0, 7)
    ours, _ = epsilon_grid(rates[:, None], noises[None, :], 1000, 1e-5, orders=PEER_ORDERS)
    theirs = np.array([[_peer(q, s, [1000], 1e-5)[0] for s in noises] for q in rates])
    assert np.all(ours <= theirs * (1.0 + ROUNDING))
    assert np.median(np.abs(ours / theirs - 1.0)) <= 1e-6  # where the peer's series is accurate


@settings(max_examples=15, deadline=None)
@given(q=rates, sigma=st.floats(0.8, 8.0), steps=st.lists(st.integers(1, 10**5), min_size=1,
                                                          max_size=5), delta=deltas)
def test_same_orders_as_dp_accounting(q, sigma, steps, delta):
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting import rdp as dpa_rdp

    # on dp_accounting's default orders: never above its epsilon (its series overestimates)
    orders = np.array(dpa_rdp.RdpAccountant()._orders, dtype=float)
    ours, _ = epsilon_curve(q, sigma, steps, delta, orders=orders)
    for count, value in zip(steps, ours, strict=True):
        accountant = dpa_rdp.RdpAccountant(orders.tolist())
        accountant.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), count))
        assert value <= accountant.get_epsilon(delta) * (1.0 + ROUNDING)
