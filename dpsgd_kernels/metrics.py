"""Accuracy for the losses of :mod:`dpsgd_kernels.losses` (Keras' ``"accuracy"`` rules)."""

from __future__ import annotations

import numpy as np

from dpsgd_kernels.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    SparseCategoricalCrossentropy,
    get_loss,
)

__all__ = ["accuracy"]


def accuracy(loss: Loss | str, y_true, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions, read the way Keras reads ``metrics=["accuracy"]``.

    Sparse labels: ``argmax(y_pred) == label``; one-hot: ``argmax`` of both agree; binary:
    prediction above 0.5 (above 0 for logits) equals the target. Undefined for regression.
    """
    loss = get_loss(loss)
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if isinstance(loss, SparseCategoricalCrossentropy):
        correct = np.argmax(y_pred, axis=-1) == y_true.reshape(-1)
    elif isinstance(loss, CategoricalCrossentropy):
        correct = np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)
    elif isinstance(loss, BinaryCrossentropy):
        threshold = 0.0 if loss.from_logits else 0.5
        correct = (y_pred > threshold) == (y_true.reshape(y_pred.shape) > 0.5)
    else:
        raise ValueError(f"accuracy is defined for classification losses, not {loss!r}")
    return float(np.mean(correct))
