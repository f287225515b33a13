"""Random allocation's certified PLD bracket against pld-accounting 2.0 and random-allocation.

Both packages bound the same pair (Feldman & Shenfeld 2025): every certified lower end must lie
below every certified upper end, and ours must be at least as tight as pld-accounting's upper
bound. Run with the peers' venv:
``/tmp/peers/bin/python -m pytest tests/test_peers_allocation_pld.py``.
"""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("PLD_accounting")
pytest.importorskip("random_allocation")

from PLD_accounting import gaussian_allocation_epsilon_range  # noqa: E402
from random_allocation.comparisons.definitions import PrivacyParams, SchemeConfig  # noqa: E402
from random_allocation.random_allocation_scheme import (  # noqa: E402
    allocation_epsilon_combined,
    allocation_epsilon_RDP_DCO,
)

from accounting.pld.random_allocation import random_allocation_pld_epsilon_bounds  # noqa: E402

SETTINGS = [  # (t, sigma, epochs, delta, k)
    (100, 1.0, 1, 1e-3, 1),
    (240, 1.3, 1, 1e-5, 1),
    (40, 1.5, 3, 1e-5, 1),
    (10, 1.0, 1, 1e-5, 1),
    (100, 2.0, 1, 1e-5, 3),
]


@pytest.mark.parametrize("t,sigma,epochs,delta,k", SETTINGS)
def test_bracket_within_pld_accounting(t, sigma, epochs, delta, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_upper, peer_lower = gaussian_allocation_epsilon_range(
            delta=delta, sigma=sigma, num_steps=t, num_epochs=epochs, num_selected=k)
    ours = random_allocation_pld_epsilon_bounds(t, sigma, delta, epochs=epochs, selections=k)
    # certified ends of the same quantity cannot cross
    assert max(ours.lower, peer_lower) <= min(ours.upper, peer_upper)
    # at least as tight as pld-accounting's certified upper bound
    assert ours.upper <= peer_upper
    assert ours.upper - ours.lower <= 2e-3


@pytest.mark.parametrize("t,sigma,epochs,delta,k", SETTINGS[:3])
def test_below_random_allocation_rdp(t, sigma, epochs, delta, k):
    params = PrivacyParams(sigma=sigma, num_steps=t, num_selected=k, num_epochs=epochs,
                           delta=delta)
    ours = random_allocation_pld_epsilon_bounds(t, sigma, delta, epochs=epochs, selections=k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdp_dco = allocation_epsilon_RDP_DCO(params, SchemeConfig())
    assert ours.upper <= rdp_dco


def test_below_random_allocation_combined():
    # its best bound (the minimum of its methods) on a multi-epoch setting
    params = PrivacyParams(sigma=1.5, num_steps=40, num_selected=1, num_epochs=3, delta=1e-5)
    config = SchemeConfig(allocation_direct_alpha_orders=list(range(2, 61)))
    ours = random_allocation_pld_epsilon_bounds(40, 1.5, 1e-5, epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        combined = allocation_epsilon_combined(params, config)
    assert ours.lower <= combined
    assert ours.upper <= combined
