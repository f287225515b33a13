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
    ``y_true`` is checked as the loss checks it (:meth:`~dpsgd_kernels.losses.Loss.check_targets`).
    """
    loss = get_loss(loss)
    if not isinstance(loss, (CategoricalCrossentropy, BinaryCrossentropy)):
        raise ValueError(f"accuracy is defined for classification losses, not {loss!r}")
    y_pred = Loss._check_pred(y_pred)
    y_true = loss.check_targets(y_true, y_pred.shape)
    if isinstance(loss, SparseCategoricalCrossentropy):
        correct = np.argmax(y_pred, axis=-1) == y_true
    elif isinstance(loss, CategoricalCrossentropy):
        correct = np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)
    else:
        threshold = 0.0 if loss.from_logits else 0.5
        correct = (y_pred > threshold) == (y_true > 0.5)
    return float(np.mean(correct))
