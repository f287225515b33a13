"""Random allocation and the shuffle lower bound against Feldman & Shenfeld's packages.

Run with the peers' venv: ``/tmp/peers/bin/python -m pytest tests/test_peers_allocation.py``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("random_allocation")
pytest.importorskip("PLD_accounting")

from PLD_accounting import gaussian_allocation_epsilon_range  # noqa: E402
from random_allocation.comparisons.definitions import PrivacyParams, SchemeConfig  # noqa: E402
from random_allocation.other_schemes.shuffle import shuffle_epsilon_lower_bound  # noqa: E402
from random_allocation.random_allocation_scheme import allocation_delta_MC  # noqa: E402

from accounting.random_allocation import (  # noqa: E402
    random_allocation_epsilon,
    random_allocation_monte_carlo,
)
from accounting.shuffle import shuffle_lower_bound  # noqa: E402


@pytest.mark.parametrize("t,sigma,epochs,delta", [(100, 1.0, 1, 1e-3), (40, 1.5, 3, 1e-5)])
def test_certified_epsilon_not_below_pld_lower(t, sigma, epochs, delta):
    upper, lower = gaussian_allocation_epsilon_range(delta=delta, sigma=sigma, num_steps=t,
                                                     num_epochs=epochs)
    ours = random_allocation_epsilon(t, sigma, delta, epochs=epochs)
    assert lower <= upper
    assert ours >= lower
    # RDP composition and conversion cost: ours is within a factor 2.5 of the tight PLD range
    assert ours <= 2.5 * upper


def test_monte_carlo_agrees_with_peer_monte_carlo():
    ours = random_allocation_monte_carlo(100, 1.0, 1e-3, samples=200_000, seed=11)
    params = PrivacyParams(sigma=1.0, num_steps=100, num_selected=1, num_epochs=1,
                           epsilon=ours.epsilon_estimate, delta=None)
    config = SchemeConfig(MC_sample_size=100_000, MC_use_mean=True)
    peer_delta = allocation_delta_MC(params, config)
    # both estimate delta(eps) of the same pair; sampling error of a few tens of percent at most
    assert 0.6e-3 <= peer_delta <= 1.6e-3


@pytest.mark.parametrize("t,sigma,epochs", [(240, 1.3, 15), (234, 1.1, 60)])
def test_shuffle_lower_bound_matches_peer(t, sigma, epochs):
    peer = shuffle_epsilon_lower_bound(
        PrivacyParams(sigma=sigma, num_steps=t, num_selected=1, num_epochs=epochs, delta=1e-5),
        SchemeConfig())
    ours = shuffle_lower_bound(t, sigma, epochs, 1e-5)
    # the peer rounds each epoch's losses down by up to its grid step 1e-3
    assert ours.epsilon <= peer + epochs * 1e-3
    assert ours.epsilon >= 0.99 * peer
    same_grid = shuffle_lower_bound(t, sigma, epochs, 1e-5, discretization=1e-3)
    assert same_grid.epsilon <= peer + 1e-3
