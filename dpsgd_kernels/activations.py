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

from dpsgd_kernels import _tuning

__all__ = ["ACTIVATIONS", "Activation", "get_activation", "relu_in_place", "sigmoid", "softmax"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``, in the dtype of ``z``.

    With ``e = exp(-|z|)`` (never overflows): ``1 / (1 + e)`` for ``z >= 0`` and
    ``e / (1 + e)`` below; whole-array operations, no masked indexing."""
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)
    r = e + 1
    np.reciprocal(r, out=r)
    return np.where(z >= 0, r, e * r)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum for stability."""
    shifted = z - z.max(axis=-1, keepdims=True)
    exp_z = np.exp(shifted)
    return exp_z / exp_z.sum(axis=-1, keepdims=True)


_zero_blocks: dict[np.dtype, np.ndarray] = {}


def relu_in_place(z: np.ndarray) -> np.ndarray:
    """``max(z, 0)`` written into ``z`` (returned).

    NumPy's ``maximum`` against a scalar (a stride-0 operand) misses its vectorised loop, so a
    contiguous ``z`` is taken in flat blocks of :data:`~dpsgd_kernels._tuning.ZERO_BLOCK`
    elements against one cached, read-only block of zeros. Arrays below
    :data:`~dpsgd_kernels._tuning.SCALAR_RELU_MAX` elements (where the blocks' overhead costs
    more than they save) and views use the scalar.
    """
    block_size = _tuning.ZERO_BLOCK
    if z.size < _tuning.SCALAR_RELU_MAX or not z.flags.c_contiguous:
        return np.maximum(z, 0, out=z)
    zeros = _zero_blocks.get(z.dtype)
    if zeros is None:
        zeros = _zero_blocks[z.dtype] = np.zeros(block_size, dtype=z.dtype)
        zeros.flags.writeable = False
    flat = z.reshape(-1)
    for start in range(0, flat.size, block_size):
        block = flat[start : start + block_size]
        np.maximum(block, zeros[: block.size], out=block)
    return z


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
    "relu": Activation("relu", lambda z: np.maximum(z, 0), _relu_backward, relu_in_place),
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
