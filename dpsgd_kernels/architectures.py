"""The two models TF Privacy users train, built as :class:`~dpsgd_kernels.model.Sequential`.

- :func:`tf_privacy_mlp`: ``Dense(16, relu) -> Dense(8, relu) -> Dense(1, sigmoid)`` on 2
  features (binary classification with binary cross-entropy).
- :func:`mnist_cnn`: the TF Privacy MNIST tutorial CNN (``tutorials/mnist_dpsgd_tutorial_keras``):
  ``Conv2D(16, 8, strides 2, same, relu)`` on 28x28x1 -> ``MaxPool2D(2, 1)`` ->
  ``Conv2D(32, 4, strides 2, valid, relu)`` -> ``MaxPool2D(2, 1)`` -> ``Flatten`` ->
  ``Dense(32, relu)`` -> ``Dense(10)`` (logits; use categorical cross-entropy from logits).
"""

from __future__ import annotations

import numpy as np

from dpsgd_kernels.layers import Conv2D, Dense, Flatten, MaxPool2D
from dpsgd_kernels.model import Sequential

__all__ = ["mnist_cnn", "tf_privacy_mlp"]


def tf_privacy_mlp(
    input_features: int = 2, dtype="float32", rng: np.random.Generator | int = 0
) -> Sequential:
    """``Dense(16, relu) -> Dense(8, relu) -> Dense(1, sigmoid)`` on ``input_features`` inputs."""
    layers = [Dense(16, "relu"), Dense(8, "relu"), Dense(1, "sigmoid")]
    return Sequential(layers, input_shape=(input_features,), dtype=dtype, rng=rng)


def mnist_cnn(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    classes: int = 10,
    dtype="float32",
    rng: np.random.Generator | int = 0,
) -> Sequential:
    """The TF Privacy MNIST tutorial CNN (logits output)."""
    layers = [
        Conv2D(16, 8, strides=2, padding="same", activation="relu"),
        MaxPool2D(2, 1),
        Conv2D(32, 4, strides=2, padding="valid", activation="relu"),
        MaxPool2D(2, 1),
        Flatten(),
        Dense(32, "relu"),
        Dense(classes),
    ]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, rng=rng)
