"""Samplers of dpsgd_kernels and the events the trainer's ledger records for each of them.

Sampler statistics are checked against their exact distributions (binomial, hypergeometric,
truncated binomial) with tolerances of several standard deviations; ledger epsilons against the
accountant composed by hand, and against closed forms where the sampler reduces to a plain
Gaussian (a fixed batch of the whole data set, a shuffled epoch).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import accounting
import dpsgd_kernels as dk
from accounting.events import (
    Gaussian,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
    ShuffledEpoch,
    TruncatedPoissonGaussian,
)
from dpsgd_kernels.sampling import (
    BallsInBinsSampler,
    FixedSizeSampler,
    TruncatedPoissonSampler,
    make_sampler,
)

DELTA = 1e-5

@pytest.fixture(autouse=True)
def _quiet_pld():
    # the PLD accountant warns when its bracket is wider than its tolerance; the upper end is
    # certified either way, and that is what the ledger reports
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", accounting.ToleranceNotMetWarning)
        yield


def _toy_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)
    return x, y


def _trainer(sampling, accountant="rdp", *, noise=1.2, batch_size=20, **options):
    return dk.DPSGDTrainer(dk.tf_privacy_mlp(dtype="float64", rng=0), "binary_crossentropy",
                           dk.SGD(0.5), batch_size=batch_size, noise_multiplier=noise,
                           delta=DELTA, sampling=sampling, accountant=accountant, rng=1,
                           **options)


# ----------------------------------------------------------------------------- sampler statistics
def test_fixed_batches_have_exactly_b_distinct_examples_each_equally_likely():
    n, b, steps = 200, 15, 4000
    batches = list(FixedSizeSampler(n, b, steps, rng=0))
    assert len(batches) == steps
    assert all(batch.size == b and np.all(np.diff(batch) > 0) for batch in batches)
    assert min(batch.min() for batch in batches) >= 0 and max(b.max() for b in batches) < n
    # each example's count over the steps is Binomial(steps, b / n); the counts sum to steps b,
    # so the Pearson statistic is chi-square with n - 1 degrees of freedom
    counts = np.bincount(np.concatenate(batches), minlength=n)
    p = b / n
    spread = math.sqrt(steps * p * (1 - p))
    assert np.max(np.abs(counts - steps * p)) < 5 * spread
    chi2 = ((counts - steps * p) ** 2 / (steps * p * (1 - p))).sum()
    assert stats.chi2.sf(chi2, df=n - 1) > 1e-3
    # steps are independent: consecutive batches share Hypergeometric(n, b, b) examples
    pairs = zip(batches[:-1], batches[1:], strict=True)
    overlaps = np.array([np.intersect1d(a, c).size for a, c in pairs])
    hyper = stats.hypergeom(n, b, b)
    z = (overlaps.mean() - hyper.mean()) / math.sqrt(hyper.var() / overlaps.size)
    assert abs(z) < 5


def test_truncated_batches_are_capped_and_equal_poisson_batches_without_a_cap():
    n, q = 300, 0.05
    plain = list(dk.PoissonSampler(n, q, 50, rng=7))
    uncapped = list(TruncatedPoissonSampler(n, q, n, 50, rng=7))
    assert all(np.array_equal(a, c) for a, c in zip(plain, uncapped, strict=True))
    cap, steps = 15, 3000
    batches = list(TruncatedPoissonSampler(n, q, cap, steps, rng=8))
    sizes = np.array([batch.size for batch in batches])
    assert sizes.max() == cap  # P(K > 15) = 0.05 for K ~ Binomial(300, 0.05): it happens
    assert all(np.all(np.diff(batch) > 0) for batch in batches)
    # sizes are min(K, cap): compare their mean with the exact truncated-binomial mean
    k = np.arange(n + 1)
    pmf = stats.binom.pmf(k, n, q)
    truncated = np.minimum(k, cap)
    mean = float(pmf @ truncated)
    sd = math.sqrt(float(pmf @ truncated**2) - mean**2)
    assert abs(sizes.mean() - mean) < 5 * sd / math.sqrt(steps)
    assert mean < q * n  # the cap bites (why the normaliser q n is an upper end)
    # the cut keeps a uniform subset: every example is included with probability mean / n
    counts = np.bincount(np.concatenate(batches), minlength=n)
    p = mean / n
    assert np.max(np.abs(counts - steps * p)) < 5 * math.sqrt(steps * p * (1 - p))


def test_balls_in_bins_uses_every_example_once_per_epoch_in_a_uniform_bin():
    n, b, epochs = 103, 10, 400
    sampler = BallsInBinsSampler(n, b, steps=epochs * (n // b), rng=3)
    bins = sampler.steps_per_epoch
    assert bins == 10 and sampler.expected_batch_size == pytest.approx(10.3)
    batches = list(sampler)
    assert len(batches) == epochs * bins
    where = np.empty((epochs, n), dtype=int)
    for epoch in range(epochs):
        epoch_batches = batches[epoch * bins:(epoch + 1) * bins]
        joined = np.concatenate(epoch_batches)
        assert np.array_equal(np.sort(joined), np.arange(n))  # each example exactly once
        for position, batch in enumerate(epoch_batches):
            assert np.all(np.diff(batch) > 0)
            where[epoch, batch] = position
    # an example's bin is uniform over the t bins, independently across epochs
    table = np.stack([np.bincount(where[:, i], minlength=bins) for i in range(n)])
    chi2 = ((table - epochs / bins) ** 2 / (epochs / bins)).sum()
    assert stats.chi2.sf(chi2, df=n * (bins - 1)) > 1e-3
    sizes = np.array([batch.size for batch in batches])
    # sizes are Binomial(n, 1 / t)
    assert sizes.var() == pytest.approx(n / bins * (1 - 1 / bins), rel=0.15)


@pytest.mark.parametrize("sampling", dk.sampling.SAMPLINGS)
def test_seeds_reproduce_the_batches(sampling):
    extra = {"max_batch_size": 8} if sampling == "truncated" else {}
    first = list(make_sampler(sampling, 60, 10, 15, rng=5, **extra))
    again = list(make_sampler(sampling, 60, 10, 15, rng=np.random.default_rng(5), **extra))
    other = list(make_sampler(sampling, 60, 10, 15, rng=6, **extra))
    assert all(np.array_equal(a, c) for a, c in zip(first, again, strict=True))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other, strict=True))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_sampler_shapes_hold_for_any_sizes(n, data, seed):
    b = data.draw(st.integers(1, n))
    cap = data.draw(st.integers(1, n + 3))
    for batch in FixedSizeSampler(n, b, 3, rng=seed):
        assert batch.size == b and np.unique(batch).size == b and batch.max() < n
    poisson = list(dk.PoissonSampler(n, b / n, 3, rng=seed))
    same_stream = True  # until a batch is cut, both samplers draw the same uniforms
    for plain, cut in zip(poisson, TruncatedPoissonSampler(n, b / n, cap, 3, rng=seed),
                          strict=True):
        assert cut.size <= cap and np.unique(cut).size == cut.size
        assert np.isin(cut, np.arange(n)).all()
        if same_stream:
            assert cut.size == min(plain.size, cap) and np.isin(cut, plain).all()
            same_stream = plain.size <= cap
    sampler = BallsInBinsSampler(n, b, n // b, rng=seed)
    joined = np.concatenate(list(sampler))
    assert np.array_equal(np.sort(joined), np.arange(n))


def test_sampler_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"batch_size must lie in \[1, sample_size=10\]"):
        FixedSizeSampler(10, 11, 5)
    with pytest.raises(ValueError, match="max_batch_size must be a whole number >= 1"):
        TruncatedPoissonSampler(10, 0.5, 0, 5)
    with pytest.raises(ValueError, match=r"sample_size must be a whole number in \[1, 2147483648"):
        dk.PoissonSampler(2**40, 0.5, 1)
    with pytest.raises(ValueError, match="sampling='truncated' needs max_batch_size"):
        make_sampler("truncated", 10, 2, 1)
    with pytest.raises(ValueError, match="max_batch_size is the cap of sampling='truncated'"):
        make_sampler("fixed", 10, 2, 1, max_batch_size=3)
    with pytest.raises(ValueError, match="sampling must be one of"):
        make_sampler("uniform", 10, 2, 1)
    with pytest.raises(TypeError, match="draws whole epochs"):
        BallsInBinsSampler(10, 2, 1).sample()
    with pytest.raises(ValueError, match="microbatch_size must be 1"):
        dk.PoissonSampler(10, 0.5, 1).event(1.0, microbatch_size=2)


# ----------------------------------------------------------------------------- events recorded
@pytest.mark.parametrize("sampling", ["poisson", "fixed", "truncated", "shuffle", "balls_in_bins"])
def test_sampler_events_are_accountings_dpsgd_run_events(sampling):
    """Each sampler's unit event is the one :func:`accounting.dpsgd_run` builds independently
    from the hyper-parameters (n divisible by b, where both count t = n / b batches)."""
    n, b, sigma = 240, 16, 1.3
    extra = {"max_batch_size": 20} if sampling == "truncated" else {}
    sampler = make_sampler(sampling, n, b, 1, **extra)
    run = accounting.dpsgd_run(n, b, sigma, epochs=1, sampling=sampling, **extra)
    assert sampler.event(sigma) == run.unit_event
    assert sampler.neighboring == run.neighboring
    assert sampler.unit == run.unit


def test_fixed_steps_record_the_replace_one_event_in_a_replace_one_accountant(capsys):
    x, y = _toy_data()
    trainer = _trainer("fixed")
    assert trainer.ledger.accountant.neighboring == "replace_one"
    assert trainer.accounted_noise_multiplier == 0.6
    reports = trainer.fit(x, y, epochs=2, verbose=True)
    event = SampledWithoutReplacement(200, 20, Gaussian(0.6))
    assert trainer.ledger.history == [accounting.CompositionRecord(event, 20)]
    for report in reports:
        by_hand = accounting.make_accountant("rdp", neighboring="replace_one").compose(
            event, report.total_steps)
        assert report.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
        assert report.neighboring == "replace_one" and "replace-one" in str(report)
    assert capsys.readouterr().out.count("replace-one neighbours") == 2
    assert trainer.neighboring == "replace_one"


def test_a_fixed_batch_of_the_whole_data_set_is_the_gaussian_at_half_the_noise():
    """b = n: every step releases the clipped sum with noise sigma C, which moves by up to 2 C
    when one example is replaced: RDP alpha / (2 (sigma / 2)^2) per step, by hand."""
    x, y = _toy_data(n=40)
    trainer = _trainer("fixed", batch_size=40, noise=3.0)
    report = trainer.fit(x, y, epochs=3)[-1]
    orders = accounting.DEFAULT_ORDERS
    rdp = 3 * orders / (2 * 1.5**2)
    assert report.epsilon == pytest.approx(accounting.epsilon_from_rdp(rdp, orders, DELTA)[0],
                                           rel=1e-9)


def test_fixed_steps_with_the_pld_accountant_and_grouped_microbatches():
    x, y = _toy_data()
    trainer = _trainer("fixed", "pld", num_microbatches=5)
    # microbatches of 4: a replaced example still moves one clipped microbatch by 2 C at most
    assert trainer.accounted_noise_multiplier == 0.6
    report = trainer.fit(x, y, epochs=1)[0]
    event = SampledWithoutReplacement(200, 20, Gaussian(0.6))
    by_hand = accounting.make_accountant("pld", neighboring="replace_one").compose(event, 10)
    assert report.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
    assert report.neighboring == "replace_one"


def test_truncated_steps_record_the_truncated_event_with_pld():
    x, y = _toy_data()
    trainer = _trainer("truncated", "pld", noise=2.0, max_batch_size=24)
    report = trainer.fit(x, y, epochs=1)[0]
    event = TruncatedPoissonGaussian(200, 0.1, 24, 2.0)
    assert trainer.ledger.history == [accounting.CompositionRecord(event, 10)]
    by_hand = accounting.make_accountant("pld").compose(event, 10)
    assert report.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
    assert report.neighboring == "add_remove" and "add/remove" in str(report)


def test_shuffled_epochs_record_one_gaussian_each():
    x, y = _toy_data()
    trainer = _trainer("shuffle", noise=1.5)
    reports = trainer.fit(x, y, epochs=3)
    assert trainer.ledger.history == [
        accounting.CompositionRecord(ShuffledEpoch(10, Gaussian(1.5)), 3)]
    orders = accounting.DEFAULT_ORDERS
    for epochs, report in enumerate(reports, start=1):
        rdp = epochs * orders / (2 * 1.5**2)  # one Gaussian release per epoch, by hand
        expected = accounting.epsilon_from_rdp(rdp, orders, DELTA)[0]
        assert report.epsilon == pytest.approx(expected, rel=1e-9)
        assert report.neighboring == "zero_out"


def test_poisson_steps_record_poisson_sampled_gaussians():
    x, y = _toy_data()
    trainer = _trainer("poisson")
    report = trainer.fit(x, y, epochs=2)[-1]
    assert trainer.ledger.history == [
        accounting.CompositionRecord(PoissonSampled(0.1, Gaussian(1.2)), 20)]
    assert report.epsilon == pytest.approx(accounting.get_privacy_budget(200, 20, 2, 1.2, DELTA),
                                           rel=1e-12)


def test_balls_in_bins_epochs_record_random_allocation():
    x, y = _toy_data()
    trainer = _trainer("balls_in_bins")
    reports = trainer.fit(x, y, epochs=2)
    event = RandomAllocation(10, Gaussian(1.2))
    assert trainer.ledger.history == [accounting.CompositionRecord(event, 2)]
    for epochs, report in enumerate(reports, start=1):
        by_hand = accounting.make_accountant("rdp").compose(event, epochs)
        assert report.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
        assert report.neighboring == "add_remove" and report.steps == 10


@pytest.mark.parametrize("sampling, divisor", [
    ("poisson", 20.0), ("truncated", 20.0), ("balls_in_bins", 210 / 10),
    ("fixed", None), ("shuffle", None),
])
def test_each_sampler_divides_by_its_constant_normaliser(sampling, divisor):
    """Poisson and truncated divide by q n, balls in bins by n / t; fixed-size and shuffled
    batches leave it to dp_gradient, which divides by the number of microbatches (b)."""
    x, y = _toy_data(n=210)
    seen = []

    class Recording(dk.DPSGDTrainer):
        def step(self, x_batch, y_batch, sample_rate, expected_batch_size=None, event=None):
            seen.append((len(x_batch), expected_batch_size))
            return super().step(x_batch, y_batch, sample_rate, expected_batch_size, event)

    extra = {"max_batch_size": 22} if sampling == "truncated" else {}
    trainer = Recording(dk.tf_privacy_mlp(dtype="float64", rng=0), "binary_crossentropy",
                        dk.SGD(0.1), batch_size=20, sampling=sampling, rng=2, private=False,
                        **extra)
    trainer.fit(x, y, epochs=1)
    assert {expected for _, expected in seen} == {divisor}
    sizes = [size for size, _ in seen]
    if sampling in ("fixed", "shuffle"):
        assert set(sizes) == {20}
    if sampling == "truncated":
        assert max(sizes) <= 22
    if sampling == "balls_in_bins":
        assert sum(sizes) == 210 and len(sizes) == 10


# ----------------------------------------------------------------------------- refusals
def _no_step_taken(trainer, before):
    assert trainer.total_steps == 0 and trainer.ledger.history == [] and trainer.epsilon == 0.0
    for now, then in zip(trainer.model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize("target", [None, 5.0])
@pytest.mark.parametrize("sampling, accountant, extra, names", [
    ("truncated", "rdp", {"max_batch_size": 24}, r"\['pld'\]"),
    ("fixed", accounting.RdpAccountant(), {}, r"\['rdp', 'pld'\] \(made with "
                                              r"neighboring='replace_one'\)"),
    ("balls_in_bins", "moments", {}, r"\['rdp', 'pld'\]"),
    ("poisson", accounting.RdpAccountant(neighboring="replace_one"), {}, r"'pld'"),
])
def test_training_refuses_a_sampler_its_accountant_cannot_account_for(
        sampling, accountant, extra, names, target):
    """With or without a budget: the refusal comes before any step, names the sampler, the
    accountant and the accountants that can; no Poisson figure is reported instead."""
    if isinstance(accountant, accounting.Accountant):
        accountant = accountant.copy()
    x, y = _toy_data()
    trainer = _trainer(sampling, accountant, target_epsilon=target, **extra)
    before = trainer.model.get_weights()
    with pytest.raises(accounting.UnsupportedEventError,
                       match=rf"sampling='{sampling}'.*accountant.*cannot account for.*{names}"):
        trainer.fit(x, y, epochs=1)
    _no_step_taken(trainer, before)


def test_a_named_accountant_without_a_replace_one_mode_is_refused_for_fixed_batches():
    with pytest.raises(accounting.UnsupportedEventError,
                       match=r"sampling='fixed'.*'moments' accountant has no neighboring option"
                             r".*\['rdp', 'pld'\]"):
        _trainer("fixed", "moments")
    # a non-private trainer has no ledger and reports no epsilon at all
    trainer = _trainer("fixed", "moments", private=False)
    assert trainer.ledger is None and math.isinf(trainer.fit(*_toy_data(), epochs=1)[0].epsilon)


def test_trainer_sampling_arguments():
    with pytest.raises(ValueError, match="sampling='truncated' needs max_batch_size"):
        _trainer("truncated", "pld")
    with pytest.raises(ValueError, match="max_batch_size is the cap of sampling='truncated'"):
        _trainer("poisson", max_batch_size=5)
    assert _trainer("balls-in-bins", "pld").sampling == "balls_in_bins"


# ----------------------------------------------------------------------------- budget stops
def _units_within(make, unit, target):
    """Most compositions of ``unit`` in a fresh ``make()`` accountant within ``target``."""
    count = 0
    while make().compose(unit, count + 1).get_epsilon(DELTA) <= target:
        count += 1
    return count


@pytest.mark.parametrize("sampling, accountant, options, extra, noise", [
    ("poisson", "rdp", {}, {}, 1.5),
    ("fixed", "rdp", {"neighboring": "replace_one"}, {}, 3.0),
    ("truncated", "pld", {}, {"max_batch_size": 30}, 2.0),
    ("shuffle", "rdp", {}, {}, 2.0),
    ("balls_in_bins", "rdp", {}, {}, 2.0),
])
def test_training_stops_before_the_unit_that_would_exceed_the_budget(
        sampling, accountant, options, extra, noise):
    x, y = _toy_data()
    probe = _trainer(sampling, accountant, noise=noise, **extra)
    unit = probe.sampler_event(200)
    make = lambda: accounting.make_accountant(accountant, **options)  # noqa: E731
    epoch_unit = sampling in ("shuffle", "balls_in_bins")
    wanted = 2 if epoch_unit else 13  # units that fit within the target
    low = make().compose(unit, wanted).get_epsilon(DELTA)
    high = make().compose(unit, wanted + 1).get_epsilon(DELTA)
    target = (low + high) / 2
    assert _units_within(make, unit, target) == wanted
    trainer = _trainer(sampling, accountant, noise=noise, target_epsilon=target, **extra)
    reports = trainer.fit(x, y, epochs=20)
    assert trainer.budget_exhausted
    steps = wanted * 10 if epoch_unit else wanted  # 10 steps per epoch
    assert trainer.total_steps == sum(r.steps for r in reports) == steps
    assert trainer.ledger.history == [accounting.CompositionRecord(unit, wanted)]
    assert trainer.epsilon == pytest.approx(low, rel=1e-12)
    assert trainer.epsilon <= target < high
