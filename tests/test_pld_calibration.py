"""PLD noise calibration (``calibrate_noise_multiplier(..., accountant="pld")``): the answer is on
the safe side of independent certified bounds and wastes at most the PLD's requested resolution.

Independent checks: the exact Gaussian-mechanism profile for ``q = 1`` (Balle and Wang 2018,
Thm 8), the PLD accountant at a tighter tolerance (other grids than the calibration's), and the
root finder on functions whose root is known in closed form.
"""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import PldAccountant, calibrate_noise_multiplier
from accounting.gdp import gaussian_epsilon
from accounting.pld.calibration import _root

PLD_TOLERANCE = 1e-2
#: Settings A, B, D of benchmarks/settings.py, ``(q, steps, delta)``, and a target epsilon each.
RUNS = {"A": (256 / 60000, 14063, 1e-5), "B": (250 / 60000, 3600, 1e-5), "D": (1e-3, 100000, 1e-6)}
TARGETS = {"A": 3.0, "B": 1.0, "D": 2.0}


def _width(target: float) -> float:
    """The PLD accountant's target bracket width near ``target`` at ``tolerance=1e-2``."""
    return min(PLD_TOLERANCE, PLD_TOLERANCE * max(target, PLD_TOLERANCE))


def _bounds(q, sigma, steps, delta, tolerance):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PldAccountant(tolerance=tolerance).compose(q, sigma, steps) \
            .get_epsilon_bounds(delta)


def _exact_sigma(target: float, delta: float, steps: int) -> float:
    """The noise at which ``steps`` Gaussian steps spend exactly ``target`` (bisection on the
    closed form, to 1e-12)."""
    low, high = 1e-3, 1e4
    for _ in range(200):
        middle = math.sqrt(low * high)
        if gaussian_epsilon(delta, middle, steps) > target:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return high


@pytest.mark.parametrize("target, steps, delta", [(1.0, 10, 1e-5), (3.0, 100, 1e-6),
                                                  (0.5, 1, 1e-5), (8.0, 1000, 1e-5)])
def test_full_batch_against_the_gaussian_closed_form(target, steps, delta):
    """q = 1: the composed mechanism is one Gaussian with noise sigma / sqrt(T), whose exact
    epsilon is known. The answer spends at most the target and at least the target less the
    PLD's bracket width; it lies above the exact noise by at most that much."""
    sigma = calibrate_noise_multiplier(target, delta, 1.0, steps, accountant="pld")
    exact = gaussian_epsilon(delta, sigma, steps)
    assert exact <= target
    assert exact >= target - _width(target)
    star = _exact_sigma(target, delta, steps)
    assert star <= sigma
    assert gaussian_epsilon(delta, star, steps) == pytest.approx(target, abs=1e-9)
    assert _bounds(1.0, sigma, steps, delta, PLD_TOLERANCE).upper <= target


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_settings_are_certified_and_near_the_edge(name):
    """The answer's certified upper bound is within the target for the accountant at the
    calibration's tolerance and at a 100x tighter one (other grids); at the requested
    tolerance 1e-2, the noise 1e-2 lower misses the target by the tight accountant's lower
    bound (so no noise that low can meet it)."""
    q, steps, delta = RUNS[name]
    target = TARGETS[name]
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    assert _bounds(q, sigma, steps, delta, PLD_TOLERANCE).upper <= target
    tight = _bounds(q, sigma, steps, delta, 1e-4)
    assert tight.upper <= target
    assert tight.lower >= target - _width(target)  # at most the resolution asked for is left
    coarse = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld",
                                        tolerance=1e-2)
    assert coarse >= sigma - 1e-2
    assert _bounds(q, coarse, steps, delta, 1e-4).upper <= target
    assert _bounds(q, coarse - 1e-2, steps, delta, 1e-3).lower > target


runs = st.fixed_dictionaries({
    "q": st.floats(2e-3, 0.05),
    "steps": st.integers(10, 3000),
    "delta": st.sampled_from([1e-5, 1e-6, 1e-8]),
    "target": st.floats(0.5, 6.0),
})


@settings(max_examples=12, deadline=None)
@given(run=runs)
def test_answer_is_on_the_safe_side_within_the_resolution(run):
    q, steps, delta, target = run["q"], run["steps"], run["delta"], run["target"]
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    # certified by the accountant compute_epsilon runs at the calibration's tolerance
    assert _bounds(q, sigma, steps, delta, PLD_TOLERANCE).upper <= target
    # a tighter accountant (other grids) agrees: its bracket reaches below the target (the
    # true epsilon is at least its lower end) and its upper end is within its width of it
    # (upper bounds of different grids are not nested: a finer grid's may lie a little above)
    tight = _bounds(q, sigma, steps, delta, 1e-4)
    assert tight.lower <= target
    assert tight.upper <= target + tight.width
    assert tight.lower >= target - _width(target) - tight.width


@settings(max_examples=8, deadline=None)
@given(run=runs, ratio=st.floats(1.2, 3.0))
def test_more_budget_needs_no_more_noise(run, ratio):
    q, steps, delta, target = run["q"], run["steps"], run["delta"], run["target"]
    small = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    large = calibrate_noise_multiplier(target * ratio, delta, q, steps, accountant="pld")
    assert large <= small


# --------------------------------------------------------------------------- the root finder
def _counted(function):
    calls = []

    def wrapped(u):
        calls.append(u)
        return function(u)

    return wrapped, calls


@settings(max_examples=60, deadline=None)
@given(root=st.floats(-3.0, 1.0), slope=st.floats(0.3, 40.0), curve=st.floats(-0.4, 0.4),
       offset=st.floats(-0.3, 0.3), tolerance=st.sampled_from([1e-7, 1e-4, 1e-2]),
       exact=st.booleans())
def test_root_finder_brackets_a_smooth_decreasing_function(root, slope, curve, offset,
                                                           tolerance, exact):
    """``excess(u) = slope (root - u) (1 + curve (root - u))``: decreasing near ``root`` (the
    root finder's setting: epsilon in log sigma). The answer meets (``excess <= 0``), lies
    within the tolerance above the root, and takes few evaluations; the first step starts from
    a guess ``offset`` away, steered by a slope off by up to 2x, with the safe end's excess known
    exactly (then used in the interpolation) or not."""
    def excess(u):
        gap = root - u
        return slope * gap * (1.0 + curve * max(min(gap, 1.0), -1.0))

    safe = root + 0.5
    wrapped, calls = _counted(excess)
    # the safe end's excess: exact, or a stand-in from another grid
    safe_excess = excess(safe) + (0.0 if exact else 0.01)
    answer = _root(wrapped, root + offset, safe, safe_excess, -slope * 1.7, tolerance, exact)
    assert answer is not None
    assert excess(answer) <= 0.0
    # (excess rounds to 0 within about 1e-16 of the root: it meets there)
    assert root - 1e-12 <= answer <= root + tolerance * (1.0 + 1e-9) + 1e-12
    assert len(calls) <= 12


def test_root_finder_backs_off_where_trials_cannot_compose():
    """Non-finite excess (a grid that does not fit) counts as missing: the search still
    closes on the finite side, or at the safe end."""
    def excess(u):
        return math.inf if u < -0.2 else 2.0 * (-0.1 - u)

    answer = _root(excess, -0.5, 0.0, -0.2, -2.0, 1e-6)
    assert answer is not None and -0.1 <= answer <= -0.1 + 1e-6
    # nothing composes: the safe end (RDP's noise, safe on any grid) is the answer
    assert _root(lambda u: math.inf, -0.5, 0.0, -0.2, -2.0, 1e-6) == 0.0


@pytest.mark.parametrize("target, delta, q, steps, most", [
    (3.0, 1e-5, 256 / 60000, 14063, 6),  # setting A
    (1.0, 1e-5, 250 / 60000, 3600, 6),  # setting B
    (0.078, 2.6e-8, 0.000254, 1330, 12),  # RDP's noise 3x the answer (tiny epsilon and delta)
])
def test_few_pld_queries(monkeypatch, target, delta, q, steps, most):
    """Each PLD query (a trial on the set grid, or the automatic check) composes once: the
    search needs few of them, also where RDP's noise is far above the answer (the Gaussian-DP
    guess then steers). A query of one neighbouring direction (the trials after the first
    compose only the direction that dominated there) counts as half of one."""
    calls = []
    for name in ("get_epsilon", "get_epsilon_bounds"):
        original = getattr(PldAccountant, name)

        def counted(self, delta, original=original):
            calls.append(self)
            return original(self, delta)

        monkeypatch.setattr(PldAccountant, name, counted)
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    single = [call for call in calls if call._only_direction is not None]
    assert single  # the later trials compose one direction
    assert len(calls) - 0.5 * len(single) <= most
    monkeypatch.undo()
    bounds = _bounds(q, sigma, steps, delta, PLD_TOLERANCE)
    assert bounds.upper <= target
    assert bounds.lower >= target - _width(target) - bounds.width


@pytest.mark.parametrize("target, delta, q, steps", [
    (8.0, 1e-5, 4e-5, 500_000),  # setting C: sigma about 0.37, heavy per-step loss tails
    (3.7, 1.6e-9, 1.31e-4, 64),  # sigma about 0.47 at a tiny delta
    # sigma about 0.44: the trial grid's bound fails (RDP's caps it) near the answer, the
    # steps down on the automatic bound recover the budget
    (1.95399179984895, 2.2490342201599668e-05, 0.00013964534643336863, 2193),
])
def test_small_noise_runs_are_certified_near_the_edge(target, delta, q, steps):
    """Below noise 0.5 (heavy per-step tails) the answer is still certified by the accountant
    at the calibration's tolerance and leaves at most the requested width unspent by its lower
    bound."""
    sigma = calibrate_noise_multiplier(target, delta, q, steps, accountant="pld")
    assert sigma < 0.5
    bounds = _bounds(q, sigma, steps, delta, PLD_TOLERANCE)
    assert bounds.upper <= target
    assert bounds.lower >= target - _width(target) - bounds.width


# ------------------------------------------------------------- what the shortcut relies on
def _direction_epsilon(q, sigma, steps, delta, direction):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PldAccountant(tolerance=PLD_TOLERANCE)._restricted_to(direction) \
            .compose(q, sigma, steps).get_epsilon(delta)


@pytest.mark.parametrize("steps, delta", [(10, 1e-9), (1000, 1e-5), (100_000, 1e-6)])
def test_removal_bounds_the_addition_direction(steps, delta):
    """The trials compose the removal direction alone: its certified bound is the larger one
    over the usual range of DP-SGD runs (epsilon up to ~50; the full check covers the rest)."""
    checked = 0
    for q in (1e-4, 1e-3, 1e-2, 0.2):
        for sigma in (0.5, 1.0, 4.0):
            remove = _direction_epsilon(q, sigma, steps, delta, "remove")
            if remove <= 50.0:
                assert remove >= _direction_epsilon(q, sigma, steps, delta, "add"), (q, sigma)
                checked += 1
    assert checked >= 8


@settings(max_examples=15, deadline=None)
@given(q=st.floats(1e-4, 0.2), sigma=st.floats(0.5, 3.0), steps=st.integers(1, 200_000),
       delta=st.sampled_from([1e-5, 1e-7, 1e-9]))
def test_first_grid_bound_is_above_the_automatic_bound(q, sigma, steps, delta):
    """The check that certifies a calibrated noise uses the automatic search's first grid
    alone: never below what the automatic accountant (compute_epsilon) reports, and a certified
    bound itself (at least the tight accountant's lower end)."""
    def accountant():
        return PldAccountant(tolerance=PLD_TOLERANCE).compose(q, sigma, steps)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = accountant()._first_grid_epsilon(delta)
        full = accountant().get_epsilon_bounds(delta)
    assert first >= full.upper
    assert first >= full.lower


def test_first_grid_needs_an_automatic_accountant():
    with pytest.raises(ValueError, match="automatic"):
        PldAccountant(value_discretization=1e-3).compose(0.01, 1.0, 10)._first_grid_epsilon(1e-5)


def test_one_direction_is_one_of_the_relations_directions():
    with pytest.raises(ValueError, match="direction"):
        PldAccountant(tolerance=PLD_TOLERANCE)._restricted_to("removal")
    # full batches: both directions are the Gaussian with sensitivity 1, so each alone gives the
    # two-direction answer
    both = PldAccountant(tolerance=PLD_TOLERANCE).compose(1.0, 2.0, 10).get_epsilon(1e-5)
    for direction in ("remove", "add"):
        one = PldAccountant(tolerance=PLD_TOLERANCE)._restricted_to(direction) \
            .compose(1.0, 2.0, 10).get_epsilon(1e-5)
        assert one == pytest.approx(both, rel=1e-9)
