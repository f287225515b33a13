"""A Sequential model holding Keras-layout NumPy parameters.

``Sequential.get_weights()`` returns the parameters in ``keras.Sequential.get_weights()`` order
(for every layer with weights: kernel, then bias) and with Keras shapes, so weights can be
exchanged with an equivalent Keras model via ``set_weights``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpsgd_kernels._validation import check_array, check_dtype, check_positive_int
from dpsgd_kernels.layers import Layer, LinearLayer

__all__ = ["Sequential", "as_generator"]


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """Accept a ``numpy.random.Generator`` or an integer seed ``>= 0``.

    Other kinds of value raise ``TypeError``; a negative seed raises ``ValueError``.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(
                f"{name} must be a numpy.random.Generator or an int seed >= 0, got {rng!r}"
            )
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator or an int seed >= 0, got {rng!r}")


class Sequential:
    """A stack of layers applied in order.

    Parameters
    ----------
    layers : sequence of Layer
        The layers, first to last.
    input_shape : tuple of int
        Shape of one example (without the batch axis), e.g. ``(2,)`` or ``(28, 28, 1)``.
    dtype : {"float32", "float64"}
        Parameter and computation dtype; inputs are cast to it.
    rng : numpy.random.Generator or int
        Source (or seed) for the Glorot-uniform initialisation.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: Sequence[int],
        dtype="float32",
        rng: np.random.Generator | int = 0,
    ):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("layers must be a non-empty sequence of Layer instances")
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("layers must not contain the same layer instance twice")
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (input_shape,)
        if not isinstance(input_shape, (tuple, list)):
            raise TypeError(
                f"input_shape must be an integer or a tuple of integers, got {input_shape!r}"
            )
        self.input_shape = tuple(check_positive_int(d, "input_shape") for d in input_shape)
        self.dtype = check_dtype(dtype)
        if not any(isinstance(layer, LinearLayer) for layer in layers):
            raise ValueError("layers must include at least one Dense or Conv2D layer")
        generator = as_generator(rng)
        shape = self.input_shape
        for layer in layers:
            shape = layer.build(shape, self.dtype, generator)
        self.layers = layers
        self.output_shape = shape
        # Layers compute only what the next one reads (e.g. a valid convolution whose windows
        # miss the last row and column of its input): Layer.limit_output, last layer first.
        used = None
        for layer in reversed(layers):
            used = layer.limit_output(used)

    @property
    def linear_layers(self) -> list[LinearLayer]:
        """Layers with parameters (Dense, Conv2D), in order."""
        return [layer for layer in self.layers if isinstance(layer, LinearLayer)]

    @property
    def params(self) -> list[np.ndarray]:
        """Live parameter arrays in Keras ``get_weights()`` order."""
        return [p for layer in self.layers for p in layer.params]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters in Keras ``get_weights()`` order."""
        return [p.copy() for p in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Overwrite the parameters (Keras order and shapes; cast to the model dtype)."""
        params = self.params
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"weights must hold {len(params)} arrays, got {len(weights)}")
        arrays = []
        for index, (param, value) in enumerate(zip(params, weights, strict=True)):
            array = check_array(value, f"weights[{index}]", dtype=self.dtype)
            if array.shape != param.shape:
                raise ValueError(
                    f"weights[{index}] must have shape {param.shape}, got {array.shape}"
                )
            arrays.append(array)
        for param, array in zip(params, arrays, strict=True):
            param[...] = array

    def count_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(p.size for p in self.params)

    def check_input(self, x, name: str = "x") -> np.ndarray:
        """``x`` as an array of the model dtype, after checking its shape and finiteness."""
        array = check_array(x, name, dtype=self.dtype)
        if array.shape[1:] != self.input_shape or array.ndim != len(self.input_shape) + 1:
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {array.shape}"
            )
        return array

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Forward pass on a validated batch; layers cache what the backward pass needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, d_output: np.ndarray) -> None:
        """Back-propagate ``d loss_i / d output_i`` for every example.

        Afterwards every :class:`LinearLayer` holds its per-example ``delta``; back-propagation
        stops at the first layer with parameters (no gradient with respect to the data).
        """
        first = next(i for i, layer in enumerate(self.layers) if isinstance(layer, LinearLayer))
        grad = d_output
        for position in range(len(self.layers) - 1, first - 1, -1):
            grad = self.layers[position].backward(grad, need_input_grad=position > first)

    def predict(self, x) -> np.ndarray:
        """Model output for ``x`` (validated and cast to the model dtype)."""
        return self.forward(self.check_input(x))

    __call__ = predict

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], input_shape={self.input_shape}, dtype={self.dtype.name})"
