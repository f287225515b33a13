"""PLD accountant at extreme arguments (issue 16): bounded time and memory, certified brackets.

Inputs that once allocated many GiB run in a subprocess limited to 2 GiB of address space, with
one BLAS thread and a timeout, so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import math
import textwrap
import warnings

import mpmath
import pytest

from accounting import (
    DeltaBounds,
    EpsilonBounds,
    PldAccountant,
    RdpAccountant,
    ToleranceNotMetWarning,
)
from accounting import reference as ref
from accounting.pld.accountant import _MAX_GRID_POINTS, _MAX_STEP_POINTS
from tests.capped import run_capped


def _run_limited(body: str, timeout: float = 120.0):
    """Run ``body`` in a fresh interpreter under a 2 GiB address-space limit and return the
    JSON it prints last (``body`` sees ``accounting``, ``json``, ``time``, ``warnings`` and
    ``seconds(call) -> (value, seconds)``)."""
    prelude = textwrap.dedent("""
        import json, math, time, warnings
        warnings.simplefilter("ignore")
        import accounting
        from accounting import PldAccountant

        def seconds(call):
            start = time.perf_counter()
            value = call()
            return value, time.perf_counter() - start
    """)
    output = run_capped(prelude + textwrap.dedent(body), timeout)
    return json.loads(output.strip().splitlines()[-1])


def _certified(lower, upper, truth=None):
    assert 0.0 <= lower <= upper
    if truth is not None:
        assert lower <= truth <= upper


# ------------------------------------------------------------------ item 1: tiny noise, one step
def test_tiny_noise_one_step_is_bounded_and_certified():
    # once a 7.5 GiB allocation; the exact epsilon (remove pair, mpmath) is 50030896.718
    out = _run_limited("""
        rows = {}
        for relation in ("add_remove", "replace_one"):
            acc = PldAccountant(neighboring=relation).compose(0.01, 1e-4, 1)
            bounds, took = seconds(lambda: acc.get_epsilon_bounds(1e-5))
            rows[relation] = [bounds.lower, bounds.upper, took]
        steps, took = seconds(lambda: accounting.calibrate_steps(1.0, 1e-5, 0.01, 1e-4,
                                                                 accountant="pld"))
        rows["steps"] = [steps, took]
        print(json.dumps(rows))
    """)
    rdp = RdpAccountant().compose(0.01, 1e-4, 1).get_epsilon(1e-5)
    for relation in ("add_remove", "replace_one"):
        lower, upper, took = out[relation]
        _certified(lower, upper, 50030896.718)
        assert upper <= 1.001 * 50030896.718 and took < 10.0
    assert out["add_remove"][1] <= rdp
    assert out["steps"][0] == 0 and out["steps"][1] < 10.0


# ------------------------------------------------------------------ item 2: huge runs, tolerances
def test_huge_step_counts_and_tiny_tolerances_end_quickly():
    out = _run_limited("""
        q = 256 / 60000
        rows = []
        for steps in (10**9, 234375000000, 10**20):
            acc = PldAccountant().compose(q, 1.1, steps)
            bounds, took = seconds(lambda: acc.get_epsilon_bounds(1e-5))
            rows.append(["eps", steps, bounds.lower, bounds.upper, bounds.tolerance_met, took])
            bounds, took = seconds(lambda: acc.get_delta_bounds(1.0))
            rows.append(["delta", steps, bounds.lower, bounds.upper, bounds.tolerance_met, took])
        acc = PldAccountant(tolerance=1e-12).compose(q, 1.1, 14063)
        bounds, took = seconds(lambda: acc.get_epsilon_bounds(1e-5))
        rows.append(["tol", 14063, bounds.lower, bounds.upper, bounds.tolerance_met, took])
        sigma, took = seconds(lambda: accounting.calibrate_noise_multiplier(
            1e6, 1e-5, q, 14063, accountant="pld"))
        rows.append(["sigma", 14063, sigma, sigma, True, took])
        print(json.dumps(rows))
    """)
    q = 256 / 60000
    for kind, steps, lower, upper, met, took in out:
        assert took < 10.0, (kind, steps, took)
        if kind == "eps":
            _certified(lower, upper)
            assert upper <= RdpAccountant().compose(q, 1.1, steps).get_epsilon(1e-5)
            assert not met  # 1e-3 is out of reach at epsilon 1e4 and beyond
        elif kind == "delta":
            assert 0.0 <= lower <= upper <= 1.0
        elif kind == "tol":
            _certified(lower, upper, 2.38169)  # between the A-setting peers' figures
            assert upper - lower < 1e-4 and not met
    sigma = out[-1][2]
    assert RdpAccountant().compose(q, sigma, 14063).get_epsilon(1e-5) > 0  # a real answer


# ------------------------------------------------------------------ items 3-4: extreme noise
@pytest.mark.parametrize("sigma", [1e-300, 1e-160, 1e160, 1e300])
def test_extreme_noise_multipliers_give_certified_brackets(sigma):
    acc = PldAccountant().compose(0.01, sigma, 10)
    # the first guesses are robust on their own (no ZeroDivisionError / OverflowError)
    assert acc._initial_step(1e-3) > 0
    assert acc._first_anchor(1e-5, math.inf) >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        bounds = acc.get_epsilon_bounds(1e-5)
        replace = PldAccountant(neighboring="replace_one").compose(0.01, sigma, 10)
        replace_bounds = replace.get_epsilon_bounds(1e-5)
    _certified(bounds.lower, bounds.upper)
    _certified(replace_bounds.lower, replace_bounds.upper)
    if sigma > 1:  # a loss of about 1e-320 per step: nothing is spent
        assert bounds.upper == 0.0 and replace_bounds.upper < 1e-6
    else:  # the loss overflows: no finite epsilon is certified at delta < q
        assert bounds.upper == math.inf and not bounds.tolerance_met


def test_extreme_steps_rates_and_spacings_are_bounded():
    out = _run_limited("""
        rows = []
        cases = [((0.01, 1.0, 10**12), {}), ((0.01, 1.0, 10**30), {}),
                 ((1e-300, 1.0, 10**30), {}), ((0.01, 1.0, 1000), {"tolerance": 1e-9}),
                 ((0.01, 1.0, 1000), {"tolerance": 1e-300}),
                 ((0.01, 1.0, 1000), {"value_discretization": 1e-9}),
                 ((0.01, 1.0, 1000), {"value_discretization": 1e-300})]
        for run, options in cases:
            acc = PldAccountant(**options).compose(*run)
            try:
                bounds, took = seconds(lambda: acc.get_epsilon_bounds(1e-5))
                points = max([c.grid_points for c in acc._compositions.values()] or [0])
                rows.append([bounds.lower, bounds.upper, took, points, None])
            except ValueError as error:
                rows.append([None, None, None, None, str(error)])
        print(json.dumps(rows))
    """)
    for lower, upper, took, points, error in out[:5]:
        assert error is None and took < 10.0 and points <= _MAX_GRID_POINTS
        _certified(lower, upper)
    assert out[2][1] == 0.0  # q = 1e-300: RDP certifies nothing is spent
    for *_, error in out[5:]:  # a user-set grid past the limit names the argument and limit
        assert "value_discretization" in error and f"{_MAX_STEP_POINTS}" in error


def test_astronomical_step_counts_and_spacings_are_answered_or_refused_at_once():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        bounds = PldAccountant().compose(1e-12, 1.0, 10**400).get_epsilon_bounds(1e-5)
        delta = PldAccountant().compose(0.01, 1.0, 10**400).get_delta_bounds(1.0)
    _certified(bounds.lower, bounds.upper)
    assert not bounds.tolerance_met and 0.0 <= delta.lower <= delta.upper <= 1.0
    with pytest.raises(ValueError, match="value_discretization must be at most 1e\\+100"):
        PldAccountant(value_discretization=1e300)


def test_user_grid_too_long_for_the_composed_window_names_the_limit():
    with pytest.raises(ValueError, match=rf"value_discretization.*{_MAX_GRID_POINTS}"):
        PldAccountant(value_discretization=1e-4).compose(1.0, 5.0, 100_000).get_epsilon(1e-5)


# ------------------------------------------------------------------ item 13: both directions
def test_coarser_grids_are_searched_where_fine_ones_are_swamped_by_rounding():
    q, sigma, steps, delta = 1.93e-6, 0.791, 3863, 1.2e-12
    coarse = PldAccountant(value_discretization=1e-3).compose(q, sigma, steps)
    reference = coarse.get_epsilon_bounds(delta)  # [0.0063, 0.0179]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        bounds = PldAccountant().compose(q, sigma, steps).get_epsilon_bounds(delta)
    # both certified: they overlap, and the search is no looser than the 1e-3 grid
    assert bounds.lower <= reference.upper and reference.lower <= bounds.upper
    assert bounds.upper <= reference.upper and bounds.width <= reference.width


def test_an_unmet_tolerance_is_flagged_and_warned_and_unpacking_still_works():
    acc = PldAccountant().compose(256 / 60000, 1.1, 10**9)
    with pytest.warns(ToleranceNotMetWarning, match="certified"):
        bounds = acc.get_epsilon_bounds(1e-300)
    assert isinstance(bounds, EpsilonBounds) and not bounds.tolerance_met
    lower, upper, grid = bounds
    assert (lower, upper, grid) == bounds and bounds.width == upper - lower
    assert "tolerance_met=False" in repr(bounds)
    met = PldAccountant().compose(250 / 60000, 1.3, 3600).get_epsilon_bounds(1e-5)
    assert met.tolerance_met and met.width <= met.target_width
    assert issubclass(ToleranceNotMetWarning, RuntimeWarning)
    assert DeltaBounds(0.0, 0.0, 0.0) == (0.0, 0.0, 0.0)


# ------------------------------------------------------------------ item 13b: rare huge losses
def test_tiny_rates_with_heavy_loss_tails_are_bounded():
    out = _run_limited("""
        rows = []
        for run in ((1e-12, 0.3, 10**6), (1e-12, 0.5, 10**12), (1e-10, 0.3, 10**6)):
            acc = PldAccountant(tolerance=1e-2).compose(*run)
            bounds, took = seconds(lambda: acc.get_epsilon_bounds(1e-5))
            rows.append([bounds.lower, bounds.upper, took])
        print(json.dumps(rows))
    """)
    for (lower, upper, took), run in zip(
        out, [(1e-12, 0.3, 10**6), (1e-12, 0.5, 10**12), (1e-10, 0.3, 10**6)], strict=True
    ):
        _certified(lower, upper)
        assert took < 10.0
        assert upper <= RdpAccountant().compose(*run).get_epsilon(1e-5) + 1e-3


# ------------------------------------------------------------------ item 14: relative tolerance
def test_small_epsilon_gets_a_relative_bracket_below_the_peer_upper_bound():
    q, sigma, delta = 5.27e-5, 1.66, 3.8e-6
    bounds = PldAccountant().compose(q, sigma, 1).get_epsilon_bounds(delta)
    # dp_accounting 0.6, pessimistic PLD on its 1e-4 grid: 7.5e-5
    assert 0.0 <= bounds.lower <= bounds.upper <= 7.6e-5
    assert bounds.width <= max(1e-3 * bounds.upper, 1e-6) and bounds.tolerance_met
    with mpmath.workdps(30):  # the exact delta crosses the target inside the bracket
        exact = [
            max(float(ref.hockey_stick_delta(q, sigma, epsilon, direction, digits=25))
                for direction in ("add", "remove"))
            for epsilon in (bounds.lower, bounds.upper)
        ]
    assert exact[1] <= delta * (1 + 1e-9) and exact[0] >= delta * (1 - 1e-9)


def test_relative_tolerance_one_keeps_the_absolute_target():
    bounds = (
        PldAccountant(relative_tolerance=1.0).compose(5.27e-5, 1.66, 1).get_epsilon_bounds(3.8e-6)
    )
    assert bounds.target_width == 1e-3 and bounds.width <= 1e-3
    with pytest.raises(ValueError, match="relative_tolerance"):
        PldAccountant(relative_tolerance=0.0)


# ------------------------------------------------------------------ item 15 and the import
def test_delta_lower_bound_is_never_negative_zero():
    bounds = PldAccountant().compose(0.01, 1.0, 100).get_delta_bounds(1000)
    assert bounds.lower == 0.0 and math.copysign(1.0, bounds.lower) == 1.0
    fixed = PldAccountant(value_discretization=1e-3).compose(0.01, 1.0, 100)
    assert math.copysign(1.0, fixed.get_delta_bounds(50.0).lower) == 1.0


def test_import_does_not_load_scipy_signal():
    out = _run_limited("""
        import sys
        print(json.dumps("scipy.signal" in sys.modules))
    """, timeout=60.0)
    assert out is False


def test_later_directions_are_anchored_at_the_bound_in_hand():
    """Heavy per-step tails (sigma 0.35) make the first anchor (RDP's epsilon, 23.6) lie far
    above the removal direction's epsilon (20.5) and further above the addition direction's:
    tilted for the anchor, the addition direction's bound on the first grid stayed at 23.2 and
    forced a 5x finer grid. Anchored at the removal direction's upper bound, the first grid's
    certified bound is within the requested width of the final bracket (and below RDP's)."""
    q, sigma, steps, delta = 1e-4, 0.35, 500_000, 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = PldAccountant(tolerance=1e-2).compose(q, sigma, steps)._first_grid_epsilon(delta)
        bounds = PldAccountant(tolerance=1e-2).compose(q, sigma, steps).get_epsilon_bounds(delta)
    assert bounds.tolerance_met
    assert bounds.upper <= first <= bounds.upper + 1e-2
    assert first <= RdpAccountant().compose(q, sigma, steps).get_epsilon(delta)
