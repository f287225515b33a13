"""Per-example losses and their gradients with respect to the model output.

DP-SGD needs the loss *per example* (TF Privacy requires ``reduction=NONE`` for the same reason):
:meth:`Loss.per_example` returns one value per example and :meth:`Loss.gradient` returns
``d loss_i / d y_pred_i`` for every example ``i``, unscaled, so that any averaging (over the batch,
or within a microbatch) is done by the caller.

Formulas follow Keras 3 (``keras.losses``) with ``epsilon = 1e-7``:

- categorical cross-entropy from probabilities normalises ``y_pred`` to sum to one and clips it to
  ``[eps, 1 - eps]``; from logits it is ``-sum(y * log_softmax(z))``;
- sparse categorical cross-entropy is the same with integer labels;
- binary cross-entropy clips probabilities to ``[eps, 1 - eps]``; from logits it is
  ``max(z, 0) - z y + log(1 + exp(-|z|))``; it is averaged over the last axis;
- mean squared error is averaged over the last axis.

Where a probability is clipped the gradient is zero, as it is for TensorFlow's ``clip_by_value``.

Targets are checked where Keras does not check them (:meth:`Loss.check_targets`): cross-entropy
targets must lie in ``[0, 1]`` (outside it the loss is unbounded below and training silently
drives it negative), categorical rows must sum to 1, and sparse labels must be whole numbers in
``[0, classes - 1]``.
"""

from __future__ import annotations

import numpy as np

from dpsgd_kernels._validation import check_array
from dpsgd_kernels.activations import sigmoid, softmax

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get_loss",
]

EPSILON = 1e-7


ROW_SUM_TOLERANCE = 1e-3
"""How far a categorical target row may sum from 1 (float32 soft labels round)."""


def _check_unit_interval(y_true: np.ndarray, name: str, loss: str) -> None:
    """Cross-entropy targets outside ``[0, 1]`` make the loss unbounded below: reject them."""
    if y_true.size and (np.minimum.reduce(y_true, axis=None) < 0
                        or np.maximum.reduce(y_true, axis=None) > 1):
        first = int(np.flatnonzero(((y_true < 0) | (y_true > 1)).reshape(len(y_true), -1)
                                   .any(axis=1))[0])
        raise ValueError(
            f"{name} labels must lie in [0, 1] for {loss}, got values from {y_true.min():g} "
            f"to {y_true.max():g} (first at example {first})"
        )


def _clipped(p: np.ndarray) -> np.ndarray:
    """``np.clip(p, EPSILON, 1 - EPSILON)`` in two ufunc calls (``np.clip`` adds Python-level
    wrappers), in ``p``'s dtype."""
    clipped = np.maximum(p, EPSILON)
    return np.minimum(clipped, 1 - EPSILON, out=clipped)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Loss:
    """Base class: a loss with per-example values and per-example output gradients."""

    name = "loss"

    def check_targets(self, y_true, output_shape, dtype=None, name: str = "y_true") -> np.ndarray:
        """Validate targets for outputs of shape ``output_shape`` ``(batch, units)``.

        Checks in one vectorised pass the shape, finiteness and the values this loss accepts
        (e.g. labels in ``[0, 1]`` for binary cross-entropy), so a whole data set can be
        checked before training as well as one batch.

        Parameters
        ----------
        y_true : array_like
            Targets, one per example.
        output_shape : tuple of int
            Shape of the model outputs they are compared with, ``(batch, units)``.
        dtype : numpy.dtype, optional
            Cast the targets to it (float losses).
        name : str
            Name of the argument in error messages.

        Returns
        -------
        numpy.ndarray
            The targets in the form this loss reads (``(batch, units)`` for all but the sparse
            loss, whose integer labels have shape ``(batch,)``).
        """
        output_shape = self._check_output_shape(output_shape)
        y_true = check_array(y_true, name, dtype=dtype)
        if y_true.ndim == 1 and output_shape[1] == 1:
            y_true = y_true[:, None]
        if y_true.shape != output_shape:
            raise ValueError(
                f"{name} must have the shape of the model output {output_shape}, "
                f"got {y_true.shape}"
            )
        self._check_values(y_true, name)
        return y_true

    @staticmethod
    def _check_output_shape(output_shape) -> tuple[int, ...]:
        output_shape = tuple(output_shape)
        if len(output_shape) != 2:
            raise ValueError(f"y_pred must have shape (batch, units), got {output_shape}")
        return output_shape

    def _check_values(self, y_true: np.ndarray, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` for targets outside the loss' domain."""

    def _targets(self, y_true, y_pred: np.ndarray) -> np.ndarray:
        """Validate ``y_true`` against ``y_pred`` and return it in the form the loss uses."""
        return self.check_targets(y_true, y_pred.shape, y_pred.dtype)

    @staticmethod
    def _check_pred(y_pred) -> np.ndarray:
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "biuf":  # not finiteness: a diverged model's own error
            raise TypeError(f"y_pred must be an array of real numbers, got dtype {y_pred.dtype}")
        if y_pred.ndim != 2:
            raise ValueError(f"y_pred must have shape (batch, units), got {y_pred.shape}")
        return y_pred

    def per_example(self, y_true, y_pred) -> np.ndarray:
        """Loss of every example, shape ``(batch,)``."""
        y_pred = self._check_pred(y_pred)
        return self._value(self._targets(y_true, y_pred), y_pred)

    def gradient(self, y_true, y_pred) -> np.ndarray:
        """``d loss_i / d y_pred_i`` for every example ``i`` (not divided by the batch size)."""
        y_pred = self._check_pred(y_pred)
        return self._grad(self._targets(y_true, y_pred), y_pred)

    def __call__(self, y_true, y_pred) -> float:
        """Mean loss over the batch (Keras' default ``sum_over_batch_size`` reduction)."""
        return float(np.mean(self.per_example(y_true, y_pred)))

    def _value(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _grad(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _FromLogits(Loss):
    def __init__(self, from_logits: bool = False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
        self.from_logits = bool(from_logits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class CategoricalCrossentropy(_FromLogits):
    """Cross-entropy against one-hot (or soft) targets ``y_true`` of the output's shape.

    Targets must lie in ``[0, 1]`` and every row must sum to 1 (within
    :data:`ROW_SUM_TOLERANCE`); others raise ``ValueError``.

    Parameters
    ----------
    from_logits : bool
        ``True`` if the model outputs logits, ``False`` (Keras' default) for probabilities.
    """

    name = "categorical_crossentropy"

    def _check_values(self, y_true, name):
        _check_unit_interval(y_true, name, self.name)
        sums = y_true.sum(axis=-1)
        bad = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must hold one-hot (or probability) rows summing to 1 for {self.name}; "
                f"row {first} sums to {sums[first]:.6g}"
            )

    def _value(self, y_true, y_pred):
        if self.from_logits:
            return -np.sum(y_true * _log_softmax(y_pred), axis=-1)
        normalised = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -np.sum(y_true * np.log(np.clip(normalised, EPSILON, 1 - EPSILON)), axis=-1)

    def _grad(self, y_true, y_pred):
        if self.from_logits:
            return softmax(y_pred) * y_true.sum(axis=-1, keepdims=True) - y_true
        total = y_pred.sum(axis=-1, keepdims=True)
        normalised = y_pred / total
        inside = (normalised > EPSILON) & (normalised < 1 - EPSILON)
        d_normalised = np.where(inside, -y_true / normalised, 0.0).astype(y_pred.dtype)
        # Chain rule through u = p / sum(p): du_k/dp_j = delta_kj / S - p_k / S^2.
        return (d_normalised - np.sum(d_normalised * normalised, axis=-1, keepdims=True)) / total


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer class labels of shape ``(batch,)`` or ``(batch, 1)``."""

    name = "sparse_categorical_crossentropy"

    def check_targets(self, y_true, output_shape, dtype=None, name: str = "y_true") -> np.ndarray:
        """Validate integer class labels for outputs of shape ``(batch, classes)``.

        Labels of shape ``(batch,)`` or ``(batch, 1)`` must be whole numbers in
        ``[0, classes - 1]``; returns them as ``int64`` of shape ``(batch,)`` (``dtype`` is
        ignored). See :meth:`Loss.check_targets`.
        """
        output_shape = self._check_output_shape(output_shape)
        labels = check_array(y_true, name)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != output_shape[:1]:
            raise ValueError(
                f"{name} must hold one integer label per example, shape ({output_shape[0]},), "
                f"got {labels.shape}"
            )
        if labels.dtype.kind == "f":
            fractional = labels != np.round(labels)
            if fractional.any():
                first = int(np.flatnonzero(fractional)[0])
                raise ValueError(
                    f"{name} must hold integer class labels; example {first} has "
                    f"{labels[first].item()!r}"
                )
        classes = output_shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            first = int(np.flatnonzero((labels < 0) | (labels >= classes))[0])
            raise ValueError(
                f"{name} labels must lie in [0, {classes - 1}] (the model has {classes} "
                f"outputs); example {first} has label {labels[first].item()!r}"
            )
        return labels.astype(np.int64, copy=False)

    def _targets(self, y_true, y_pred):
        labels = self.check_targets(y_true, y_pred.shape)
        one_hot = np.zeros(y_pred.shape, dtype=y_pred.dtype)
        one_hot[np.arange(labels.size), labels] = 1
        return one_hot


class BinaryCrossentropy(_FromLogits):
    """Binary cross-entropy, averaged over the last axis.

    Targets must lie in ``[0, 1]`` (hard 0/1 labels or probabilities); others raise
    ``ValueError``.
    """

    name = "binary_crossentropy"

    def _check_values(self, y_true, name):
        _check_unit_interval(y_true, name, self.name)

    def _value(self, y_true, y_pred):
        if self.from_logits:
            z = y_pred
            values = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        else:
            p = _clipped(y_pred)
            values = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
        if values.shape[-1] == 1:  # one unit: the mean over it is the value itself
            return values.reshape(values.shape[:-1])
        return values.mean(axis=-1)

    def _grad(self, y_true, y_pred):
        units = y_pred.shape[-1]
        if self.from_logits:
            return (sigmoid(y_pred) - y_true) / units
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        p = _clipped(y_pred)
        grad = (-y_true / p + (1 - y_true) / (1 - p)) / units
        return np.where(inside, grad, 0.0).astype(y_pred.dtype)


class MeanSquaredError(Loss):
    """Squared error averaged over the last axis."""

    name = "mean_squared_error"

    def _value(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)

    def _grad(self, y_true, y_pred):
        return 2 * (y_pred - y_true) / y_pred.shape[-1]


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}


def get_loss(loss: Loss | str) -> Loss:
    """Return ``loss`` if it is a :class:`Loss`, else build one from its Keras name."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _BY_NAME:
        return _BY_NAME[loss]()
    raise ValueError(f"loss must be a Loss instance or one of {sorted(_BY_NAME)}, got {loss!r}")
