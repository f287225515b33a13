"""Composition by squaring on coarsening grids (accounting.pld.levels): certified bounds checked
against the Gaussian closed form, the one-FFT composition and exact hockey-stick sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from accounting import PldAccountant, RdpAccountant
from accounting.gdp import mu_epsilon
from accounting.pld import levels
from accounting.pld.composition import (
    ThresholdBound,
    choose_tilt,
    compose_plds,
    compose_tilted,
    untilted,
)
from accounting.pld.privacy_loss import (
    DiscretePld,
    dominated_pmf,
    dominating_pairs,
    dominating_pmf,
)

DELTA = 1e-5
PURE_RELATIVE = {"tolerance": math.inf, "relative_tolerance": 1e-2}


def _levels_bracket(q, sigma, steps, step, points, anchor, delta=DELTA):
    """(lower, upper) of the worst direction from compose_levels alone."""
    lowers, uppers = [], []
    tail = 1e-9 * delta / steps
    for pair in dominating_pairs(q, sigma, "add_remove"):
        upper_pmf = dominating_pmf(pair, step, tail)
        lower_pmf = dominated_pmf(pair, step, tail)
        tilt, _ = choose_tilt([(upper_pmf, steps)], anchor)
        law = levels.compose_levels([(upper_pmf, steps)], tilt, "upper", points)
        composed = untilted(law, clip_negative=True)
        uppers.append(composed.epsilon_upper(delta - law.infinity_mass))
        q_pmf = DiscretePld(step, lower_pmf.first_index, lower_pmf.q_masses)
        p_law, q_law = levels.compose_levels([(lower_pmf, steps)], tilt, "lower", points,
                                             q_groups=[(q_pmf, steps)])
        lowers.append(ThresholdBound(p_law, q_law).epsilon_lower(delta))
    return max(lowers), max(uppers)


def test_without_regridding_it_is_the_one_fft_composition():
    """With grids long enough never to coarsen, squaring composes the same discretised laws
    as one FFT: the same bracket to rounding."""
    q, sigma, steps, step = 256 / 60000, 1.1, 10_000, 1e-3
    lower, upper = _levels_bracket(q, sigma, steps, step, points=1 << 16, anchor=1.97)
    pair = dominating_pairs(q, sigma, "add_remove")[0]
    tail = 1e-9 * DELTA / steps
    single = compose_plds([(dominating_pmf(pair, step, tail), steps)], 1e-30, True)
    # the same laws; the windows' cut tails are accounted differently
    assert upper == pytest.approx(single.epsilon_upper(DELTA), rel=1e-5)
    merged = dominated_pmf(pair, step, tail)
    q_pmf = DiscretePld(step, merged.first_index, merged.q_masses)
    single_lower = ThresholdBound(compose_tilted([(merged, steps)], 1e-30),
                                  compose_tilted([(q_pmf, steps)], 1e-30, tilt=1.0))
    assert lower == pytest.approx(single_lower.epsilon_lower(DELTA), rel=1e-5)


@pytest.mark.parametrize("steps", [1 << 20, 10**7, 10**9])
def test_full_batch_bracket_contains_the_gaussian_closed_form(steps):
    """q = 1: T Gaussian steps of noise sigma are one of noise sigma / sqrt(T) (mu = sqrt(T) /
    sigma); sigma is scaled so that mu = 2."""
    sigma = math.sqrt(steps) / 2.0
    bounds = PldAccountant(**PURE_RELATIVE).compose(1.0, sigma, steps).get_epsilon_bounds(DELTA)
    exact = mu_epsilon(2.0, DELTA)
    assert bounds.lower <= exact <= bounds.upper
    assert bounds.width <= 1e-2 * max(exact, 1.0) * (1 + 1e-9)


@pytest.mark.parametrize("steps", [1 << 20, 3_000_000])
def test_squaring_and_one_fft_brackets_overlap(steps, monkeypatch):
    """Two certified brackets of one epsilon must overlap, and both lie below RDP's bound."""
    q, sigma = 256 / 60000, 1.1
    squared = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    monkeypatch.setattr(levels, "_FIRST_GUESS_STEPS", 10**18)  # squaring off
    single = PldAccountant(tolerance=1e-2).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert squared.lower <= single.upper and single.lower <= squared.upper
    rdp = RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)
    assert squared.upper <= rdp


def test_squaring_reaches_a_relative_target_at_a_billion_steps():
    q, sigma, steps = 256 / 60000, 1.1, 10**9
    bounds = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert bounds.tolerance_met and bounds.width <= 1e-2 * bounds.upper
    assert bounds.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)


def _hockey_stick(losses, masses, epsilon):
    return float(np.sum(masses * np.maximum(-np.expm1(epsilon - losses), 0.0)))


def _law(masses, first, step, tilt):
    masses = np.asarray(masses, dtype=float)
    losses = (first + np.arange(masses.size)) * step
    total = float(np.sum(masses * np.exp(tilt * losses)))
    weights = masses * np.exp(tilt * losses) / total
    log_mgf = logsumexp((tilt + levels._OFFSETS)[:, None] * losses[None, :],
                        b=masses[None, :], axis=1)
    return levels._Law(step, first, weights, math.log(total), tilt, 0.0, log_mgf)


def _untilt(law):
    losses = (law.first + np.arange(law.masses.size)) * law.step
    return losses, law.masses * np.exp(law.log_scale - law.tilt * losses)


@settings(max_examples=40, deadline=None)
@given(
    masses=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=40).filter(lambda m: sum(m) > 0),
    first=st.integers(-30, 30),
    factor=st.sampled_from([2, 4, 8]),
    tilt=st.floats(0.0, 3.0),
    epsilon=st.floats(-1.0, 3.0),
)
def test_connect_the_dots_regrid_dominates(masses, first, factor, tilt, epsilon):
    """The regridded upper law's divergence is at least the law's at every epsilon, and its
    Q mass (sum of P e^-l) is kept: a dominating pair (Doroshenko et al. 2022)."""
    masses = np.asarray(masses) / (2.0 * sum(masses))  # a sub-probability law
    step = 0.05
    law = _law(masses, first, step, tilt)
    losses, before = _untilt(law)
    coarse = levels._regrid(levels._copy(law), factor, "upper")
    coarse_losses, after = _untilt(coarse)
    assert _hockey_stick(coarse_losses, after, epsilon) >= (
        _hockey_stick(losses, before, epsilon) * (1 - 1e-12) - 1e-15
    )
    assert np.sum(after * np.exp(-coarse_losses)) == pytest.approx(
        np.sum(before * np.exp(-losses)), rel=1e-9
    )
    # the moment bounds carried along stay bounds of the regridded law
    arguments = tilt + levels._OFFSETS
    with np.errstate(divide="ignore"):
        exact = logsumexp(arguments[:, None] * coarse_losses[None, :], b=after[None, :], axis=1)
    finite = np.isfinite(exact)
    assert np.all(exact[finite] <= coarse.log_mgf[finite] + 1e-9)


@settings(max_examples=40, deadline=None)
@given(
    p=st.lists(st.floats(1e-6, 1.0), min_size=3, max_size=30),
    factor=st.sampled_from([2, 4]),
    epsilon=st.floats(0.0, 2.0),
)
def test_randomised_rounding_regrid_is_dominated(p, factor, epsilon):
    """Lower laws: the same randomised rounding of the index for P and Q never raises a
    threshold divergence max_s P(S >= s) - e^eps Q(S >= s)."""
    p = np.asarray(p) / sum(p)
    q = np.roll(p, 3) * 0.5 + p * 0.5  # some other law on the same indices
    step, tilt = 0.1, 0.7
    p_law = _law(p, 0, step, tilt)
    q_law = _law(q, 0, step, tilt + 1.0)

    def threshold(pl, ql):
        _, pm = _untilt(pl)
        _, qm = _untilt(ql)
        size = max(pm.size + pl.first, qm.size + ql.first)
        pa, qa = np.zeros(size), np.zeros(size)
        pa[pl.first:pl.first + pm.size] = pm
        qa[ql.first:ql.first + qm.size] = qm
        tails_p = np.cumsum(pa[::-1])[::-1]
        tails_q = np.cumsum(qa[::-1])[::-1]
        # s beyond every atom: 0
        return max(float(np.max(tails_p - math.exp(epsilon) * tails_q)), 0.0)

    before = threshold(p_law, q_law)
    after = threshold(levels._regrid(levels._copy(p_law), factor, "lower"),
                      levels._regrid(levels._copy(q_law), factor, "lower_q"))
    assert after <= before + 1e-12


def test_heavy_tailed_losses_fall_back_to_one_fft():
    """sigma 0.8 at delta 1e-10: the cut tails do not thin out within a short grid; the
    accountant falls back to one FFT and still meets a 1% target."""
    bounds = PldAccountant(**PURE_RELATIVE).compose(1e-3, 0.8, 2_000_000) \
        .get_epsilon_bounds(1e-10)
    assert bounds.tolerance_met
    assert bounds.upper <= RdpAccountant().compose(1e-3, 0.8, 2_000_000).get_epsilon(1e-10)


def test_a_set_grid_never_squares(monkeypatch):
    """value_discretization is the grid: no coarser grids behind the user's back."""
    def refuse(*args, **kwargs):
        raise AssertionError("compose_levels called for a set grid")

    monkeypatch.setattr("accounting.pld.accountant.compose_levels", refuse)
    PldAccountant(value_discretization=1e-2).compose(256 / 60000, 1.1, 1 << 21) \
        .get_epsilon_bounds(DELTA)


def test_infinite_tolerance_needs_a_relative_one():
    with pytest.raises(ValueError, match="tolerance"):
        PldAccountant(tolerance=math.inf)


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.floats(0.0, 1.0), min_size=25, max_size=300).filter(lambda m: sum(m) > 0),
    b=st.lists(st.floats(0.0, 1.0), min_size=25, max_size=300).filter(lambda m: sum(m) > 0),
    kind=st.sampled_from(["upper", "lower", "lower_q"]),
)
def test_product_error_bounds_the_rounding_in_one_norm(a, b, kind):
    """An FFT product's ``error`` bounds the 1-norm distance of its masses from the exact
    convolution (summed in extended precision), relative to the normalised result."""
    law_a, law_b = _law(a, 0, 0.01, 0.0), _law(b, 0, 0.01, 0.0)
    law_a.error = law_b.error = 0.0
    product = levels._convolve(law_a, law_b, kind, wide=False)
    exact = np.convolve(law_a.masses.astype(np.longdouble), law_b.masses.astype(np.longdouble))
    exact = exact / exact.sum()
    distance = float(np.sum(np.abs(product.masses.astype(np.longdouble) - exact)))
    assert distance <= product.error
    # and the bound is of the order of the rounding, not of the masses
    assert product.error <= 1e-10


def test_carried_error_grows_with_the_factors_errors():
    """Young's inequality: a product carries both factors' 1-norm errors (times the other's
    mass), plus its own rounding."""
    law = _law(np.linspace(1.0, 2.0, 40), 0, 0.01, 0.0)
    law.error = 1e-9
    product = levels._convolve(law, levels._copy(law), "upper", wide=False)
    assert product.error >= 2e-9


@pytest.mark.parametrize("steps", [1 << 22, 10**7])
def test_tight_relative_target_contains_the_gaussian_closed_form(steps):
    """q = 1 at a 1e-4 relative target: the squaring's rounding, carried as a 1-norm bound,
    must neither exclude the closed form nor swamp the bracket (a pointwise allowance doubled
    with every squaring and left a floor of about 5e-4 of epsilon)."""
    sigma = math.sqrt(steps) / 2.0
    bounds = PldAccountant(tolerance=math.inf, relative_tolerance=1e-4) \
        .compose(1.0, sigma, steps).get_epsilon_bounds(DELTA)
    exact = mu_epsilon(2.0, DELTA)
    assert bounds.lower <= exact <= bounds.upper
    assert bounds.tolerance_met and bounds.width <= 1e-4 * exact * (1 + 1e-9)


@pytest.mark.parametrize("steps", [10**7, 10**8])
def test_tight_squaring_bracket_lies_inside_a_looser_one(steps):
    """Two certified brackets of one epsilon: the 1e-4 one must overlap the 1e-2 one and be
    narrower than 1e-4 of epsilon, and lie below RDP's bound."""
    q, sigma = 256 / 60000, 1.1
    tight = PldAccountant(tolerance=math.inf, relative_tolerance=1e-4) \
        .compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    loose = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert loose.lower <= tight.upper and tight.lower <= loose.upper
    assert tight.tolerance_met and tight.width <= 1e-4 * tight.upper
    assert tight.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)


def test_leading_bits_by_one_fft_match_pure_squaring(monkeypatch):
    """Composing the leading bits of the step count by one FFT power and squaring the rest
    gives a bracket overlapping the one of squaring from the first step."""
    q, sigma, steps = 256 / 60000, 1.1, 3_000_000
    step, points, anchor = 2e-4, 4096, 40.0
    with_leading = _levels_bracket(q, sigma, steps, step, points, anchor)
    monkeypatch.setattr(levels, "_LEADING_WINDOW", 0)
    squared = _levels_bracket(q, sigma, steps, step, points, anchor)
    assert with_leading[0] <= squared[1] and squared[0] <= with_leading[1]
    assert with_leading[1] - with_leading[0] <= 1.5 * (squared[1] - squared[0])


@pytest.mark.parametrize(
    ("q", "sigma", "grid"),
    [
        (1e-4, 1.1, 2e-5),  # heavy tails for its sample rate: one-FFT first grid
        (1e-5, 1.2, 4e-6),  # the same, smaller sample rate
        (1e-3, 1.0, 1e-4),  # squared on grids coarsened past the spread target to fit
    ],
)
def test_small_sample_rate_long_run_agrees_with_a_set_fine_grid(q, sigma, grid):
    """10^7 steps at small sample rates (per-step losses reaching thousands of spreads): the
    automatic bracket at relative width 1e-2 meets its width, lies under RDP's epsilon, and
    overlaps both a set fine grid's one-FFT bracket (no squaring) and a tighter automatic one."""
    steps = 10**7
    loose = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert loose.tolerance_met
    assert loose.upper - loose.lower <= 1e-2 * max(loose.upper, 1.0)
    assert loose.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)
    fixed = PldAccountant(value_discretization=grid).compose(q, sigma, steps) \
        .get_epsilon_bounds(DELTA)
    tight = PldAccountant(tolerance=math.inf, relative_tolerance=1e-3).compose(q, sigma, steps) \
        .get_epsilon_bounds(DELTA)
    assert tight.tolerance_met
    for other in (fixed, tight):
        assert loose.lower <= other.upper and other.lower <= loose.upper
    assert fixed.upper - fixed.lower <= 0.03 * fixed.upper  # narrow enough to say something


def _count_upper_compositions(monkeypatch):
    """Record, for every upper law composed, whether it was composed in extended precision."""
    from accounting.pld import accountant as pld_accountant

    calls = []
    original = pld_accountant._Direction._compose_upper

    def counted(self, groups, optional, reserve):
        calls.append(self.extended)
        return original(self, groups, optional, reserve)

    monkeypatch.setattr(pld_accountant._Direction, "_compose_upper", counted)
    return calls


def test_second_direction_starts_in_extended_precision(monkeypatch):
    """10^9 steps at q = 4e-5 (setting C's step): the double-precision rounding bound of the
    first direction swamps delta, so it is recomposed with extended transforms; the second
    direction starts there (three upper compositions, not four), and the bracket still lies
    under RDP's epsilon and overlaps a tighter one."""
    from accounting.pld import accountant as pld_accountant

    q, sigma, steps = 4e-5, 1.2, 10**9
    monkeypatch.setattr(pld_accountant, "_ROUNDING_PER_STEP", 0.0)  # no prediction
    calls = _count_upper_compositions(monkeypatch)
    loose = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert calls == [False, True, True]
    assert loose.tolerance_met
    assert loose.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)
    tight = PldAccountant(tolerance=math.inf, relative_tolerance=2e-3).compose(q, sigma, steps) \
        .get_epsilon_bounds(DELTA)
    assert loose.lower <= tight.upper and tight.lower <= loose.upper
    assert tight.upper - tight.lower < loose.upper - loose.lower


def test_later_grids_start_in_extended_precision(monkeypatch):
    """Once a grid of a search needed extended transforms, the finer grids after it start
    there: none is composed in double precision first. The first grid is made too coarse (its
    spacing factor tripled) so that the search refines it."""
    from accounting.pld import accountant as pld_accountant

    q, sigma, steps = 4e-5, 1.2, 10**9
    monkeypatch.setattr(pld_accountant, "_ROUNDING_PER_STEP", 0.0)  # no prediction
    monkeypatch.setattr(pld_accountant, "PLD_HEAVY_TAIL_STEP_FACTOR",
                        3.0 * pld_accountant.PLD_HEAVY_TAIL_STEP_FACTOR)
    grids = []
    original = pld_accountant.PldAccountant._composition

    def recorded(self, step, *args, **kwargs):
        grids.append(step)
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(pld_accountant.PldAccountant, "_composition", recorded)
    calls = _count_upper_compositions(monkeypatch)
    bounds = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert len(set(grids)) >= 2  # refined
    assert calls[:3] == [False, True, True] and all(calls[3:]) and len(calls) >= 5
    assert bounds.tolerance_met
    assert bounds.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)


def test_predicted_rounding_starts_in_extended_precision(monkeypatch):
    """Where the double-precision rounding bound is predicted (about 50 u per step times the
    tilted law's scale at the anchor) to move the upper bound by far more than the bracket
    allows, the first direction starts in extended precision (no double composition wasted),
    and the bracket is the one the unpredicted search finds, up to the rounding bounds."""
    from accounting.pld import accountant as pld_accountant

    # the prediction itself (arguments as the search passes them): large here, small at the
    # same count of setting A's step, whose saddle-point tilt makes its scale at the anchor
    # tiny, and small at a thousandth of the steps
    predict = pld_accountant._rounding_predicted_large
    assert predict(10**9, -3.35, 1.0, 1e-5, 5.77, 1e-2)
    assert not predict(10**9, -9.43, 0.022, 1e-5, 1.23e4, 1e-2)
    assert not predict(10**6, -3.35, 1.0, 1e-5, 5.77, 1e-2)
    q, sigma, steps = 4e-5, 1.2, 10**9
    calls = _count_upper_compositions(monkeypatch)
    predicted = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert calls == [True, True]
    monkeypatch.setattr(pld_accountant, "_ROUNDING_PER_STEP", 0.0)
    found = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps).get_epsilon_bounds(DELTA)
    assert calls[2:] == [False, True, True]
    assert predicted.tolerance_met and found.tolerance_met
    assert predicted.lower == pytest.approx(found.lower, rel=1e-6)
    assert predicted.upper == pytest.approx(found.upper, rel=1e-6)


def test_a_billion_steps_of_setting_a_stay_in_double_precision(monkeypatch):
    """At 10^9 steps of q = 256/60000, sigma = 1.1 the Chernoff saddle point at epsilon ~1.2e4
    is near lam = 0.03 (Gaussian approximation: (eps - mu^2 / 2) / mu^2 with mu^2 = T q^2
    (exp(1/sigma^2) - 1)); tilted there, the double-precision rounding bound is small next to
    delta and no extended transform is needed (untilted, its bound exceeded delta)."""
    q, sigma, steps = 256 / 60000, 1.1, 10**9
    calls = _count_upper_compositions(monkeypatch)
    accountant = PldAccountant(**PURE_RELATIVE).compose(q, sigma, steps)
    loose = accountant.get_epsilon_bounds(DELTA)
    assert calls == [False, False]
    assert loose.tolerance_met
    tilts = [direction._tilt for composition in accountant._compositions.values()
             for direction in composition.directions]
    assert all(0.0 < tilt < 0.125 for tilt in tilts)
    mu_squared = steps * q * q * math.expm1(sigma**-2)
    saddle = (loose.upper - mu_squared / 2.0) / mu_squared
    assert all(saddle / 4.0 <= tilt <= 4.0 * saddle for tilt in tilts)
    assert loose.upper <= RdpAccountant().compose(q, sigma, steps).get_epsilon(DELTA)
    # the Gaussian-DP (CLT) approximation, independent of the PLD, lies within 1% (mu ~153)
    assert mu_epsilon(math.sqrt(mu_squared), DELTA) == pytest.approx(loose.upper, rel=1e-2)
    tight = PldAccountant(tolerance=math.inf, relative_tolerance=2e-3).compose(q, sigma, steps) \
        .get_epsilon_bounds(DELTA)
    assert loose.lower <= tight.lower and tight.upper <= loose.upper


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(200, 3000),
    per_block=st.integers(12, 300),
    first=st.integers(-5000, 5000),
    step=st.floats(1e-5, 1e-1),
    seed=st.integers(0, 2**31 - 1),
)
def test_block_mgf_bound_lies_between_the_exact_sum_and_hoeffdings_slack(
        size, per_block, first, step, seed):
    """The chord bound over blocks (composition._log_mgf) is at least the exact
    log sum p e^(lam l), and at most ``lam^2 w^2 / 8`` above it (Hoeffding's lemma, w the block
    width), for lambdas of both signs and sizes."""
    from accounting.pld.composition import _log_mgf

    rng = np.random.default_rng(seed)
    blocks = max(size // per_block, 1)  # well under an eighth of the atoms: blocks, not exact
    masses = rng.random(size) * (rng.random(size) < 0.7)
    masses[rng.integers(size)] += 1.0
    masses /= masses.sum()
    pld = DiscretePld(step, first, masses)
    lambdas = np.concatenate([-np.geomspace(1e3, 1e-3, 13), np.geomspace(1e-3, 1e3, 13)])
    lambdas = lambdas / max(step * size, 1e-300) * 0.5
    keep = masses > 0
    exact = logsumexp(lambdas[:, None] * pld.losses[keep][None, :], b=masses[keep], axis=1)
    bound = _log_mgf(pld, lambdas, blocks=blocks)
    block = max(-(-size // blocks), 2)
    slack = lambdas ** 2 * ((block - 1) * step) ** 2 / 8.0
    scale = 1e-12 * np.maximum(1.0, np.abs(exact))
    assert np.all(bound >= exact - scale)
    assert np.all(bound <= exact + slack + scale)


def _mp_log_sum_exp(lam: float, first: int, step: float, weights: np.ndarray) -> float:
    """log sum_k w_k exp(lam (first + k) step) at 40 digits."""
    import mpmath

    with mpmath.workdps(40):
        lam_step = mpmath.mpf(float(lam)) * mpmath.mpf(float(step))
        terms = [mpmath.mpf(float(w)) * mpmath.exp(lam_step * (first + k))
                 for k, w in enumerate(weights) if w > 0]
        return float(mpmath.log(mpmath.fsum(terms)))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 6000),
    first=st.integers(-20_000, 20_000),
    log_step=st.floats(-6.0, -1.0),
    density=st.floats(0.02, 1.0),
    decay=st.floats(0.0, 700.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_grid_log_sum_exp_bounds_the_exact_sum_from_above(size, first, log_step, density, decay,
                                                          seed):
    """The blocked sum (composition.grid_log_sum_exp) is an upper bound on the exact
    log sum w e^(lam l) within a few units of rounding (mpmath at 40 digits), for lambdas of
    both signs from 1e-4 to 1e5 (blocked and steep ones), sparse weights and weights spanning
    e^-700; -inf without weight."""
    from accounting.pld.composition import grid_log_sum_exp

    rng = np.random.default_rng(seed)
    step = 10.0**log_step
    weights = rng.random(size) * (rng.random(size) < density)
    weights *= np.exp(-decay * rng.random(size))
    lambdas = np.concatenate([levels._OFFSETS, [0.0]])
    bound = grid_log_sum_exp(lambdas, first, step, weights)
    if not (weights > 0).any():
        assert np.all(bound == -np.inf)
        return
    for index in rng.choice(lambdas.size, 6, replace=False):
        exact = _mp_log_sum_exp(lambdas[index], first, step, weights)
        scale = 1e-13 * max(1.0, abs(exact))
        assert exact - scale <= bound[index] <= exact + scale


def test_grid_log_sum_exp_matches_the_direct_sum_on_a_long_law():
    """A per-step law of 15000 atoms (setting C's step at its fine grid) against the direct
    log-sum-exp over every atom: equal to 1e-12, for the levels' offsets around a tilt."""
    from accounting.pld.composition import grid_log_sum_exp

    pld = dominating_pmf(dominating_pairs(4e-5, 1.2, "add_remove")[0], 6.9e-6, 1e-20)
    lambdas = levels._OFFSETS + 1.0
    keep = pld.masses > 0
    direct = logsumexp(lambdas[:, None] * pld.losses[keep][None, :], b=pld.masses[keep], axis=1)
    blocked = grid_log_sum_exp(lambdas, pld.first_index, pld.step, pld.masses)
    assert np.all(np.abs(blocked - direct) <= 1e-12 * np.maximum(1.0, np.abs(direct)))


@pytest.mark.skipif(not levels.np.finfo(np.longdouble).eps < np.finfo(float).eps,
                    reason="NumPy's longdouble is double on this platform")
@settings(max_examples=30, deadline=None)
@given(
    a=st.lists(st.floats(0.0, 1.0), min_size=25, max_size=300).filter(lambda m: sum(m) > 0),
    carried=st.floats(1e-14, 1e-6),
)
def test_extended_product_in_double_where_its_rounding_is_a_small_share(a, carried):
    """An extended-precision square is taken in double where double's rounding bound is at most
    _DOUBLE_SHARE of the error carried in: its error bound then still covers the distance from
    the exact square, and exceeds the carried part by at most that share (plus rounding)."""
    law = _law(a, 0, 0.01, 0.0)
    law.error = carried
    product = levels._convolve(law, law, "upper", wide=True)
    clean = _law(a, 0, 0.01, 0.0)
    clean.error = 0.0
    exact = np.convolve(clean.masses.astype(np.longdouble), clean.masses.astype(np.longdouble))
    exact = exact / exact.sum()
    distance = float(np.sum(np.abs(product.masses.astype(np.longdouble) - exact)))
    carried_in = 2.0 * carried + 2.0 * carried**2
    # the product's own rounding bound (beyond the carried part) covers its distance
    assert distance <= product.error - carried_in * (1.0 - 1e-9)
    double_bound = levels._convolve(clean, clean, "upper", wide=False).error
    if double_bound <= levels._DOUBLE_SHARE * carried_in:  # taken in double
        assert product.error <= carried_in * (1.0 + levels._DOUBLE_SHARE) * (1.0 + 1e-9) \
            + 4.0 * levels._U


def test_grid_log_sum_exp_keeps_a_tiny_extreme_atom():
    """A law whose top atom weighs 5e-324 on a coarse grid (random allocation's at delta 1e-300
    once gave this): the sum at a positive lam is about that atom alone, far below any block
    product's underflow; it must stay an upper bound (finite, at least the exact value), not
    log(0)."""
    from accounting.pld.composition import grid_log_sum_exp

    weights = np.linspace(1.0, 1e-300, 30_000)
    weights[-1] = 5e-324
    lambdas = np.array([1e-3, 0.3, 1.0, -1.0])
    step = 1.0
    with np.errstate(divide="raise", invalid="raise"):  # no log(0) on the way either
        bound = grid_log_sum_exp(lambdas, 0, step, weights)
    assert np.all(np.isfinite(bound))
    # exact values at 40 digits on a thinned copy with the same extreme atoms
    thinned = np.zeros_like(weights)
    thinned[::1000] = weights[::1000]
    thinned[-1] = weights[-1]
    bound = grid_log_sum_exp(lambdas, 0, step, thinned)
    for lam, value in zip(lambdas, bound, strict=True):
        exact = _mp_log_sum_exp(lam, 0, step, thinned)
        scale = 1e-13 * max(1.0, abs(exact))
        assert exact - scale <= value <= exact + scale
