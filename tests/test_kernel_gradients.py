"""Per-example gradients of every layer and loss against finite differences and a naive loop."""

from __future__ import annotations

import numpy as np
import pytest

import dpsgd_kernels as dk

LOSSES = {
    "cce_probs": (dk.CategoricalCrossentropy(), "softmax"),
    "cce_logits": (dk.CategoricalCrossentropy(from_logits=True), "linear"),
    "sparse_probs": (dk.SparseCategoricalCrossentropy(), "softmax"),
    "sparse_logits": (dk.SparseCategoricalCrossentropy(from_logits=True), "linear"),
    "bce_probs": (dk.BinaryCrossentropy(), "sigmoid"),
    "bce_logits": (dk.BinaryCrossentropy(from_logits=True), "linear"),
    "mse": (dk.MeanSquaredError(), "tanh"),
}


def _targets(loss, rng, n, units):
    if isinstance(loss, dk.SparseCategoricalCrossentropy):
        return rng.integers(0, units, size=n)
    if isinstance(loss, dk.CategoricalCrossentropy):
        return np.eye(units)[rng.integers(0, units, size=n)]
    if isinstance(loss, dk.BinaryCrossentropy):
        return rng.integers(0, 2, size=(n, units)).astype(float)
    return rng.normal(size=(n, units))


def finite_difference_per_example(model, x, y, loss, entries, h=1e-6):
    """``d loss_i / d theta_e`` for every example ``i`` and chosen entry ``e``, by central
    differences of the per-example loss vector (one perturbed forward pass per entry)."""
    out = []
    for param_index, flat_index in entries:
        param = model.params[param_index].reshape(-1)
        saved = param[flat_index]
        param[flat_index] = saved + h
        up = loss.per_example(y, model.predict(x))
        param[flat_index] = saved - h
        down = loss.per_example(y, model.predict(x))
        param[flat_index] = saved
        out.append((up - down) / (2 * h))
    return np.stack(out, axis=1)  # (n, entries)


def _entries(model, rng, per_param):
    entries = []
    for index, param in enumerate(model.params):
        count = min(per_param, param.size)
        entries += [(index, int(e)) for e in rng.choice(param.size, count, replace=False)]
    return entries


def _check_against_fd(model, x, y, loss, rng, per_param=12, rtol=1e-6, atol=1e-8):
    grads = dk.per_example_gradients(model, x, y, loss)
    assert [g.shape for g in grads] == [(len(x),) + p.shape for p in model.params]
    entries = _entries(model, rng, per_param)
    numeric = finite_difference_per_example(model, x, y, loss, entries)
    analytic = np.stack([grads[i].reshape(len(x), -1)[:, e] for i, e in entries], axis=1)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
    assert np.abs(analytic).max() > 1e-3  # the comparison is not between zeros


def _check_against_naive(model, x, y, loss):
    fast = dk.per_example_gradients(model, x, y, loss)
    slow = dk.naive_per_example_gradients(model, x, y, loss)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_dense_per_example_gradients_every_loss(name):
    loss, activation = LOSSES[name]
    rng = np.random.default_rng(sorted(LOSSES).index(name))
    units = 1 if isinstance(loss, dk.BinaryCrossentropy) and name == "bce_probs" else 3
    model = dk.Sequential(
        [dk.Dense(5, "tanh"), dk.Dense(4, "relu"), dk.Dense(units, activation)],
        input_shape=(3,), dtype="float64", rng=rng,
    )
    x = rng.normal(size=(6, 3))
    y = _targets(loss, rng, 6, units)
    _check_against_fd(model, x, y, loss, rng, per_param=20)
    _check_against_naive(model, x, y, loss)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_every_activation_in_a_hidden_layer(activation):
    rng = np.random.default_rng(7)
    model = dk.Sequential([dk.Dense(4, activation), dk.Dense(2)], input_shape=(3,),
                          dtype="float64", rng=rng)
    x = rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2))
    _check_against_fd(model, x, y, dk.MeanSquaredError(), rng, per_param=12)


def test_dense_on_sequence_input_and_without_bias():
    rng = np.random.default_rng(3)
    model = dk.Sequential(
        [dk.Dense(4, "tanh", use_bias=False), dk.Flatten(), dk.Dense(2)],
        input_shape=(3, 5), dtype="float64", rng=rng,
    )
    assert [p.shape for p in model.params] == [(5, 4), (12, 2), (2,)]
    x = rng.normal(size=(4, 3, 5))
    y = rng.normal(size=(4, 2))
    _check_against_fd(model, x, y, dk.MeanSquaredError(), rng, per_param=15)
    _check_against_naive(model, x, y, dk.MeanSquaredError())


@pytest.mark.parametrize(
    "conv, pool",
    [
        (dict(kernel_size=3, strides=2, padding="same"), dict(pool_size=2, strides=1)),
        (dict(kernel_size=(2, 3), strides=1, padding="valid"), dict(pool_size=2)),
        (dict(kernel_size=3, strides=(1, 2), padding="same"),
         dict(pool_size=(2, 3), strides=2, padding="same")),
        # kernel of whole strides (space-to-depth path), odd 'same' padding
        (dict(kernel_size=(4, 2), strides=2, padding="same"), dict(pool_size=2, strides=1)),
    ],
)
def test_conv_pool_per_example_gradients(conv, pool):
    rng = np.random.default_rng(11)
    model = dk.Sequential(
        [dk.Conv2D(3, activation="relu", **conv), dk.MaxPool2D(**pool),
         dk.Conv2D(2, 2, activation="tanh"), dk.Flatten(), dk.Dense(3)],
        input_shape=(7, 8, 2), dtype="float64", rng=rng,
    )
    x = rng.normal(size=(4, 7, 8, 2))
    y = rng.integers(0, 3, size=4)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    _check_against_fd(model, x, y, loss, rng, per_param=10)
    _check_against_naive(model, x, y, loss)


def test_mnist_cnn_per_example_gradients():
    rng = np.random.default_rng(5)
    model = dk.mnist_cnn(dtype="float64", rng=rng)
    x = rng.random(size=(3, 28, 28, 1))
    y = rng.integers(0, 10, size=3)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    _check_against_fd(model, x, y, loss, rng, per_param=4, rtol=1e-5, atol=1e-7)
    _check_against_naive(model, x, y, loss)


def test_mlp_per_example_gradients():
    rng = np.random.default_rng(6)
    model = dk.tf_privacy_mlp(dtype="float64", rng=rng)
    x = rng.normal(size=(8, 2))
    y = (x[:, 0] > x[:, 1]).astype(float)
    _check_against_fd(model, x, y, dk.BinaryCrossentropy(), rng, per_param=8)
    _check_against_naive(model, x, y, dk.BinaryCrossentropy())


def test_batch_gradient_is_mean_of_per_example_gradients():
    rng = np.random.default_rng(8)
    model = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float64", rng=rng)
    x = rng.random(size=(5, 16, 16, 1))
    y = rng.integers(0, 10, size=5)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    grads, value = dk.batch_gradient(model, x, y, loss)
    per_example = dk.per_example_gradients(model, x, y, loss)
    for g, p in zip(grads, per_example, strict=True):
        np.testing.assert_allclose(g, p.mean(axis=0), rtol=1e-10, atol=1e-13)
    assert value == pytest.approx(float(np.mean(loss.per_example(y, model.predict(x)))))


def test_microbatch_gradients_are_means_of_consecutive_examples():
    rng = np.random.default_rng(9)
    model = dk.tf_privacy_mlp(dtype="float64", rng=rng)
    x = rng.normal(size=(6, 2))
    y = rng.integers(0, 2, size=6).astype(float)
    per_example = dk.per_example_gradients(model, x, y, "binary_crossentropy")
    micro = dk.microbatch_gradients(model, x, y, "binary_crossentropy", num_microbatches=3)
    for g, p in zip(micro, per_example, strict=True):
        np.testing.assert_allclose(g, p.reshape((3, 2) + p.shape[1:]).mean(axis=1), rtol=1e-12)


def test_float32_gradients_match_float64():
    rng = np.random.default_rng(10)
    model64 = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float64", rng=1)
    model32 = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float32", rng=1)
    model32.set_weights(model64.get_weights())
    x = rng.random(size=(4, 16, 16, 1))
    y = rng.integers(0, 10, size=4)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    g64 = dk.per_example_gradients(model64, x, y, loss)
    g32 = dk.per_example_gradients(model32, x, y, loss)
    for a, b in zip(g64, g32, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-5)
