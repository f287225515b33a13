"""Element-wise activations (and softmax over the last axis), forward and backward.

Names and formulas follow Keras (``tf.keras.activations``): ``relu``, ``sigmoid``, ``tanh``,
``softmax`` (last axis) and ``linear``. The backward functions map the gradient with respect to
the activation output ``dy`` to the gradient with respect to its input, example by example; none
of them mixes examples, which is what lets per-example gradients flow through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ACTIVATIONS", "Activation", "get_activation", "sigmoid", "softmax"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum for stability."""
    shifted = z - z.max(axis=-1, keepdims=True)
    exp_z = np.exp(shifted)
    return exp_z / exp_z.sum(axis=-1, keepdims=True)


def _relu_backward(z, y, dy):
    return dy * (z > 0)


def _sigmoid_backward(z, y, dy):
    return dy * y * (1 - y)


def _tanh_backward(z, y, dy):
    return dy * (1 - y * y)


def _softmax_backward(z, y, dy):
    # Jacobian-vector product of softmax: y * (dy - <dy, y>) along the last axis.
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _linear_backward(z, y, dy):
    return dy


@dataclass(frozen=True)
class Activation:
    """An activation: ``forward(z) -> y`` and ``backward(z, y, dy) -> dz``.

    ``forward_in_place`` (optional) computes ``y`` overwriting ``z``; it is given only where
    ``backward(y, y, dy) == backward(z, y, dy)`` (ReLU: ``y > 0`` exactly where ``z > 0``;
    linear), so a layer may keep ``y`` alone and save an array per forward pass.
    """

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    forward_in_place: Callable[[np.ndarray], np.ndarray] | None = None


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("relu", lambda z: np.maximum(z, 0), _relu_backward,
                       lambda z: np.maximum(z, 0, out=z)),
    "sigmoid": Activation("sigmoid", sigmoid, _sigmoid_backward),
    "tanh": Activation("tanh", np.tanh, _tanh_backward),
    "softmax": Activation("softmax", softmax, _softmax_backward),
    "linear": Activation("linear", lambda z: z, _linear_backward, lambda z: z),
}


def get_activation(name: str | None) -> Activation:
    """Look up an activation by Keras name; ``None`` means ``"linear"``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`ACTIVATIONS`.
    """
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, got {type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
