"""PLD accountant for mixtures of Gaussians, fixed-size batches and truncated Poisson: brackets
against mpmath, brute-force compositions on fine grids, an explicit adaptive attack, exact
binomial sums and the Poisson accountant."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from scipy.stats import binom

from accounting import reference as ref
from accounting.accountant import UnsupportedEventError
from accounting.events import (
    Gaussian,
    MixtureOfGaussians,
    NoOp,
    SampledWithoutReplacement,
    SelfComposed,
    TruncatedPoissonGaussian,
)
from accounting.pld.accountant import PldAccountant, ToleranceNotMetWarning
from accounting.pld.privacy_loss import DominatingPair, dominated_pmf, dominating_pmf
from accounting.pld.samplers import (
    GaussianMixturePair,
    SymmetrisedPair,
    truncation_parameters,
)

_settings = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# dp_accounting 0.6 PLDAccountant (pessimistic, value_discretization_interval 1e-4) for
# MixtureOfGaussiansDpEvent(1.1, 0..k, Binomial(k, 256 / 60000)) x 14063 at delta 1e-5 (run by
# tests/test_peers_pld_samplers.py's recipe; 20-40 s each, too slow to repeat here). A
# pessimistic estimate: a certified upper bound up to its own discretisation.
DP_ACCOUNTING_MOG_A = {2: 5.264946684318395, 5: 16.111625111977}


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        return make()


def _binomial_mixture(k, q, sigma):
    if k == 1:  # exactly the Poisson step's weights
        return MixtureOfGaussians(sigma, (0.0, 1.0), (1.0 - q, q))
    probabilities = binom.pmf(np.arange(k + 1), k, q)
    return MixtureOfGaussians(sigma, tuple(float(c) for c in range(k + 1)),
                              tuple(probabilities.tolist()))


# ------------------------------------------------------------------------ independent references
def _mp_mixture_delta(sigma, sensitivities, probabilities, epsilon, direction, digits=30):
    """``delta(eps)`` of one mixture pair in mpmath: the loss is increasing, so the integral of
    ``(p - e^eps q)_+`` runs from the root ``x*`` of ``L(x*) = eps`` to ``inf`` and is a sum of
    normal tails; the root is bisected."""
    with mpmath.workdps(digits):
        s = mpmath.mpf(sigma)
        cs = [mpmath.mpf(c) for c in sensitivities]
        ps = [mpmath.mpf(p) for p in probabilities]
        total = mpmath.fsum(ps)
        ps = [p / total for p in ps]
        eps = mpmath.mpf(epsilon)
        sign = 1 if direction == "remove" else -1

        def mixture(x):  # sum p_i N(sign c_i) over N(0), as a ratio of densities
            return mpmath.fsum(p * mpmath.exp((2 * sign * c * x - c * c) / (2 * s * s))
                               for p, c in zip(ps, cs, strict=True))

        def loss(x):
            ratio = mixture(x)
            return mpmath.log(ratio) if direction == "remove" else -mpmath.log(ratio)

        zero = mpmath.fsum(p for p, c in zip(ps, cs, strict=True) if c == 0)
        if direction == "add" and zero > 0 and eps >= -mpmath.log(zero):
            return 0.0  # beyond the largest loss
        low, high = mpmath.mpf(-1), mpmath.mpf(1)
        while loss(low) > eps:
            low *= 2
        while loss(high) < eps:
            high *= 2
        for _ in range(200):
            mid = (low + high) / 2
            if loss(mid) > eps:
                high = mid
            else:
                low = mid
        x = (low + high) / 2
        if direction == "remove":  # P = mixture, Q = N(0)
            upper_p = mpmath.fsum(p * mpmath.ncdf((c - x) / s) for p, c in zip(ps, cs, strict=True))
            return float(upper_p - mpmath.exp(eps) * mpmath.ncdf(-x / s))
        upper_q = mpmath.fsum(p * mpmath.ncdf((-c - x) / s) for p, c in zip(ps, cs, strict=True))
        return float(mpmath.ncdf(-x / s) - mpmath.exp(eps) * upper_q)


def _cell_laws(sigma, p_parts, q_parts, lo, hi, cells):
    """``P``, ``Q`` masses of ``cells`` equal x-cells of ``[lo, hi]`` and the tails beyond."""
    edges = np.linspace(lo, hi, cells + 1)

    def masses(parts):
        cdf = sum(w * ndtr((edges - m) / sigma) for w, m in parts)
        return np.diff(cdf), float(cdf[0]), float(1.0 - cdf[-1])

    return edges, masses(p_parts), masses(q_parts)


def _loss_of(sigma, p_parts, q_parts, x):
    def log_density(parts):
        terms = np.array([math.log(w) - (x - m) ** 2 / (2 * sigma * sigma) for w, m in parts])
        top = terms.max(axis=0)
        return top + np.log(np.exp(terms - top).sum(axis=0))

    return log_density(p_parts) - log_density(q_parts)


def _brute_pmf(sigma, p_parts, q_parts, h, rounding, cells=400_000, width=14.0):
    """A one-step loss law on the grid ``h Z`` from fine x-cells: each cell's ``P`` mass at its
    largest loss rounded up (``rounding="up"``, tails above the range at ``+inf``) or at its
    smallest loss rounded down (``"down"``, tails dropped): both bracket the composition."""
    means = [m for _, m in p_parts + q_parts]
    lo, hi = min(means) - width * sigma, max(means) + width * sigma
    edges, (p_cells, p_below, p_above), _ = _cell_laws(sigma, p_parts, q_parts, lo, hi, cells)
    losses = _loss_of(sigma, p_parts, q_parts, edges)
    if rounding == "up":
        index = np.ceil(losses[1:] / h).astype(np.int64)
        index = np.concatenate([[index[0]], index])
        weights = np.concatenate([[p_below], p_cells])
        infinity = p_above
    else:
        index = np.floor(losses[:-1] / h).astype(np.int64)
        weights, infinity = p_cells, 0.0
    first = index.min()
    return first, np.bincount(index - first, weights=weights), infinity


def _compose_delta(first, pmf, infinity, count, h, epsilons):
    size = (pmf.size - 1) * count + 1
    n = 1 << int(math.ceil(math.log2(size)))
    composed = np.fft.irfft(np.fft.rfft(pmf, n) ** count, n)[:size]
    losses = (first * count + np.arange(size)) * h
    total_infinity = 1.0 - (1.0 - infinity) ** count
    out = []
    for eps in epsilons:
        above = losses > eps
        out.append(float(np.sum(composed[above] * -np.expm1(eps - losses[above])))
                   + total_infinity)
    return np.array(out)


def _brute_bracket(sigma, p_parts, q_parts, count, epsilons, h=2e-4):
    up = _brute_pmf(sigma, p_parts, q_parts, h, "up")
    down = _brute_pmf(sigma, p_parts, q_parts, h, "down")
    return (_compose_delta(*down, count, h, epsilons) - 1e-12,
            _compose_delta(*up, count, h, epsilons) + 1e-12)


def _mixture_parts(sensitivities, probabilities, direction):
    mixture = [(p, float(c)) for c, p in zip(sensitivities, probabilities, strict=True) if p > 0]
    if direction == "remove":
        return mixture, [(1.0, 0.0)]
    return [(1.0, 0.0)], [(p, -c) for p, c in mixture]


# ------------------------------------------------------------------------ mixtures of Gaussians
@pytest.mark.parametrize("q, sigma, count", [(0.01, 1.0, 1), (256 / 60000, 1.1, 14063),
                                             (0.2, 2.0, 300), (1.0, 3.0, 10)])
def test_two_point_mixture_is_the_poisson_bracket(q, sigma, count):
    mog = MixtureOfGaussians(sigma, (0.0, 1.0), (1.0 - q, q))
    for options in ({}, {"value_discretization": 1e-3}):
        ours = PldAccountant(**options).compose(mog, count).get_epsilon_bounds(1e-5)
        poisson = PldAccountant(**options).compose(q, sigma, count).get_epsilon_bounds(1e-5)
        assert tuple(ours) == tuple(poisson)
    # a scaled sensitivity is the Poisson step at the scaled noise
    scaled = MixtureOfGaussians(2.0 * sigma, (0.0, 2.0), (1.0 - q, q))
    assert tuple(PldAccountant().compose(scaled, count).get_delta_bounds(1.0)) == tuple(
        PldAccountant().compose(q, sigma, count).get_delta_bounds(1.0))


@pytest.mark.parametrize("q, sigma", [(0.01, 1.0), (0.3, 0.5), (0.9, 0.2), (1e-5, 3.0)])
@pytest.mark.parametrize("direction", ["remove", "add"])
def test_general_mixture_pair_agrees_with_the_closed_form_poisson_pair(q, sigma, direction):
    mixture = GaussianMixturePair(sigma, (0.0, 1.0), (1.0 - q, q), direction)
    poisson = DominatingPair(q, sigma, direction)
    x = np.linspace(-8.0, 8.0, 801)
    np.testing.assert_allclose(mixture.loss(x), poisson.loss(x), rtol=1e-12, atol=1e-14)
    low, high = poisson.loss_range
    assert mixture.loss_range == pytest.approx((low, high), rel=1e-12)
    losses = np.linspace(max(low, -5.0) + 0.01, min(high, 5.0) - 0.01, 301)
    np.testing.assert_allclose(mixture.inverse_loss(losses), poisson.inverse_loss(losses),
                               rtol=1e-9, atol=1e-9)
    # the edges agree to an ulp or two; the connect-the-dots split amplifies that by e^loss / step
    # (a Q cell's rounding times e^a), so only the merged cells agree to rounding
    ours, theirs = dominating_pmf(mixture, 1e-3, 1e-15), dominating_pmf(poisson, 1e-3, 1e-15)
    assert ours.first_index == theirs.first_index
    np.testing.assert_allclose(ours.masses, theirs.masses, rtol=1e-4, atol=1e-12)
    assert ours.infinity_mass == pytest.approx(theirs.infinity_mass, rel=1e-9, abs=1e-30)
    ours, theirs = dominated_pmf(mixture, 1e-3, 1e-15), dominated_pmf(poisson, 1e-3, 1e-15)
    assert ours.first_index == theirs.first_index
    np.testing.assert_allclose(ours.masses, theirs.masses, rtol=1e-9, atol=1e-16)
    np.testing.assert_allclose(ours.q_masses, theirs.q_masses, rtol=1e-9, atol=1e-16)


@given(
    sensitivities=st.lists(st.floats(0.0, 4.0), min_size=1, max_size=5),
    weights=st.lists(st.floats(0.01, 1.0), min_size=6, max_size=6),
    sigma=st.floats(0.3, 5.0),
    direction=st.sampled_from(["remove", "add"]),
)
@_settings
def test_mixture_loss_inverse_round_trips(sensitivities, weights, sigma, direction):
    values = sorted(set(sensitivities) | {1.0})
    probabilities = np.array(weights[: len(values)])
    probabilities /= probabilities.sum()
    pair = GaussianMixturePair(sigma, tuple(values), tuple(probabilities.tolist()), direction)
    x = np.linspace(-3.0 * sigma, 4.0 + 3.0 * sigma, 201)
    losses = pair.loss(x)
    assert np.all(np.diff(losses) >= -1e-12)
    # the independent log-density ratio
    parts = _mixture_parts(values, probabilities, direction)
    np.testing.assert_allclose(losses, _loss_of(sigma, *parts, x), rtol=1e-10, atol=1e-10)
    inside = (losses > pair.loss_range[0] + 1e-6) & (losses < pair.loss_range[1] - 1e-6)
    back = pair.inverse_loss(losses[inside])
    np.testing.assert_allclose(pair.loss(back), losses[inside], rtol=1e-12, atol=1e-12)


_MIXTURES = [
    (1.0, (0.0, 1.0, 2.0), (0.81, 0.18, 0.01)),
    (0.8, (0.0, 0.5, 3.0), (0.6, 0.3, 0.1)),
    (2.0, (1.0, 2.0), (0.5, 0.5)),
]


@pytest.mark.parametrize("sigma, sensitivities, probabilities", _MIXTURES)
def test_one_mixture_step_brackets_the_mpmath_divergence(sigma, sensitivities, probabilities):
    event = MixtureOfGaussians(sigma, sensitivities, probabilities)
    accountant = PldAccountant(value_discretization=2e-3).compose(event)
    for epsilon in (0.0, 0.3, 1.0, 2.5):
        exact = max(_mp_mixture_delta(sigma, sensitivities, probabilities, epsilon, d)
                    for d in ("remove", "add"))
        lower, upper, _ = accountant.get_delta_bounds(epsilon)
        assert lower <= exact * (1 + 1e-9) + 1e-15
        assert exact <= upper * (1 + 1e-9) + 1e-15
        assert upper - lower <= 5e-3 * exact + 1e-9


@pytest.mark.parametrize("sigma, sensitivities, probabilities", _MIXTURES[:2])
def test_composed_mixture_brackets_a_brute_force_composition(sigma, sensitivities,
                                                             probabilities):
    count, epsilons = 4, (0.5, 1.5, 3.0)
    event = MixtureOfGaussians(sigma, sensitivities, probabilities)
    accountant = PldAccountant(value_discretization=1e-3).compose(event, count)
    low = np.zeros(len(epsilons))
    high = np.zeros(len(epsilons))
    for direction in ("remove", "add"):
        parts = _mixture_parts(sensitivities, probabilities, direction)
        d_low, d_high = _brute_bracket(sigma, *parts, count, epsilons)
        low, high = np.maximum(low, d_low), np.maximum(high, d_high)
    for epsilon, ref_low, ref_high in zip(epsilons, low, high, strict=True):
        lower, upper, _ = accountant.get_delta_bounds(epsilon)
        assert ref_high - ref_low <= 2e-3 * ref_high  # the reference is sharp
        assert lower <= ref_high
        assert ref_low <= upper
        assert upper <= ref_high * 1.02  # and ours is tight


def test_all_zero_sensitivities_spend_nothing():
    accountant = PldAccountant().compose(MixtureOfGaussians(1.0, (0.0, 0.0), (0.5, 0.5)), 100)
    assert tuple(accountant.get_epsilon_bounds(1e-6))[:2] == (0.0, 0.0)
    assert accountant.get_delta(0.0) == 0.0
    assert accountant.steps == 100


def test_user_level_mixtures_match_dp_accounting_on_setting_a():
    q, sigma, count = 256 / 60000, 1.1, 14063
    for k, theirs in DP_ACCOUNTING_MOG_A.items():
        bounds = PldAccountant().compose(_binomial_mixture(k, q, sigma), count)
        lower, upper, _ = bounds.get_epsilon_bounds(1e-5)
        assert lower <= theirs <= upper + 1e-4
        assert upper - lower <= 1e-3


@given(k=st.integers(1, 6), q=st.floats(1e-3, 0.2), sigma=st.floats(0.8, 3.0),
       count=st.integers(1, 300))
@_settings
def test_user_level_mixtures_spend_at_least_one_example(k, q, sigma, count):
    poisson = PldAccountant(tolerance=1e-2).compose(q, sigma, count).get_epsilon_bounds(1e-5)
    user = _quiet(lambda: PldAccountant(tolerance=1e-2).compose(
        _binomial_mixture(k, q, sigma), count).get_epsilon_bounds(1e-5))
    assert user.upper >= poisson.lower
    if k == 1:
        assert tuple(user) == tuple(poisson)


@given(q=st.floats(0.01, 0.3), factor=st.floats(1.05, 3.0), sigma=st.floats(0.8, 3.0),
       count=st.integers(1, 200))
@_settings
def test_mixture_epsilon_grows_with_rate_steps_and_shrinks_with_noise(q, factor, sigma, count):
    def bounds(rate, noise, steps):
        event = MixtureOfGaussians(noise, (0.0, 1.0, 2.0), (1 - rate, 0.9 * rate, 0.1 * rate))
        return _quiet(lambda: PldAccountant(tolerance=1e-2).compose(event, steps)
                      .get_epsilon_bounds(1e-5))

    base = bounds(q, sigma, count)
    assert bounds(min(q * factor, 1.0), sigma, count).upper >= base.lower
    assert bounds(q, sigma * factor, count).lower <= base.upper
    assert bounds(q, sigma, count + 50).upper >= base.lower


def test_mixture_steps_compose_with_poisson_steps():
    mixture = MixtureOfGaussians(1.0, (0.0, 1.0, 2.0), (0.81, 0.18, 0.01))
    both = PldAccountant().compose(mixture, 50).compose(0.01, 1.0, 200).get_epsilon_bounds(1e-5)
    alone = PldAccountant().compose(mixture, 50).get_epsilon_bounds(1e-5)
    assert both.lower >= alone.lower - 1e-3 and both.upper >= alone.lower
    assert both.width <= 1e-3 + 1e-9


def test_largest_mixture_finishes_in_bounded_time():
    import time

    event = MixtureOfGaussians(1.0, tuple(float(c) for c in range(4096)),
                               tuple([1.0 / 4096] * 4096))
    start = time.perf_counter()
    bounds = _quiet(lambda: PldAccountant().compose(event, 10).get_epsilon_bounds(1e-5))
    assert time.perf_counter() - start < 20.0
    assert 0.0 <= bounds.lower <= bounds.upper


def test_samplers_refuse_the_other_relation():
    with pytest.raises(UnsupportedEventError, match='neighboring="replace_one"'):
        PldAccountant().compose(SampledWithoutReplacement(100, 10, Gaussian(1.0)))
    with pytest.raises(UnsupportedEventError, match='neighboring="add_remove"'):
        PldAccountant(neighboring="replace_one").compose(
            MixtureOfGaussians(1.0, (0.0, 1.0, 2.0), (0.5, 0.3, 0.2)))
    with pytest.raises(UnsupportedEventError, match='neighboring="add_remove"'):
        PldAccountant(neighboring="replace_one").compose(TruncatedPoissonGaussian(100, 0.1, 5, 1.0))
    with pytest.raises(UnsupportedEventError, match="only of a Gaussian"):
        PldAccountant(neighboring="replace_one").compose(
            SampledWithoutReplacement(100, 10, SelfComposed(Gaussian(1.0), 2)))


def test_rdp_cap_is_skipped_for_events_rdp_cannot_account_for():
    mixture = MixtureOfGaussians(1.0, (0.0, 1.0, 2.0), (0.81, 0.18, 0.01))
    accountant = PldAccountant().compose(mixture, 10).compose(0.01, 1.0, 10)
    assert accountant._rdp_epsilon(1e-5) == math.inf
    assert PldAccountant().compose(0.01, 1.0, 10)._rdp_epsilon(1e-5) < math.inf


# ------------------------------------------------------------------------ without replacement
def test_one_fixed_size_step_is_the_remove_pair():
    n, b, s = 1000, 50, 0.8
    accountant = PldAccountant(value_discretization=1e-3, neighboring="replace_one")
    accountant.compose(SampledWithoutReplacement(n, b, Gaussian(s)))
    for epsilon in (0.0, 0.5, 1.0, 2.0):
        with mpmath.workdps(30):
            exact = float(ref.hockey_stick_delta(b / n, s, epsilon, "remove", digits=25))
        lower, upper, _ = accountant.get_delta_bounds(epsilon)
        assert lower <= exact * (1 + 1e-9) <= upper * (1 + 2e-9)
        assert upper - lower <= 5e-3 * exact


def test_symmetrised_pair_mirrors_the_positive_losses():
    base = DominatingPair(0.05, 1.0, "remove")
    pmf = dominating_pmf(SymmetrisedPair(base), 1e-3, 1e-15)
    assert pmf.first_index == -(pmf.masses.size // 2)
    assert pmf.masses.sum() + pmf.infinity_mass == pytest.approx(1.0, abs=1e-12)
    # the discretised law is symmetric itself: mass at -l is e^-l times the mass at l
    centre = pmf.masses.size // 2
    k = np.arange(1, centre - 1)
    np.testing.assert_allclose(pmf.masses[centre - k], np.exp(-k * 1e-3) * pmf.masses[centre + k],
                               rtol=1e-6, atol=1e-18)
    # and its positive part carries P's mass where the pair's loss exceeds one step (some of
    # the first cell's goes to 0), at most P's mass where it is positive (x > 1/2)
    positive = pmf.masses[centre + 1:].sum() + pmf.infinity_mass
    x_step = float(base.inverse_loss(np.array([1e-3]))[0])
    assert 0.95 * ndtr(-x_step) + 0.05 * ndtr(1 - x_step) - 1e-12 <= positive
    assert positive <= 0.95 * ndtr(-0.5) + 0.05 * ndtr(0.5) + 1e-12


def _adaptive_attack_delta(q, s, count, epsilon, h=2e-3):
    """``delta`` an analyst attains against sampling without replacement by choosing, after each
    step and from the loss so far, which of the two records holds the unit vector (the remove
    pair or its swap); dynamic programming over the accumulated loss, every loss rounded down
    and tails dropped, so a lower bound on the true ``delta``."""
    parts_p = [(1.0 - q, 0.0), (q, 1.0)]
    parts_q = [(1.0, 0.0)]
    lo, hi = -8.0 * s, 1.0 + 8.0 * s
    edges, (p_cells, _, _), (q_cells, _, _) = _cell_laws(s, parts_p, parts_q, lo, hi, 200_000)
    losses = _loss_of(s, parts_p, parts_q, edges)
    remove_index = np.floor(losses[:-1] / h).astype(np.int64)  # under P: L
    swap_index = np.floor(-losses[1:] / h).astype(np.int64)    # swapped, under Q: -L
    span = count * int(max(abs(remove_index).max(), abs(swap_index).max())) + 2
    grid = np.arange(-span, span + 1) * h
    value = np.where(grid > epsilon, -np.expm1(epsilon - grid), 0.0)

    def expected(index, weights):
        first = index.min()
        law = np.bincount(index - first, weights=weights)
        full = np.convolve(value, law[::-1]) if law.size < 64 else _fft_correlate(value, law)
        shift = first + law.size - 1
        out = np.zeros_like(value)
        where = np.arange(value.size) + shift
        ok = (where >= 0) & (where < full.size)
        out[ok] = full[where[ok]]
        return out

    for _ in range(count):
        value = np.maximum(expected(remove_index, p_cells), expected(swap_index, q_cells))
        value = np.maximum(value, 0.0)
    return float(value[span])


def _fft_correlate(value, law):
    size = value.size + law.size - 1
    n = 1 << int(math.ceil(math.log2(size)))
    return np.fft.irfft(np.fft.rfft(value, n) * np.fft.rfft(law[::-1], n), n)[:size]


def test_fixed_size_bound_covers_an_adaptive_analyst_the_remove_pair_alone_misses():
    q, s, count, epsilon = 0.2, 1.0, 10, 1.0
    n = 1000
    attack = _adaptive_attack_delta(q, s, count, epsilon, h=1e-3)
    # the remove pair composed alone (losses rounded up: an upper bound of that composition)
    _, remove_only = _brute_bracket(s, [(1 - q, 0.0), (q, 1.0)], [(1.0, 0.0)], count, [epsilon])
    assert attack > remove_only[0] * 1.03  # so composing the remove pair alone is not a bound
    accountant = PldAccountant(value_discretization=1e-3, neighboring="replace_one")
    accountant.compose(SampledWithoutReplacement(n, int(q * n), Gaussian(s)), count)
    lower, upper, _ = _quiet(lambda: accountant.get_delta_bounds(epsilon))
    assert upper >= attack
    # the lower end is the remove pair composed: at most its brute-force upper bound
    assert lower <= remove_only[0]


def test_fixed_size_lower_end_is_the_composed_remove_pair():
    q, s, count = 0.05, 1.0, 6
    accountant = PldAccountant(value_discretization=1e-3, neighboring="replace_one")
    accountant.compose(SampledWithoutReplacement(200, 10, Gaussian(s)), count)
    low, high = _brute_bracket(s, [(1 - q, 0.0), (q, 1.0)], [(1.0, 0.0)], count, [0.3, 1.0])
    for epsilon, ref_low, ref_high in zip((0.3, 1.0), low, high, strict=True):
        lower, upper, _ = _quiet(lambda e=epsilon: accountant.get_delta_bounds(e))
        assert ref_low * 0.99 <= lower <= ref_high
        assert upper >= ref_low


def test_fixed_size_edge_cases():
    replace = PldAccountant(neighboring="replace_one")
    assert replace.copy().compose(SampledWithoutReplacement(10, 0, Gaussian(1.0)), 5) \
        .get_epsilon_bounds(1e-5)[:2] == (0.0, 0.0)
    assert replace.copy().compose(SampledWithoutReplacement(10, 3, NoOp()), 5) \
        .get_epsilon_bounds(1e-5)[:2] == (0.0, 0.0)
    # the whole data set: the Gaussian N(1) against N(0) at s, i.e. the replace pair (1, 2 s)
    whole = replace.copy().compose(SampledWithoutReplacement(10, 10, Gaussian(1.5)), 3)
    plain = replace.copy().compose(1.0, 3.0, 3)
    assert tuple(whole.get_epsilon_bounds(1e-5)) == tuple(plain.get_epsilon_bounds(1e-5))


@given(b=st.integers(5, 100), s=st.floats(0.8, 3.0), count=st.integers(1, 200),
       factor=st.floats(1.1, 2.0))
@_settings
def test_fixed_size_epsilon_is_monotone(b, s, count, factor):
    def bounds(size, noise, steps):
        accountant = PldAccountant(tolerance=1e-2, neighboring="replace_one")
        accountant.compose(SampledWithoutReplacement(1000, size, Gaussian(noise)), steps)
        return _quiet(lambda: accountant.get_epsilon_bounds(1e-5))

    base = bounds(b, s, count)
    assert 0.0 <= base.lower <= base.upper
    assert bounds(min(int(b * factor) + 1, 1000), s, count).upper >= base.lower
    assert bounds(b, s * factor, count).lower <= base.upper
    assert bounds(b, s, count + 20).upper >= base.lower


# ------------------------------------------------------------------------ truncated Poisson
@pytest.mark.parametrize("n, q, cap", [(30, 0.2, 5), (50, 0.5, 20), (12, 0.9, 11), (40, 0.05, 1)])
def test_truncation_parameters_match_exact_binomial_sums(n, q, cap):
    truncation, rate, survival = truncation_parameters(n, q, cap)
    with mpmath.workdps(40):
        qq = mpmath.mpf(q)

        def pmf(k, m):
            return mpmath.binomial(m, k) * qq**k * (1 - qq) ** (m - k)

        exact_truncation = mpmath.fsum(pmf(k, n - 1) for k in range(cap, n))
        # the record survives when sampled: always if fewer than B others, else B / (1 + K)
        exact_survival = qq * mpmath.fsum(pmf(k, n - 1) * min(1, mpmath.mpf(cap) / (1 + k))
                                          for k in range(n))
        kept_when_cut = qq * mpmath.fsum(pmf(k, n - 1) * mpmath.mpf(cap) / (1 + k)
                                         for k in range(cap, n))
        assert truncation == pytest.approx(float(exact_truncation), rel=1e-13)
        assert survival == pytest.approx(float(exact_survival), rel=1e-13)
        assert rate == pytest.approx(float(kept_when_cut / exact_truncation), rel=1e-13)


@pytest.mark.parametrize("n, q, cap", [(60000, 256 / 60000, 276), (60000, 250 / 60000, 250),
                                       (10**6, 1e-3, 1100), (60000, 256 / 60000, 200),
                                       (10**9, 1e-6, 1100), (200, 0.1, 22)])
def test_scipy_binomial_tails_are_within_the_shade(n, q, cap):
    truncation, rate, _ = truncation_parameters(n, q, cap)
    with mpmath.workdps(40):
        exact = mpmath.betainc(cap, n - cap, 0, q, regularized=True)  # P(Bin(n-1, q) >= cap)
        over = mpmath.betainc(cap + 1, n - cap, 0, q, regularized=True)  # P(Bin(n, q) > cap)
        # the allowance taken by the truncated pair is 2e-13
        assert abs(truncation / float(exact) - 1) < 5e-14
        assert abs(rate / float(cap * over / (n * exact)) - 1) < 5e-14


def test_truncated_step_with_a_huge_cap_is_the_poisson_step():
    q, s, count = 256 / 60000, 1.1, 14063
    truncated = TruncatedPoissonGaussian(60000, q, 10**6, s)
    ours = PldAccountant().compose(truncated, count).get_epsilon_bounds(1e-5)
    assert tuple(ours) == tuple(PldAccountant().compose(q, s, count).get_epsilon_bounds(1e-5))
    assert PldAccountant().compose(TruncatedPoissonGaussian(100, 0.1, 0, 1.0), 5) \
        .get_epsilon_bounds(1e-5)[:2] == (0.0, 0.0)


@pytest.mark.parametrize("n, b, cap, s, count",
                         [(60000, 250, 270, 1.3, 3600), (200, 20, 22, 1.0, 50)])
def test_truncated_bracket_holds_the_exact_lower_pair(n, b, cap, s, count):
    q = b / n
    truncation, _, survival = truncation_parameters(n, q, cap)
    assert truncation > 0 and survival < q
    bounds = _quiet(lambda: PldAccountant().compose(
        TruncatedPoissonGaussian(n, q, cap, s), count).get_epsilon_bounds(1e-5))
    # all other records 0: the Poisson pair at the survival rate, a valid lower bound
    exact_lower = PldAccountant().compose(survival, s, count).get_epsilon_bounds(1e-5)
    assert bounds.lower <= exact_lower.upper
    assert bounds.lower >= exact_lower.lower - 2e-3
    # the replace part at half the noise only adds: at least the Poisson step at the same rate
    poisson = PldAccountant().compose(q, s, count).get_epsilon_bounds(1e-5)
    assert bounds.upper >= poisson.lower


@given(cap=st.integers(21, 40), s=st.floats(0.8, 3.0), count=st.integers(1, 100))
@_settings
def test_truncated_epsilon_shrinks_with_the_cap_and_noise(cap, s, count):
    def bounds(size, noise):
        event = TruncatedPoissonGaussian(200, 0.1, size, noise)
        return _quiet(lambda: PldAccountant(tolerance=1e-2).compose(event, count)
                      .get_epsilon_bounds(1e-5))

    base = bounds(cap, s)
    assert 0.0 <= base.lower <= base.upper
    assert bounds(cap + 5, s).lower <= base.upper
    assert bounds(cap, 1.5 * s).lower <= base.upper
