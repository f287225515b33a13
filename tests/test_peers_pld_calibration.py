"""PLD noise calibration against dp_accounting's PLD accountant (an independent implementation):
the calibrated noise spends at most the target by its pessimistic estimate on a 10x finer grid
than ours, at least the target less our requested bracket width, and a noise ``tolerance``
lower spends more than the target.

Run with the peers' venv: ``.venv-bench/bin/python -m pytest tests/test_peers_pld_calibration.py``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("dp_accounting")

from dp_accounting import dp_event  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from accounting import calibrate_noise_multiplier  # noqa: E402

#: Settings A, B, D of benchmarks/settings.py, ``(q, steps, delta)``, and a target epsilon each.
RUNS = {"A": (256 / 60000, 14063, 1e-5, 3.0), "B": (250 / 60000, 3600, 1e-5, 1.0),
        "D": (1e-3, 100000, 1e-6, 2.0)}
#: dp_accounting's grid: fine enough that its estimate is within ~1e-3 of the exact epsilon.
PEER_GRID = 1e-4


def peer_epsilon(q: float, sigma: float, steps: int, delta: float) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PEER_GRID)
    accountant.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    return accountant.get_epsilon(delta)


def _width(target: float) -> float:
    """Our target bracket width near ``target`` at the default ``pld_tolerance=1e-2``."""
    return min(1e-2, 1e-2 * target)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_calibrated_noise_meets_the_target_by_dp_accounting(name):
    q, steps, delta, target = RUNS[name]
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    spent = peer_epsilon(q, sigma, steps, delta)
    assert spent <= target
    # no more than our requested resolution is left unspent (the peer's grid error included)
    assert spent >= target - _width(target) - 2e-3


@pytest.mark.parametrize("name", ["A", "B"])
def test_a_tolerance_lower_misses_the_target_by_dp_accounting(name):
    q, steps, delta, target = RUNS[name]
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld", tolerance=1e-2)
    assert peer_epsilon(q, sigma, steps, delta) <= target
    assert peer_epsilon(q, sigma - 1e-2, steps, delta) > target


@settings(max_examples=6, deadline=None)
@given(q=st.floats(5e-3, 0.05), steps=st.integers(10, 1000), target=st.floats(0.5, 5.0),
       delta=st.sampled_from([1e-5, 1e-7]))
def test_random_runs_meet_the_target_by_dp_accounting(q, steps, target, delta):
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    spent = peer_epsilon(q, sigma, steps, delta)
    assert spent <= target
    assert spent >= target - _width(target) - 2e-3
