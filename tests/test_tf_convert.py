"""Weight exchange Keras <-> NumPy reference model: same forward outputs, errors named."""

from __future__ import annotations

import numpy as np
import pytest

import dpsgd_kernels as dk

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter import to_keras_model, to_numpy_model  # noqa: E402

keras = tf.keras


def _keras_cnn():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 8, strides=2, padding="same", activation="relu"),
        keras.layers.MaxPool2D(2, 1),
        keras.layers.Conv2D(32, 4, strides=2, padding="valid", activation="relu"),
        keras.layers.MaxPool2D(2, 1),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ])


def _keras_mlp():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])


@pytest.mark.parametrize("build, shape", [(_keras_mlp, (64, 2)), (_keras_cnn, (6, 28, 28, 1))])
def test_keras_to_numpy_same_outputs_and_weights(build, shape):
    model = build()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    reference = to_numpy_model(model, dtype="float64")
    for ours, theirs in zip(reference.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    expected = model(x).numpy()
    np.testing.assert_allclose(reference.predict(x), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    single = to_numpy_model(model)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single.predict(x), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("build, shape",
                         [(dk.tf_privacy_mlp, (32, 2)), (dk.mnist_cnn, (4, 28, 28, 1))])
def test_numpy_to_keras_round_trip(build, shape):
    reference = build(rng=5)
    model = to_keras_model(reference)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    expected = reference.predict(x)
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    back = to_numpy_model(model)
    assert repr(back) == repr(reference)
    for a, b in zip(back.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_activation_layer_folds_into_the_linear_layer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.Activation("tanh"), keras.layers.Dense(2),
                              keras.layers.Activation("softmax")])
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    reference = to_numpy_model(model, "float64")
    assert [layer.activation.name for layer in reference.layers] == ["tanh", "softmax"]
    np.testing.assert_allclose(reference.predict(x), model(x).numpy(), rtol=1e-5)


@pytest.mark.parametrize("layers, match", [
    ([keras.layers.Dense(2), keras.layers.Dropout(0.5)], "unsupported layer type.*Dense"),
    ([keras.layers.Dense(2, activation="elu")], "activation must be one of"),
    ([keras.layers.Dense(2, kernel_regularizer="l2")], "kernel_regularizer"),
    ([keras.layers.Dense(2, activation="relu"), keras.layers.Activation("tanh")],
     "Activation layer is supported only"),
])
def test_unsupported_models_are_refused_with_the_layer_named(layers, match):
    model = keras.Sequential([keras.Input((3,)), *layers])
    with pytest.raises(ValueError, match=match):
        to_numpy_model(model)


def test_bad_arguments():
    with pytest.raises(TypeError, match="keras_model must be a keras.Sequential"):
        to_numpy_model(np.zeros(3))
    with pytest.raises(TypeError, match="numpy_model must be a dpsgd_kernels.Sequential"):
        to_keras_model(_keras_mlp())
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        to_numpy_model(_keras_mlp(), dtype="int8")
