"""Samplers, optimizers, the privacy ledger, the budget guard and the trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import accounting
import dpsgd_kernels as dk
from accounting.events import Gaussian, ShuffledEpoch


def test_poisson_sampler_rate_and_batch_size_distribution():
    n, q, steps = 1000, 0.05, 400
    sampler = dk.PoissonSampler(n, q, steps, rng=np.random.default_rng(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == steps
    sizes = np.array([b.size for b in batches])
    # Batch sizes are Binomial(n, q): mean n q, variance n q (1 - q).
    z = (sizes.sum() - steps * n * q) / math.sqrt(steps * n * q * (1 - q))
    assert abs(z) < 4
    assert sizes.var(ddof=1) == pytest.approx(n * q * (1 - q), rel=0.2)
    assert len(np.unique(sizes)) > 10  # sizes vary
    # Every example is included independently with probability q: counts ~ Binomial(steps, q).
    counts = np.bincount(np.concatenate(batches), minlength=n)
    expected = steps * q
    chi2 = ((counts - expected) ** 2 / (expected * (1 - q))).sum()
    assert stats.chi2.sf(chi2, df=n) > 0.001
    assert all(np.all(np.diff(b) > 0) for b in batches)  # sorted, no repeats


def test_poisson_sampler_yields_empty_batches():
    batches = list(dk.PoissonSampler(10, 0.05, 200, rng=1))
    empty = sum(b.size == 0 for b in batches)
    assert 0.45 < empty / 200 < 0.75  # P(empty) = 0.95^10 = 0.599
    assert dk.PoissonSampler(10, 0.05, 1).expected_batch_size == pytest.approx(0.5)


def test_shuffled_sampler_covers_each_example_once_per_epoch():
    sampler = dk.ShuffledBatchSampler(10, 3, steps=7, rng=np.random.default_rng(2))
    batches = list(sampler)
    assert len(batches) == 7 and all(b.size == 3 for b in batches)
    for epoch in range(2):  # 3 full batches per epoch, the remainder dropped
        seen = np.concatenate(batches[3 * epoch : 3 * epoch + 3])
        assert np.unique(seen).size == 9
    assert sampler.sample_rate == pytest.approx(0.3)
    tail = list(dk.ShuffledBatchSampler(10, 3, steps=4, rng=0, drop_remainder=False))
    assert [b.size for b in tail] == [3, 3, 3, 1]


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"sample_rate must lie in \(0, 1\]"):
        dk.PoissonSampler(10, 0.0, 5)
    with pytest.raises(ValueError, match="sample_size must be a whole number >= 1"):
        dk.PoissonSampler(0, 0.5, 5)
    with pytest.raises(ValueError, match=r"batch_size must lie in \[1, sample_size=10\]"):
        dk.ShuffledBatchSampler(10, 11, 5)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or an int"):
        dk.PoissonSampler(10, 0.5, 5, rng="seed")


def test_sgd_momentum_and_adam_updates_hand_computed():
    w = np.array([1.0, -2.0])
    g1, g2 = np.array([0.5, -1.0]), np.array([1.0, 1.0])
    dk.SGD(0.1).apply([w], [g1])
    np.testing.assert_allclose(w, [0.95, -1.9])

    w = np.array([1.0, -2.0])
    opt = dk.SGD(0.1, momentum=0.9)
    opt.apply([w], [g1])  # v = -0.1 g1
    opt.apply([w], [g2])  # v = 0.9 v - 0.1 g2
    np.testing.assert_allclose(w, [1 - 0.05 - 0.045 - 0.1, -2 + 0.1 + 0.09 - 0.1])

    w = np.array([1.0, -2.0])
    opt = dk.Adam(0.01, epsilon=1e-7)
    opt.apply([w], [g1])
    # t = 1: m = 0.1 g, v = 0.001 g^2, step = lr sqrt(0.001) / 0.1.
    step = 0.01 * math.sqrt(0.001) / 0.1
    expected = np.array([1.0, -2.0]) - step * 0.1 * g1 / (np.sqrt(0.001 * g1**2) + 1e-7)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert np.allclose(w, [0.99, -1.99], atol=1e-5)  # Adam's first step is ~lr * sign(g)

    with pytest.raises(ValueError, match=r"grads\[0\] must have shape \(2,\)"):
        opt.apply([w], [np.zeros(3)])
    with pytest.raises(ValueError, match=r"grads\[0\] must be finite"):
        opt.apply([w], [np.array([np.nan, 0.0])])
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        dk.SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        dk.Adam(0.0)


def test_ledger_epsilon_equals_accounting():
    ledger = dk.PrivacyLedger(delta=1e-5)
    assert ledger.epsilon == 0.0
    for _ in range(150):
        ledger.record(256 / 60000, 1.1)
    assert ledger.steps == 150
    expected = accounting.compute_epsilon(256 / 60000, 1.1, 150, 1e-5)
    assert ledger.epsilon == pytest.approx(expected, rel=1e-12)
    ledger.record(0.01, 2.0, steps=10)  # a change of (q, sigma) composes too
    expected = (accounting.RdpAccountant().compose(256 / 60000, 1.1, 150)
                .compose(0.01, 2.0, 10).get_epsilon(1e-5))
    assert ledger.epsilon == pytest.approx(expected, rel=1e-12)
    assert [(r.sample_rate, r.noise_multiplier, r.steps) for r in ledger.history] == [
        (256 / 60000, 1.1, 150), (0.01, 2.0, 10)]


def test_ledger_refuses_steps_past_the_budget():
    ledger = dk.PrivacyLedger(delta=1e-5, target_epsilon=1.0)
    q, sigma = 0.1, 2.0
    allowed = 0
    while accounting.compute_epsilon(q, sigma, allowed + 1, 1e-5) <= 1.0:
        allowed += 1
    assert 5 < allowed < 50
    for _ in range(allowed):
        ledger.record(q, sigma)
    assert not ledger.can_afford(q, sigma)
    with pytest.raises(dk.BudgetExceededError, match="would exceed target_epsilon=1.0"):
        ledger.record(q, sigma)
    assert ledger.steps == allowed and ledger.epsilon <= 1.0
    with pytest.raises(ValueError, match=r"delta must lie in the open interval \(0, 1\)"):
        dk.PrivacyLedger(delta=1.0)


def _toy_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)
    return x, y


def test_trainer_ledger_matches_accounting_for_the_steps_taken():
    x, y = _toy_data()
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    trainer = dk.DPSGDTrainer(model, "binary_crossentropy", dk.SGD(0.5), batch_size=20,
                              l2_norm_clip=1.0, noise_multiplier=1.2, delta=1e-5, rng=3)
    reports = trainer.fit(x, y, epochs=3)
    assert [r.steps for r in reports] == [10, 10, 10]
    assert trainer.ledger.steps == trainer.total_steps == 30
    for report in reports:
        expected = accounting.compute_epsilon(0.1, 1.2, report.total_steps, 1e-5)
        assert report.epsilon == pytest.approx(expected, rel=1e-12)
    loss, acc = trainer.evaluate(x, y)
    assert acc > 0.8  # a separable problem is learned despite the noise


def test_trainer_stops_before_the_step_that_would_exceed_the_budget():
    x, y = _toy_data()
    target = 2.0
    allowed = 0
    while accounting.compute_epsilon(0.1, 1.5, allowed + 1, 1e-5) <= target:
        allowed += 1
    assert 10 < allowed < 100
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    trainer = dk.DPSGDTrainer(model, "binary_crossentropy", dk.Adam(0.01), batch_size=20,
                              l2_norm_clip=1.0, noise_multiplier=1.5, delta=1e-5,
                              target_epsilon=target, rng=4)
    reports = trainer.fit(x, y, epochs=50)
    assert trainer.budget_exhausted
    assert trainer.total_steps == trainer.ledger.steps == allowed
    assert sum(r.steps for r in reports) == allowed
    assert trainer.epsilon <= target < accounting.compute_epsilon(0.1, 1.5, allowed + 1, 1e-5)
    assert len(reports) == math.ceil(allowed / 10) < 50


def test_trainer_shuffle_sampling_with_microbatches_and_non_private_baseline():
    x, y = _toy_data()
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    trainer = dk.DPSGDTrainer(model, "binary_crossentropy", dk.SGD(0.5, momentum=0.5),
                              batch_size=20, l2_norm_clip=1.0, noise_multiplier=1.0,
                              sampling="shuffle", num_microbatches=5, rng=5)
    reports = trainer.fit(x, y, epochs=2)
    assert trainer.total_steps == 20
    # A shuffled epoch uses each example once: one Gaussian release per epoch, no amplification
    # by sampling (TF Privacy's "once per epoch" line), never the Poisson figure.
    # Microbatches of 4 examples: one example moves its clipped microbatch gradient by up to
    # 2 C, so the ledger accounts sigma / 2 (TF Privacy's statement: 16.3838 instead of 2.59666
    # on its tutorial setting with Poisson sampling, peer-figures.md).
    assert trainer.ledger.history == [
        accounting.CompositionRecord(ShuffledEpoch(10, Gaussian(0.5)), 2)]
    assert [r.neighboring for r in reports] == ["zero_out", "zero_out"]
    orders = accounting.DEFAULT_ORDERS
    for epochs, report in zip((1, 2), reports, strict=True):
        gaussian_rdp = epochs * orders / (2 * 0.5**2)  # RDP of the Gaussian, alpha / (2 sigma^2)
        expected = accounting.epsilon_from_rdp(gaussian_rdp, orders, trainer.ledger.delta)[0]
        assert report.epsilon == pytest.approx(expected, rel=1e-9)
    tutorial = accounting.compute_epsilon(256 / 60000, 1.1 / 2, 14063, 1e-5)
    assert tutorial == pytest.approx(16.3838, abs=5e-5)
    one_per_microbatch = dk.DPSGDTrainer(
        dk.tf_privacy_mlp(dtype="float64", rng=0), "binary_crossentropy", dk.SGD(0.5),
        batch_size=20, noise_multiplier=1.0, sampling="shuffle", num_microbatches=20, rng=5,
    )
    assert one_per_microbatch.accounted_noise_multiplier == 1.0
    plain = dk.DPSGDTrainer(dk.tf_privacy_mlp(dtype="float64", rng=0), "binary_crossentropy",
                            dk.SGD(0.5), batch_size=20, private=False, rng=5)
    reports = plain.fit(x, y, epochs=5)
    assert plain.ledger is None and math.isinf(reports[-1].epsilon)
    assert reports[-1].loss < reports[0].loss
    assert plain.evaluate(x, y)[1] > 0.9


def test_trainer_argument_errors():
    model = dk.tf_privacy_mlp()
    with pytest.raises(ValueError, match="num_microbatches needs sampling='shuffle'"):
        dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8, num_microbatches=2)
    with pytest.raises(ValueError, match="num_microbatches must divide batch_size=8, got 3"):
        dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8, sampling="shuffle",
                        num_microbatches=3)
    with pytest.raises(ValueError, match="noise_multiplier must be a finite number > 0"):
        dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8, noise_multiplier=0.0)
    with pytest.raises(ValueError, match="sampling must be one of"):
        dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8, sampling="uniform")
    with pytest.raises(ValueError, match="num_microbatches needs sampling='shuffle' or 'fixed'"):
        dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8, sampling="balls_in_bins",
                        num_microbatches=2)
    trainer = dk.DPSGDTrainer(model, "mse", dk.SGD(), batch_size=8)
    with pytest.raises(ValueError, match=r"batch_size must lie in \[1, 4\]"):
        trainer.fit(np.zeros((4, 2)), np.zeros(4))


def test_trainer_takes_empty_poisson_batches_and_accounts_for_them():
    x, y = _toy_data(n=50)
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    before = model.get_weights()
    sizes = []

    class Recording(dk.DPSGDTrainer):
        def step(self, x_batch, y_batch, sample_rate, expected_batch_size=None):
            sizes.append(len(x_batch))
            assert expected_batch_size == pytest.approx(1.0)  # q N
            return super().step(x_batch, y_batch, sample_rate, expected_batch_size)

    trainer = Recording(model, "binary_crossentropy", dk.SGD(0.1), batch_size=1,
                        l2_norm_clip=1.0, noise_multiplier=2.0, rng=6)
    report = trainer.fit(x, y, epochs=1)[0]
    assert 0 in sizes and len(sizes) == 50  # P(empty) = 0.98^50 = 0.36 per step
    assert report.steps == trainer.ledger.steps == 50
    assert report.epsilon == pytest.approx(accounting.compute_epsilon(0.02, 2.0, 50, 1e-5))
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_shuffled_training_stops_before_the_epoch_that_would_exceed_the_budget():
    x, y = _toy_data()
    delta = 1e-5

    def gaussian_epsilon(epochs):  # closed form: epochs Gaussian releases at sigma = 2
        return accounting.gaussian_epsilon(delta, 2.0, epochs)

    target = (gaussian_epsilon(2) + gaussian_epsilon(3)) / 2  # two epochs fit, three do not
    trainer = dk.DPSGDTrainer(dk.tf_privacy_mlp(dtype="float64", rng=0), "binary_crossentropy",
                              dk.SGD(0.5), batch_size=20, noise_multiplier=2.0, delta=delta,
                              target_epsilon=target, sampling="shuffle", rng=3)
    reports = trainer.fit(x, y, epochs=5)
    assert [report.steps for report in reports] == [10, 10]
    assert trainer.budget_exhausted
    assert trainer.ledger.history == [
        accounting.CompositionRecord(ShuffledEpoch(10, Gaussian(2.0)), 2)]
    assert gaussian_epsilon(2) <= trainer.epsilon <= target
