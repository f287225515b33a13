"""PrivateDataLoader's samplers and the events PrivateKerasModel.fit records for each of them.

Each sampler's epsilon is checked against the accountant composed by hand with the event the
sampler is (and against the Gaussian's RDP by hand for shuffled epochs); an accountant that
cannot compose the sampler's event is refused before the first step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

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

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter import (  # noqa: E402
    PrivateDataLoader,
    PrivateKerasModel,
    to_keras_model,
)

DELTA = 1e-5

@pytest.fixture(autouse=True)
def _quiet_pld():
    # a PLD bracket wider than its tolerance warns; its upper end is certified all the same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", accounting.ToleranceNotMetWarning)
        yield


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
    return x, y


def _model(noise=1.2, accountant="rdp", seed=0):
    model = PrivateKerasModel(to_keras_model(dk.tf_privacy_mlp(rng=1)), l2_norm_clip=1.0,
                              noise_multiplier=noise, seed=seed, accountant=accountant)
    model.compile(tf.keras.optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("sampling", ["poisson", "fixed", "truncated", "shuffle", "balls_in_bins"])
def test_loader_batches_and_events_per_sampler(sampling):
    x, y = _data()
    extra = {"max_batch_size": 14} if sampling == "truncated" else {}
    loader = PrivateDataLoader(x, y, 12, seed=3, sampling=sampling, **extra)
    assert loader.sampling == sampling and f"sampling={sampling!r}" in repr(loader)
    run = accounting.dpsgd_run(120, 12, 1.1, epochs=1, sampling=sampling, **extra)
    assert loader.event(1.1) == run.unit_event and loader.unit == run.unit
    assert loader.neighboring == run.neighboring
    assert loader.steps_per_epoch == 10  # ceil(120 / 12) = 120 // 12
    assert loader.expected_batch_size == pytest.approx(12.0)
    batches = list(loader.batches(10))
    sizes = [len(features) for features, _ in batches]
    assert len(batches) == 10
    if sampling in ("fixed", "shuffle"):
        assert set(sizes) == {12}
    if sampling == "truncated":
        assert max(sizes) <= 14
    if sampling in ("shuffle", "balls_in_bins"):  # one epoch: every example exactly once
        rows = np.concatenate([features for features, _ in batches])
        assert np.array_equal(np.sort(rows[:, 0]), np.sort(x[:, 0]))
    again = PrivateDataLoader(x, y, 12, seed=3, sampling=sampling, **extra)
    for (a, _), (b, _) in zip(batches, again.batches(10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_loader_errors_name_the_argument():
    x, y = _data(20)
    with pytest.raises(ValueError, match="sampling must be one of"):
        PrivateDataLoader(x, y, 5, sampling="uniform")
    with pytest.raises(ValueError, match="sampling='truncated' needs max_batch_size"):
        PrivateDataLoader(x, y, 5, sampling="truncated")
    with pytest.raises(ValueError, match="max_batch_size is the cap of sampling='truncated'"):
        PrivateDataLoader(x, y, 5, max_batch_size=6)


def test_fixed_batches_are_accounted_for_replace_one_neighbours(capsys):
    x, y = _data()
    model = _model()
    loader = PrivateDataLoader(x, y, 12, seed=0, sampling="fixed")
    history = model.fit(loader, epochs=2)
    assert "fixed sampling, replace-one neighbours" in capsys.readouterr().out
    assert model.accountant.neighboring == "replace_one"
    assert history.neighboring == "replace_one" and history.steps == 20
    event = SampledWithoutReplacement(120, 12, Gaussian(0.6))
    assert model.accountant.history == [accounting.CompositionRecord(event, 20)]
    for epochs, epsilon in zip((1, 2), history.history["epsilon"], strict=True):
        by_hand = accounting.make_accountant("rdp", neighboring="replace_one").compose(
            event, 10 * epochs)
        assert epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)


def test_shuffled_epochs_are_one_gaussian_release_each():
    x, y = _data()
    model = _model(noise=1.5)
    history = model.fit(PrivateDataLoader(x, y, 12, seed=0, sampling="shuffle"), epochs=2,
                        verbose=0)
    assert model.accountant.history == [
        accounting.CompositionRecord(ShuffledEpoch(10, Gaussian(1.5)), 2)]
    orders = accounting.DEFAULT_ORDERS
    for epochs, epsilon in zip((1, 2), history.history["epsilon"], strict=True):
        rdp = epochs * orders / (2 * 1.5**2)
        assert epsilon == pytest.approx(accounting.epsilon_from_rdp(rdp, orders, DELTA)[0],
                                        rel=1e-9)
    assert history.neighboring == "zero_out" and history.steps == 20


def test_truncated_poisson_with_pld_and_refused_by_rdp():
    x, y = _data()
    loader = PrivateDataLoader(x, y, 12, seed=0, sampling="truncated", max_batch_size=16)
    refused = _model()
    before = refused.model.get_weights()
    with pytest.raises(accounting.UnsupportedEventError,
                       match=r"sampling='truncated'.*'rdp' accountant.*accountants that can: "
                             r"\['pld'\]"):
        refused.fit(loader, epochs=1, verbose=0)
    assert refused.accountant.steps == 0 and refused.epsilon(DELTA) == 0.0
    for now, then in zip(refused.model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)
    model = _model(noise=2.0, accountant="pld")
    history = model.fit(loader, epochs=1, verbose=0)
    event = TruncatedPoissonGaussian(120, 0.1, 16, 2.0)
    assert model.accountant.history == [accounting.CompositionRecord(event, 10)]
    by_hand = accounting.make_accountant("pld").compose(event, 10)
    assert history.history["epsilon"][0] == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)


def test_balls_in_bins_is_refused_by_an_accountant_without_random_allocation():
    x, y = _data()
    model = _model(accountant="moments")  # rdp and pld compose random allocation
    with pytest.raises(accounting.UnsupportedEventError,
                       match=r"sampling='balls_in_bins'.*'moments' accountant.*cannot account for"):
        model.fit(PrivateDataLoader(x, y, 12, sampling="balls_in_bins"), epochs=1, verbose=0)
    assert model.accountant.steps == 0


def test_balls_in_bins_epochs_record_random_allocation():
    x, y = _data()
    model = _model()
    history = model.fit(PrivateDataLoader(x, y, 12, seed=0, sampling="balls_in_bins"),
                        epochs=2, verbose=0)
    event = RandomAllocation(10, Gaussian(1.2))
    assert model.accountant.history == [accounting.CompositionRecord(event, 2)]
    for epochs, epsilon in zip((1, 2), history.history["epsilon"], strict=True):
        by_hand = accounting.make_accountant("rdp").compose(event, epochs)
        assert epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)


def test_switching_to_fixed_batches_after_poisson_steps_needs_a_replace_one_accountant():
    """Poisson steps composed for add/remove cannot continue in that accountant with fixed
    batches; a fresh PLD accountant made for replace-one takes the replayed steps and the new
    ones (PLD composes Poisson steps for replace-one too)."""
    x, y = _data()
    model = _model(noise=1.5)
    model.fit(PrivateDataLoader(x, y, 12, seed=0), epochs=1, verbose=0)
    fixed = PrivateDataLoader(x, y, 12, seed=1, sampling="fixed")
    with pytest.raises(accounting.UnsupportedEventError,
                       match=r"sampling='fixed'.*\['rdp', 'pld'\] \(made with "
                             r"neighboring='replace_one'\)"):
        model.fit(fixed, epochs=1, verbose=0)
    assert model.accountant.steps == 10 and model.accountant.neighboring == "add_remove"
    with pytest.raises(accounting.UnsupportedEventError, match="RdpAccountant cannot compose"):
        model.fit(fixed, epochs=1, verbose=0, accountant="rdp")  # replay refused, no step
    assert model.accountant.steps == 10
    history = model.fit(fixed, epochs=1, verbose=0, accountant="pld")
    assert isinstance(model.accountant, accounting.PldAccountant)
    assert model.accountant.neighboring == "replace_one"
    by_hand = accounting.make_accountant("pld", neighboring="replace_one")
    by_hand.compose(PoissonSampled(0.1, Gaussian(1.5)), 10)
    by_hand.compose(SampledWithoutReplacement(120, 12, Gaussian(0.75)), 10)
    assert history.history["epsilon"][0] == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)


def test_one_fixed_step_of_the_whole_data_set_divides_by_b():
    """b = n: fit's update is SGD on (clipped sum + noise) / b, the kernel's fixed-batch step."""
    x, y = _data(40)
    reference = dk.tf_privacy_mlp(rng=3, dtype="float64")
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=3))
    model = PrivateKerasModel(keras_model, l2_norm_clip=0.5, noise_multiplier=1e-12, seed=0)
    model.compile(tf.keras.optimizers.SGD(1.0), "binary_crossentropy")
    model.fit(PrivateDataLoader(x, y, 40, seed=5, sampling="fixed"), epochs=1, verbose=0)
    expected = dk.dp_gradient(reference, x, y, "binary_crossentropy", l2_norm_clip=0.5,
                              noise_multiplier=0.0, rng=np.random.default_rng(0))
    dk.SGD(1.0).apply(reference.params, expected.gradients)
    for ours, theirs in zip(keras_model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
