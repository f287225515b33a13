"""User-level accounting (accounting.user_level): the mixture-of-Gaussians step of a user's k
Poisson-sampled examples, and group privacy (Vadhan 2017, Lemma 2.2) as TF Privacy applies it.

References are independent of the code under test: binomial probabilities and the one-step MoG
privacy profile in mpmath, the lemma's sum in mpmath, and the group-privacy root of a one-order
RDP curve (a closed form in log delta) solved by mpmath.
"""

from __future__ import annotations

import math

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting
from accounting.events import (
    Gaussian,
    PoissonSampled,
    SelfComposed,
)
from accounting.user_level import (
    MAX_EXAMPLES_PER_USER_MOG,
    group_privacy_delta,
    group_privacy_epsilon,
    user_level_epsilon_bounds,
    user_level_step,
)

N, B, SIGMA, EPOCHS, DELTA = 60000, 250, 1.3, 15, 1e-5
Q, STEPS = B / N, 3600


# ------------------------------------------------------------------ the mixture step
@pytest.mark.parametrize("rate", [0.0, 1e-6, Q, 0.3, 0.999, 1.0])
def test_step_for_one_example_is_exactly_the_poisson_pair(rate):
    step = user_level_step(rate, SIGMA, 1)
    assert step.sensitivities == (0.0, 1.0)
    assert step.probabilities == (1.0 - rate, rate)
    assert step.noise_multiplier == SIGMA


@pytest.mark.parametrize("rate, k", [(Q, 2), (Q, 10), (0.3, 7), (0.01, 400), (0.5, 1000),
                                     (0.2, MAX_EXAMPLES_PER_USER_MOG),
                                     # a subnormal rate where SciPy's pmf overflows
                                     (1.1125369292536007e-308, 3)])
def test_step_probabilities_are_binomial(rate, k):
    step = user_level_step(rate, 0.9, k)
    assert step.sensitivities == tuple(float(j) for j in range(k + 1))
    mpmath.mp.dps = 50
    q = mpmath.mpf(rate)
    for j in sorted({0, 1, k // 2, int(k * rate), k - 1, k}):
        exact = mpmath.binomial(k, j) * q**j * (1 - q) ** (k - j)
        if exact < mpmath.mpf("1e-300"):
            assert step.probabilities[j] <= 1e-290
        else:
            assert step.probabilities[j] == pytest.approx(float(exact), rel=1e-11), j


def test_step_at_the_ends_of_the_sample_rate():
    assert user_level_step(0.0, 1.0, 4).probabilities == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert user_level_step(1.0, 1.0, 4).probabilities == (0.0, 0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("args, error, match", [
    ((Q, SIGMA, 0), ValueError, "max_examples_per_user"),
    ((Q, SIGMA, MAX_EXAMPLES_PER_USER_MOG + 1), ValueError, "max_examples_per_user"),
    ((Q, SIGMA, True), TypeError, "max_examples_per_user"),
    ((Q, SIGMA, 2.5), ValueError, "max_examples_per_user"),
    ((1.5, SIGMA, 2), ValueError, "sample_rate"),
    ((Q, 0.0, 2), ValueError, "noise_multiplier"),
    ((Q, math.inf, 2), ValueError, "noise_multiplier"),
])
def test_step_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        user_level_step(*args)


def test_user_level_bounds_reject_bad_arguments():
    with pytest.raises(ValueError, match="delta"):
        user_level_epsilon_bounds(Q, SIGMA, 10, 0.0, 2)
    with pytest.raises(ValueError, match="steps"):
        user_level_epsilon_bounds(Q, SIGMA, -1, DELTA, 2)
    with pytest.raises(ValueError, match="tolerance"):
        user_level_epsilon_bounds(Q, SIGMA, 10, DELTA, 2, tolerance=0.0)


def test_the_user_level_step_is_refused_by_rdp_naming_the_pld():
    # RDP has no bound for a general mixture: it refuses and names the accountant that has one
    with pytest.raises(accounting.UnsupportedEventError, match=r"handle it: \['pld'\]"):
        accounting.RdpAccountant().compose(user_level_step(Q, SIGMA, 2), STEPS)


def _mog_one_step_epsilon(sigma: float, probabilities, delta: float) -> float:
    """Exact epsilon of one MoG step for add/remove neighbours (the worse direction), mpmath.

    The privacy loss L(x) = log sum_j p_j exp((2 j x - j^2) / (2 sigma^2)) increases in x, so
    each direction's hockey-stick divergence is a difference of normal tails at the point where
    L crosses +-eps (bisection).
    """
    mpmath.mp.dps = 25
    s = mpmath.mpf(sigma)
    terms = [(j, mpmath.mpf(p)) for j, p in enumerate(probabilities) if p > 0]

    def loss(x):
        return mpmath.log(sum(p * mpmath.exp((2 * j * x - j * j) / (2 * s * s)) for j, p in terms))

    def crossing(level):
        low, high = -50 * s - 50, 50 * s + 50
        for _ in range(80):
            middle = (low + high) / 2
            low, high = (middle, high) if loss(middle) < level else (low, middle)
        return (low + high) / 2

    def delta_at(eps):
        eps = mpmath.mpf(eps)
        x = crossing(eps)  # mixture against N(0): the set L > eps
        upper = sum(p * mpmath.ncdf(-(x - j) / s) for j, p in terms) - mpmath.exp(eps) * (
            mpmath.ncdf(-x / s))
        y = crossing(-eps)  # N(0) against the mixture: the set L < -eps
        lower = mpmath.ncdf(y / s) - mpmath.exp(eps) * sum(
            p * mpmath.ncdf((y - j) / s) for j, p in terms)
        return max(upper, lower)

    low, high = mpmath.mpf(0), mpmath.mpf(60)
    for _ in range(48):
        middle = (low + high) / 2
        low, high = (low, middle) if delta_at(middle) <= delta else (middle, high)
    return float(high)


@pytest.mark.parametrize("rate, sigma", [(0.1, 1.0), (0.5, 2.0)])
def test_mixture_reference_for_one_example_is_the_poisson_step(rate, sigma):
    """The mpmath reference below, checked where the PLD accountant has a bracket already."""
    exact = _mog_one_step_epsilon(sigma, (1.0 - rate, rate), 1e-5)
    bounds = accounting.make_accountant("pld", tolerance=1e-4).compose(
        PoissonSampled(rate, Gaussian(sigma))).get_epsilon_bounds(1e-5)
    assert bounds.lower - 1e-9 <= exact <= bounds.upper + 1e-9


@pytest.mark.parametrize("rate, sigma, k", [(0.1, 1.0, 3), (0.02, 0.8, 5), (0.5, 2.0, 2)])
def test_one_mixture_step_bracket_holds_the_exact_epsilon(rate, sigma, k):
    step = user_level_step(rate, sigma, k)
    exact = _mog_one_step_epsilon(sigma, step.probabilities, 1e-5)
    bounds = user_level_epsilon_bounds(rate, sigma, 1, 1e-5, k, tolerance=1e-4)
    assert bounds.lower - 1e-9 <= exact <= bounds.upper + 1e-9


def test_one_example_per_user_gives_the_poisson_bracket():
    theirs = accounting.make_accountant("pld").compose(PoissonSampled(Q, Gaussian(SIGMA)), STEPS)
    ours = user_level_epsilon_bounds(Q, SIGMA, STEPS, DELTA, 1)
    assert tuple(ours) == tuple(theirs.get_epsilon_bounds(DELTA))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(rate=st.sampled_from([1e-3, Q, 0.01, 0.05]), sigma=st.sampled_from([0.8, 1.3, 2.0]),
       steps=st.integers(1, 500), k=st.integers(1, 6))
def test_user_level_is_monotone_in_k_and_above_example_level(rate, sigma, steps, k):
    example = accounting.make_accountant("pld").compose(
        PoissonSampled(rate, Gaussian(sigma)), steps).get_epsilon_bounds(DELTA)
    this = user_level_epsilon_bounds(rate, sigma, steps, DELTA, k)
    more = user_level_epsilon_bounds(rate, sigma, steps, DELTA, k + 1)
    # true values: example <= user(k) <= user(k + 1); each bracket holds its true value
    assert this.upper >= example.lower - 1e-12
    assert more.upper >= this.lower - 1e-12


# ------------------------------------------------------------------ the lemma
@pytest.mark.parametrize("epsilon, delta, k", [(0.5, 1e-6, 2), (0.01, 1e-8, 10), (2.0, 1e-9, 5),
                                               (1e-12, 1e-5, 3), (30.0, 1e-300, 4)])
def test_group_delta_is_the_lemma_sum(epsilon, delta, k):
    mpmath.mp.dps = 50
    exact = mpmath.mpf(delta) * mpmath.fsum(mpmath.exp(i * mpmath.mpf(epsilon)) for i in range(k))
    assert group_privacy_delta(epsilon, delta, k) == pytest.approx(float(min(exact, 1)),
                                                                   rel=1e-12)


def test_group_delta_edges():
    assert group_privacy_delta(0.0, 1e-6, 7) == pytest.approx(7e-6, rel=1e-15)
    assert group_privacy_delta(0.3, 1e-6, 1) == 1e-6
    assert group_privacy_delta(50.0, 1e-3, 3) == 1.0  # vacuous: capped at 1
    assert group_privacy_delta(1.0, 1e-10, 10**400) == 1.0
    with pytest.raises(ValueError, match="epsilon"):
        group_privacy_delta(-1.0, 1e-5, 2)
    with pytest.raises(ValueError, match="delta"):
        group_privacy_delta(1.0, 1.0, 2)
    with pytest.raises(ValueError, match="group_size"):
        group_privacy_delta(1.0, 1e-5, 0)


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0.0, 20.0), log_delta=st.floats(-30.0, -2.0), k=st.integers(1, 30))
def test_group_delta_grows_with_the_group(epsilon, log_delta, k):
    delta = math.exp(log_delta)
    this, more = group_privacy_delta(epsilon, delta, k), group_privacy_delta(epsilon, delta, k + 1)
    assert delta * (1 - 1e-12) <= this <= more * (1 + 1e-12)


# ------------------------------------------------------------------ group privacy epsilon
def test_group_size_one_is_the_example_epsilon():
    run = SelfComposed(PoissonSampled(Q, Gaussian(SIGMA)), STEPS)
    assert group_privacy_epsilon(run, 1, DELTA) == accounting.RdpAccountant().compose(
        run).get_epsilon(DELTA)


@pytest.mark.parametrize("sigma, count, k", [(1.3, 15, 2), (1.3, 15, 5), (3.0, 4, 10),
                                             (20.0, 10, 20)])
def test_group_epsilon_against_a_one_order_closed_form(sigma, count, k):
    """With one order alpha > k the example epsilon is A - x / (alpha - 1) in x = log delta
    (Gaussian RDP count alpha / (2 sigma^2), improved conversion), the lemma's gap
    x + log sum_{i<k} e^{i eps(x)} - log delta increases in x, and its root is unique."""
    alpha = 32.0
    mpmath.mp.dps = 50
    a = mpmath.mpf(alpha)
    constant = (count * a / (2 * mpmath.mpf(sigma) ** 2) + mpmath.log(1 - 1 / a)
                - mpmath.log(a) / (a - 1))

    def eps(x):
        return constant - x / (a - 1)

    def gap(x):
        e = eps(x)
        return x + mpmath.log(mpmath.fsum(mpmath.exp(i * e) for i in range(k))) - mpmath.log(
            DELTA)

    low, high = mpmath.mpf(-700), mpmath.log(DELTA)
    for _ in range(300):
        middle = (low + high) / 2
        low, high = (middle, high) if gap(middle) < 0 else (low, middle)
    assert low > -690  # the root lies within the float range of delta
    exact = k * eps((low + high) / 2)
    ledger = accounting.RdpAccountant(orders=[alpha]).compose(SelfComposed(Gaussian(sigma), count))
    assert group_privacy_epsilon(ledger, k, DELTA) == pytest.approx(float(exact), rel=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_group_epsilon_lies_on_the_lemma_curve(k):
    """At the answer E, the example delta d with eps(d) = E / k has group delta = the target:
    d found by bisection on the accountant's (decreasing) curve, the lemma summed in mpmath."""
    ledger = accounting.RdpAccountant().compose(Q, SIGMA, STEPS)
    total = group_privacy_epsilon(ledger, k, DELTA)
    per_example = total / k
    low, high = -700.0, math.log(DELTA)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if ledger.get_epsilon(math.exp(middle)) > per_example else (
            low, middle)
    mpmath.mp.dps = 40
    group_delta = mpmath.exp(mpmath.mpf(high)) * mpmath.fsum(
        mpmath.exp(i * mpmath.mpf(per_example)) for i in range(k))
    assert float(group_delta) == pytest.approx(DELTA, rel=1e-6)
    assert float(group_delta) <= DELTA * (1 + 1e-9)


def test_group_epsilon_takes_an_event_or_an_accountant():
    run = SelfComposed(PoissonSampled(Q, Gaussian(SIGMA)), STEPS)
    from_event = group_privacy_epsilon(run, 4, DELTA, orders=[2.0, 8.0, 16.0])
    ledger = accounting.RdpAccountant(orders=[2.0, 8.0, 16.0]).compose(run)
    assert group_privacy_epsilon(ledger, 4, DELTA) == from_event
    with pytest.raises(TypeError, match="source"):
        group_privacy_epsilon("run", 2, DELTA)
    with pytest.raises(TypeError, match="event source"):
        group_privacy_epsilon(ledger, 2, DELTA, orders=[2.0])
    with pytest.raises(ValueError, match="group_size"):
        group_privacy_epsilon(run, 0, DELTA)
    with pytest.raises(TypeError, match="group_size"):
        group_privacy_epsilon(run, True, DELTA)
    with pytest.raises(ValueError, match="delta"):
        group_privacy_epsilon(run, 2, 1.5)


def test_group_epsilon_of_nothing_spent_is_zero_and_of_no_bound_is_inf():
    assert group_privacy_epsilon(SelfComposed(PoissonSampled(0.0, Gaussian(1.0)), 10), 5,
                                 DELTA) == 0.0
    # a huge group: no example delta within the float range reaches the target
    assert group_privacy_epsilon(Gaussian(1.0), 10**6, DELTA) == math.inf
    assert group_privacy_epsilon(Gaussian(1.0), 10**400, DELTA) == math.inf


@settings(max_examples=30, deadline=None)
@given(rate=st.floats(1e-4, 0.1), sigma=st.floats(0.6, 5.0), steps=st.integers(1, 5000),
       log_delta=st.floats(-14.0, -3.0), k=st.integers(1, 12))
def test_group_epsilon_is_monotone_in_k_and_above_example_level(rate, sigma, steps, log_delta, k):
    delta = math.exp(log_delta)
    ledger = accounting.RdpAccountant().compose(rate, sigma, steps)
    example = ledger.get_epsilon(delta)
    this = group_privacy_epsilon(ledger, k, delta)
    more = group_privacy_epsilon(ledger, k + 1, delta)
    assert this >= example * (1 - 1e-12)
    assert this >= k * example * (1 - 1e-12)  # k times an epsilon at a smaller delta
    assert more >= this * (1 - 1e-9)
