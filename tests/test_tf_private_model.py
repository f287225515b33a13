"""PrivateKerasModel: trains privately, reports the accountant's epsilon, predicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import accounting
import dpsgd_kernels as dk

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter import (  # noqa: E402
    PrivateDataLoader,
    PrivateKerasModel,
    get_privacy_budget,
    to_keras_model,
)


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_trains_and_reports_the_accountants_epsilon(optimizer, capsys):
    x, y = _data()
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=1))
    model = PrivateKerasModel(keras_model, l2_norm_clip=1.0, noise_multiplier=0.8, seed=0)
    opt = tf.keras.optimizers.SGD(0.5) if optimizer == "sgd" else tf.keras.optimizers.Adam(0.02)
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    loader = PrivateDataLoader(x, y, batch_size=32, seed=0)
    history = model.fit(x=loader, epochs=2, target_delta=1e-5)
    assert "Epoch 2" in capsys.readouterr().out
    # ceil(2 * 300 / 32) = 19 steps over the two epochs (10 + 9).
    assert history.steps == 19 == model.accountant.steps
    for epochs in (1, 2):
        expected = accounting.get_privacy_budget(300, 32, epochs, 0.8, 1e-5)
        assert history.history["epsilon"][epochs - 1] == pytest.approx(expected, rel=1e-12)
    more = model.fit(x=loader, epochs=3, target_delta=1e-5, verbose=0)
    assert more.epoch == [2, 3, 4]
    assert more.history["epsilon"][-1] == pytest.approx(get_privacy_budget(300, 32, 5, 0.8, 1e-5),
                                                        rel=1e-12)
    assert model.epsilon(1e-5) == more.history["epsilon"][-1]
    accuracy = float(np.mean((model.predict(x)[:, 0] > 0.5) == y))
    assert accuracy > 0.8  # a linearly separable problem, learned despite the noise
    assert more.history["accuracy"][-1] > 0.7
    np.testing.assert_allclose(model.predict(x), keras_model(x).numpy(), rtol=1e-6)
    evaluated = model.evaluate(x, y)
    assert evaluated["accuracy"] == pytest.approx(accuracy)
    assert evaluated["loss"] == pytest.approx(
        float(tf.keras.losses.BinaryCrossentropy()(y[:, None], keras_model(x))), rel=1e-5)


def test_fit_with_arrays_and_pandas():
    pd = pytest.importorskip("pandas")
    x, y = _data(100)
    frame, labels = pd.DataFrame(x, columns=["a", "b"]), pd.Series(y)
    model = PrivateKerasModel(to_keras_model(dk.tf_privacy_mlp(rng=2)), 1.0, 1.1, seed=1)
    model.compile("sgd", tf.keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
    history = model.fit(frame, labels, batch_size=10, epochs=1, verbose=0)
    assert history.steps == 10
    assert history.history["epsilon"][0] == pytest.approx(
        accounting.get_privacy_budget(100, 10, 1, 1.1, 1e-5), rel=1e-12)
    assert model.predict(frame).shape == (100, 1)


def test_fit_with_the_pld_accountant_reports_the_certified_upper_bound():
    x, y = _data(60)
    model = PrivateKerasModel(to_keras_model(dk.tf_privacy_mlp(rng=3)), 1.0, 1.1, seed=2)
    model.compile("sgd", "binary_crossentropy")
    loader = PrivateDataLoader(x, y, batch_size=20, seed=0)
    history = model.fit(loader, epochs=2, verbose=0, accountant="pld")
    assert isinstance(model.accountant, accounting.PldAccountant)
    for epochs, epsilon in zip((1, 2), history.history["epsilon"], strict=True):
        by_hand = accounting.PldAccountant().compose(20 / 60, 1.1, 3 * epochs)
        assert epsilon == by_hand.get_epsilon_bounds(1e-5).upper
    more = model.fit(loader, epochs=1, verbose=0)  # keeps the model's accountant
    upper = accounting.PldAccountant().compose(20 / 60, 1.1, 9).get_epsilon_bounds(1e-5).upper
    assert more.history["epsilon"] == [upper] and model.epsilon(1e-5) == upper
    # switching accountant replays every step taken: RDP's epsilon over all 12 steps
    rdp = model.fit(loader, epochs=1, verbose=0, accountant="rdp")
    assert isinstance(model.accountant, accounting.RdpAccountant) and model.accountant.steps == 12
    assert rdp.history["epsilon"][0] == pytest.approx(
        get_privacy_budget(60, 20, 4, 1.1, 1e-5), rel=1e-12)


def test_one_private_step_is_the_poisson_dp_step():
    """fit's update = SGD on (clipped sum + noise) / expected batch size (the kernel's)."""
    x, y = _data(40)
    reference = dk.tf_privacy_mlp(rng=3, dtype="float64")
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=3))
    model = PrivateKerasModel(keras_model, l2_norm_clip=0.5, noise_multiplier=1e-12, seed=0)
    model.compile(tf.keras.optimizers.SGD(1.0), "binary_crossentropy")
    loader = PrivateDataLoader(x, y, batch_size=40, seed=5)  # q = 1: every example, one step
    model.fit(loader, epochs=1, verbose=0)
    expected = dk.dp_gradient(reference, x, y, "binary_crossentropy", l2_norm_clip=0.5,
                              noise_multiplier=0.0, rng=np.random.default_rng(0),
                              expected_batch_size=40.0)
    dk.SGD(1.0).apply(reference.params, expected.gradients)
    for ours, theirs in zip(keras_model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_cnn_trains_on_a_gpu_or_cpu_device():
    from dpsgd_kernels.tf_adapter import default_device

    rng = np.random.default_rng(0)
    x = rng.random((24, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 24)
    model = PrivateKerasModel(to_keras_model(dk.mnist_cnn(rng=0)), 1.0, 1.1, seed=0)
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    assert model._step.device == default_device()
    history = model.fit(PrivateDataLoader(x, y, 8, seed=0), epochs=1, verbose=0)
    assert history.steps == 3 and math.isfinite(history.history["loss"][0])


def test_errors_name_the_argument():
    keras_model = to_keras_model(dk.tf_privacy_mlp())
    with pytest.raises(ValueError, match="l2_norm_clip must be a finite number > 0"):
        PrivateKerasModel(keras_model, 0.0, 1.0)
    with pytest.raises(ValueError, match="noise_multiplier must be a finite number > 0"):
        PrivateKerasModel(keras_model, 1.0, 0.0)
    model = PrivateKerasModel(keras_model, 1.0, 1.0)
    x, y = _data(20)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(PrivateDataLoader(x, y, 5))
    with pytest.raises(ValueError, match="loss must be given"):
        model.compile("sgd")
    model.compile("sgd", "binary_crossentropy")
    with pytest.raises(TypeError, match="x must be a PrivateDataLoader"):
        model.fit(x)
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1"):
        model.fit(PrivateDataLoader(x, y, 5), epochs=0)
    with pytest.raises(ValueError, match="target_delta"):
        model.fit(PrivateDataLoader(x, y, 5), target_delta=2.0)
    with pytest.raises(TypeError, match="metrics must hold"):
        model.compile("sgd", "binary_crossentropy", metrics=[3])


def _three_classes():
    numpy_model = dk.Sequential([dk.Dense(3, activation="softmax")], input_shape=(2,), rng=0)
    return to_keras_model(numpy_model)


def _assert_no_step(model, keras_model, before):
    assert model.accountant.steps == 0 and model.epsilon(1e-5) == 0.0
    for now, then in zip(keras_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)


def test_fit_checks_every_label_before_the_first_step():
    """A sparse label 3 for a 3-class model at the last of 2000 examples: found before any step
    (it used to surface when first sampled, after dozens of steps and privacy spent)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)).astype(np.float32)
    y = rng.integers(0, 3, size=2000)
    y[-1] = 3
    keras_model = _three_classes()
    before = keras_model.get_weights()
    model = PrivateKerasModel(keras_model, 1.0, 1.1, seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"label_df labels must lie in \[0, 2\].*example 1999"):
        model.fit(PrivateDataLoader(x, y, 30, seed=0), epochs=2, verbose=0)
    with pytest.raises(ValueError, match="label_df must have the shape of the model output"):
        model.compile("sgd", "categorical_crossentropy")
        model.fit(x, np.eye(4)[y], batch_size=30, verbose=0)  # one-hot of width 4, model has 3
    with pytest.raises(ValueError, match=r"feature_df must have shape \(N, 2\)"):
        model.fit(x[:, :1], np.eye(3)[y % 3], batch_size=30, verbose=0)
    _assert_no_step(model, keras_model, before)


@pytest.mark.parametrize("scale, shift", [(5.0, 0.0), (2.0, -1.0)])  # labels 0/5 and -1/+1
def test_binary_labels_outside_the_unit_interval_are_rejected(scale, shift):
    x, y = _data(200)
    labels = scale * y + shift
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=1))
    before = keras_model.get_weights()
    model = PrivateKerasModel(keras_model, 1.0, 1.1, seed=0)
    model.compile("sgd", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"label_df labels must lie in \[0, 1\]"):
        model.fit(x, labels, batch_size=20, verbose=0)
    _assert_no_step(model, keras_model, before)
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, 1\]"):
        model._step.dp_gradient(x[:8], labels[:8])
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, 1\]"):
        model.evaluate(x, labels)


def test_huge_or_complex_arguments_name_the_argument():
    keras_model = to_keras_model(dk.tf_privacy_mlp())
    with pytest.raises(ValueError, match=r"l2_norm_clip must be a finite number > 0 and "
                                         r"<= 1e\+12, got 1e\+300"):
        PrivateKerasModel(keras_model, 1e300, 1.0)
    with pytest.raises(ValueError, match=r"noise_multiplier must be .* <= 1e\+06"):
        PrivateKerasModel(keras_model, 1.0, 1e300)
    model = PrivateKerasModel(keras_model, 1.0, 1.0)
    model.compile("sgd", "binary_crossentropy")
    x, y = _data(20)
    with pytest.raises(TypeError, match="feature_df must hold real numbers"):
        model.fit(x.astype(complex), y, batch_size=5, verbose=0)
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        model.predict(x.astype(complex))
    assert model.accountant.steps == 0
