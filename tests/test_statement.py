"""accounting.statement.privacy_statement: every line against an independent computation, the
labels that say what a figure assumes, 'not available' where no accountant handles a sampler, and
argument checks. (Against TF Privacy itself: tests/test_tf_privacy_statement.py.)"""

from __future__ import annotations

import math
import time

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting
from accounting.accountant import UnsupportedEventError
from accounting.events import (
    Gaussian,
    MixtureOfGaussians,
    RandomAllocation,
    SampledWithoutReplacement,
    TruncatedPoissonGaussian,
)
from accounting.statement import privacy_statement
from accounting.user_level import group_privacy_epsilon, user_level_epsilon_bounds

# TF Privacy's MNIST tutorial
N, B, SIGMA, EPOCHS, DELTA = 60000, 250, 1.3, 15, 1e-5
STEPS = 3600


def _gaussian_rdp_epsilon(sigma: float, count: int, delta: float, orders=None) -> float:
    """Closed form: count Gaussian releases have RDP count alpha / (2 sigma^2); the improved
    conversion (Canonne, Kamath, Steinke 2020, Prop. 12) minimised over the orders, in mpmath."""
    mpmath.mp.dps = 30
    orders = accounting.DEFAULT_ORDERS if orders is None else orders
    s, d = mpmath.mpf(sigma), mpmath.mpf(delta)
    best = min(
        count * a / (2 * s * s) + mpmath.log(1 - 1 / a) - (mpmath.log(d) + mpmath.log(a)) / (a - 1)
        for a in (mpmath.mpf(float(order)) for order in orders)
    )
    return float(best)


def _gaussian_exact_epsilon(sigma: float, count: int, delta: float) -> float:
    """Exact epsilon of count Gaussian releases (Balle and Wang 2018, Theorem 8), mpmath."""
    mpmath.mp.dps = 40
    mu = mpmath.sqrt(count) / mpmath.mpf(sigma)

    def delta_at(eps):
        return mpmath.ncdf(-eps / mu + mu / 2) - mpmath.exp(eps) * mpmath.ncdf(-eps / mu - mu / 2)

    low, high = mpmath.mpf(0), mpmath.mpf(1000)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if delta_at(middle) <= delta else (middle, high)
    return float(high)


def _flat(text: str) -> str:
    """The text with its line wrapping undone (phrases may be cut across lines)."""
    return " ".join(text.split())


def _supported(name: str, event, **options) -> bool:
    try:
        return accounting.make_accountant(name, **options).supports(event)
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------ Poisson sampling
@pytest.mark.parametrize("microbatching", [False, True])
def test_poisson_line_is_the_rdp_accountant(microbatching):
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, used_microbatching=microbatching)
    sigma = SIGMA / 2 if microbatching else SIGMA
    epsilon, order = accounting.RdpAccountant().compose(B / N, sigma, STEPS).get_epsilon_and_order(
        DELTA)
    line = statement.line("poisson")
    assert (line.epsilon, line.order) == (epsilon, order)
    assert line.epsilon == accounting.dpsgd_epsilon(N, B, EPOCHS, sigma, DELTA)
    assert line.guarantee and line.assumption is None and line.neighboring == "add_remove"
    assert statement.epsilon == epsilon and statement.steps == STEPS
    assert statement.effective_noise_multiplier == sigma
    assert statement.keys() == ("poisson",)
    assert statement.user_epsilon is None
    assert "No user-level privacy guarantee is possible" in _flat(statement.text)
    assert f"{epsilon:.3f} (order {order:g})" in statement.text
    assert ("(TF Privacy's rule)" in _flat(statement.text)) == microbatching


def test_pld_accountant_adds_a_certified_bracket():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, accountant="pld")
    line = statement.line("poisson_pld")
    bounds = accounting.PldAccountant().compose(B / N, SIGMA, STEPS).get_epsilon_bounds(DELTA)
    assert (line.lower, line.epsilon) == (bounds.lower, bounds.upper)
    assert line.method == "PLD" and line.guarantee
    assert statement.line("poisson").order is not None  # the RDP line stays
    assert statement.epsilon == bounds.upper  # the smaller certified figure
    assert f"[{bounds.lower:.3f}, {bounds.upper:.3f}]" in statement.text


def test_moments_accountant_line():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, accountant="moments")
    expected = accounting.MomentsAccountant().compose(B / N, SIGMA, STEPS).get_epsilon(DELTA)
    assert statement.line("poisson_moments").epsilon == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ shuffling
@pytest.mark.parametrize("microbatching", [False, True])
def test_shuffle_once_per_epoch_is_the_gaussian_rdp_closed_form(microbatching):
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle",
                                  used_microbatching=microbatching, accountant="pld")
    sigma = SIGMA / 2 if microbatching else SIGMA
    line = statement.line("once_per_epoch")
    assert line.epsilon == pytest.approx(_gaussian_rdp_epsilon(sigma, EPOCHS, DELTA), rel=1e-10)
    assert line.neighboring == "zero_out" and line.guarantee
    bracket = statement.line("once_per_epoch_pld")
    exact = _gaussian_exact_epsilon(sigma, EPOCHS, DELTA)
    assert bracket.lower - 1e-9 <= exact <= bracket.epsilon + 1e-9
    assert statement.neighboring == "zero_out"
    assert statement.steps == EPOCHS * math.ceil(N / B)
    assert statement.epsilon == bracket.epsilon


def test_shuffle_labels_the_poisson_figure_as_an_assumption():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle")
    assumed = statement.line("poisson")
    assert assumed.epsilon == accounting.dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA)
    assert not assumed.guarantee and assumed.assumption == "if batches were Poisson-sampled"
    # never the headline: the run's certified figure is the once-per-epoch one
    assert statement.epsilon == statement.line("once_per_epoch").epsilon > assumed.epsilon
    text = _flat(statement.text)
    assert "If batches were Poisson-sampled (*)" in text
    assert "(*) The batches of this run were not Poisson-sampled" in text
    assert "zero-out" in text and "once per epoch" in text


def test_shuffle_lower_bound_line():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle")
    line = statement.line("shuffle_lower_bound")
    assert line.epsilon is None and not line.guarantee
    try:
        from accounting.shuffle import shuffle_lower_bound
    except ImportError:
        assert line.unavailable and "not available" in line.value_text()
        return
    bound = shuffle_lower_bound(math.ceil(N / B), SIGMA, EPOCHS, DELTA)
    assert line.lower == float(getattr(bound, "epsilon", bound))
    # a lower bound on the shuffled run cannot exceed its certified upper bound
    assert line.lower <= statement.line("once_per_epoch").epsilon + 1e-9


# ------------------------------------------------------------------ fixed-size batches
@pytest.mark.parametrize("microbatching", [False, True])
def test_fixed_size_batches_use_replace_one_at_half_the_noise(microbatching):
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="fixed",
                                  used_microbatching=microbatching)
    line = statement.line("fixed")
    assert line.neighboring == "replace_one" and statement.neighboring == "replace_one"
    step = SampledWithoutReplacement(N, B, Gaussian(SIGMA / 2))  # with or without microbatches
    if _supported("rdp", step, neighboring="replace_one"):
        expected = accounting.make_accountant("rdp", neighboring="replace_one").compose(
            step, STEPS).get_epsilon(DELTA)
        assert line.epsilon == expected and line.guarantee
    else:
        assert line.epsilon is None and "not available" in line.value_text()
    text = _flat(statement.text)
    assert "replace-one" in text and "by up to 2C" in text
    # the Poisson figure is labelled and never the run's figure
    assumed = statement.line("poisson")
    assert not assumed.guarantee and statement.epsilon != assumed.epsilon


# ------------------------------------------------------------------ truncated, balls-in-bins
@pytest.mark.filterwarnings("ignore::accounting.ToleranceNotMetWarning")
def test_truncated_poisson_line_is_its_own_event_or_not_available():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="truncated",
                                  max_batch_size=300, accountant="pld")
    step = TruncatedPoissonGaussian(N, B / N, 300, SIGMA)
    for key, name in (("truncated", "rdp"), ("truncated_pld", "pld")):
        line = statement.line(key)
        if _supported(name, step):
            ledger = accounting.make_accountant(name).compose(step, STEPS)
            expected = ledger.get_epsilon(DELTA)
            assert line.epsilon == pytest.approx(expected, rel=1e-9) and line.guarantee
        else:
            assert line.epsilon is None and line.lower is None
            assert "TruncatedPoissonGaussian" in line.unavailable
    guaranteed = [line.epsilon for line in statement.lines
                  if line.guarantee and line.epsilon is not None and line.level == "example"]
    assert statement.epsilon == (min(guaranteed) if guaranteed else None)
    assert statement.line("poisson").epsilon not in guaranteed


def test_balls_in_bins_once_per_epoch_and_its_own_line():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="balls-in-bins")
    epoch = statement.line("once_per_epoch")
    assert epoch.neighboring == "add_remove" and epoch.guarantee
    assert epoch.epsilon == pytest.approx(_gaussian_rdp_epsilon(SIGMA, EPOCHS, DELTA), rel=1e-10)
    own = statement.line("balls-in-bins")
    unit = RandomAllocation(N // B, Gaussian(SIGMA))
    if _supported("rdp", unit):
        expected = accounting.RdpAccountant().compose(unit, EPOCHS).get_epsilon(DELTA)
        assert own.epsilon == expected
    else:
        assert own.epsilon is None and "RandomAllocation" in own.unavailable


def test_an_accountant_that_supports_nothing_gives_not_available_lines():
    class Nothing(accounting.RdpAccountant):
        name = "nothing-test"

        def _plan(self, event, count):
            raise UnsupportedEventError("nothing is supported")

    accounting.register_accountant("nothing-test", Nothing)
    try:
        statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle",
                                      accountant="nothing-test", max_examples_per_user=2)
    finally:
        accounting.unregister_accountant("nothing-test")
    for key in ("once_per_epoch_nothing-test", "poisson_nothing-test"):
        line = statement.line(key)
        assert line.epsilon is None and "'nothing-test' accountant does not account" in (
            line.unavailable)
    assert "not available: the 'nothing-test' accountant" in _flat(statement.text)
    assert statement.line("once_per_epoch").epsilon is not None  # RDP still answers


# ------------------------------------------------------------------ user level
@pytest.mark.parametrize("k", [1, 2, 5])
def test_user_lines_for_poisson(k):
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, max_examples_per_user=k)
    ledger = accounting.RdpAccountant().compose(B / N, SIGMA, STEPS)
    group = statement.line("user_group:poisson")
    assert group.epsilon == group_privacy_epsilon(ledger, k, DELTA)
    assert group.level == "user" and group.guarantee
    assert group.epsilon >= statement.line("poisson").epsilon
    if k == 1:
        assert group.epsilon == statement.line("poisson").epsilon
    mog = statement.line("user_mog")
    try:
        bounds = user_level_epsilon_bounds(B / N, SIGMA, STEPS, DELTA, k)
    except UnsupportedEventError:
        assert mog.epsilon is None and "MixtureOfGaussians" in mog.unavailable
    else:
        assert (mog.lower, mog.epsilon) == (bounds.lower, bounds.upper)
        assert statement.user_epsilon == min(bounds.upper, group.epsilon)
    assert mog.guarantee and mog.assumption is None
    assert f"at most {k} examples per user" in _flat(statement.text)


@pytest.mark.parametrize("k", [2, 5])
def test_user_once_per_epoch_is_the_gaussian_with_k_times_the_sensitivity(k):
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle",
                                  max_examples_per_user=k)
    line = statement.line("user_once_per_epoch")
    assert line.epsilon == pytest.approx(_gaussian_rdp_epsilon(SIGMA / k, EPOCHS, DELTA),
                                         rel=1e-10)
    group = statement.line("user_group:once_per_epoch")
    assert group.epsilon >= line.epsilon  # group privacy is the looser route here
    assert statement.user_epsilon == line.epsilon
    # the Poisson MoG line is labelled as an assumption for a shuffled run
    mog = statement.line("user_mog")
    assert not mog.guarantee and mog.assumption == "if batches were Poisson-sampled"


def test_user_level_pld_off_leaves_the_mixture_line_out():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, max_examples_per_user=3,
                                  user_level_pld=False)
    assert statement.keys() == ("poisson", "user_group:poisson")


def test_mixture_line_beyond_its_component_cap_is_not_available():
    statement = privacy_statement(10**6, 1000, 1, 1.0, DELTA, max_examples_per_user=5000)
    line = statement.line("user_mog")
    assert line.epsilon is None and "at most 4095" in line.unavailable


@settings(max_examples=12, deadline=None)
@given(n=st.integers(100, 10**6), batch_fraction=st.floats(1e-4, 0.5),
       sigma=st.floats(0.5, 4.0), epochs=st.integers(1, 30),
       log_delta=st.floats(-12.0, -3.0), k=st.integers(1, 8))
def test_statement_agrees_with_the_accountants(n, batch_fraction, sigma, epochs, log_delta, k):
    b = max(1, int(n * batch_fraction))
    delta = math.exp(log_delta)
    statement = privacy_statement(n, b, epochs, sigma, delta, sampling="shuffle",
                                  max_examples_per_user=k)
    assert statement.line("poisson").epsilon == accounting.dpsgd_epsilon(n, b, epochs, sigma,
                                                                         delta)
    assert statement.line("once_per_epoch").epsilon == pytest.approx(
        _gaussian_rdp_epsilon(sigma, epochs, delta), rel=1e-9)
    for key in ("poisson", "once_per_epoch"):
        example, user = statement.line(key), statement.line(f"user_group:{key}")
        assert user.epsilon >= example.epsilon * (1 - 1e-12)
        if k == 1:
            assert user.epsilon == example.epsilon


# ------------------------------------------------------------------ arguments and limits
@pytest.mark.parametrize("change, error, match", [
    ({"sample_size": 0}, ValueError, "sample_size"),
    ({"sample_size": 2.5}, ValueError, "sample_size"),
    ({"batch_size": N + 1}, ValueError, "batch_size"),
    ({"batch_size": "250"}, TypeError, "batch_size"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"epochs": math.nan}, ValueError, "epochs"),
    ({"epochs": "15"}, TypeError, "epochs"),
    ({"noise_multiplier": 0.0}, ValueError, "noise_multiplier"),
    ({"noise_multiplier": math.inf}, ValueError, "noise_multiplier"),
    ({"delta": 0.0}, ValueError, "delta"),
    ({"delta": 1.0}, ValueError, "delta"),
    ({"sampling": "uniform"}, ValueError, "sampling"),
    ({"sampling": 3}, TypeError, "sampling"),
    ({"used_microbatching": "yes"}, TypeError, "used_microbatching"),
    ({"max_examples_per_user": 0}, ValueError, "max_examples_per_user"),
    ({"max_examples_per_user": N + 1}, ValueError, "max_examples_per_user"),
    ({"max_examples_per_user": 1.5}, ValueError, "max_examples_per_user"),
    ({"accountant": "exact"}, ValueError, "accountant"),
    ({"max_batch_size": 300}, ValueError, "max_batch_size"),
    ({"sampling": "truncated"}, ValueError, "max_batch_size"),
    ({"sampling": "truncated", "max_batch_size": 0}, ValueError, "max_batch_size"),
    ({"orders": [0.5, 2.0]}, ValueError, "orders"),
    ({"pld_tolerance": 0.0}, ValueError, "pld_tolerance"),
    ({"user_level_pld": 1}, TypeError, "user_level_pld"),
])
def test_bad_arguments_are_named(change, error, match):
    arguments = {"sample_size": N, "batch_size": B, "epochs": EPOCHS, "noise_multiplier": SIGMA,
                 "delta": DELTA}
    keywords = {key: value for key, value in change.items() if key not in arguments}
    arguments.update({key: value for key, value in change.items() if key in arguments})
    with pytest.raises(error, match=match):
        privacy_statement(*arguments.values(), **keywords)


@pytest.mark.parametrize("sampling", ["poisson", "shuffle", "fixed", "balls-in-bins"])
def test_extreme_runs_finish_in_bounded_time(sampling):
    start = time.perf_counter()
    statement = privacy_statement(10**9, 1, 1e6, 0.3, 1e-12, sampling=sampling,
                                  max_examples_per_user=1000)
    assert time.perf_counter() - start < 20.0
    for line in statement.lines:
        assert line.unavailable or line.epsilon is not None or line.lower is not None
        assert line.epsilon is None or line.epsilon >= 0.0  # never negative, never nan


def test_statement_is_frozen_and_printable():
    statement = privacy_statement(N, B, EPOCHS, SIGMA, DELTA, max_examples_per_user=3)
    with pytest.raises(AttributeError):
        statement.delta = 0.1
    assert str(statement) == statement.text
    assert statement.text.startswith("DP-SGD over 60000 examples with 250 examples per step")
    assert "protects the release of all model checkpoints" in _flat(statement.text)
    with pytest.raises(KeyError, match="no line"):
        statement.line("fixed")


def test_mixture_event_is_the_only_user_level_pld_input():
    """The MoG line composes exactly user_level_step's event (no stand-in sampler)."""
    from accounting.user_level import user_level_step

    step = user_level_step(B / N, SIGMA, 3)
    assert isinstance(step, MixtureOfGaussians) and len(step.probabilities) == 4
