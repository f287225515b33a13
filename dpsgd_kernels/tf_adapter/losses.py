"""Keras losses as per-example TensorFlow functions, and their NumPy-kernel equivalents.

DP-SGD clips every example's (microbatch's) gradient, so it needs the loss *per example*, as TF
Privacy's optimizers do (``reduction=NONE``). :func:`per_example_loss` turns any standard Keras
loss (a name, a ``keras.losses.Loss`` instance or a Keras loss function) into a function
``(y_true, y_pred) -> losses`` of shape ``(batch,)``, for Keras 2 (TF 2.15) and Keras 3 alike.
:func:`numpy_loss` gives the :mod:`dpsgd_kernels.losses` object computing the same values, for the
cross-check.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dpsgd_kernels import losses as np_losses
from dpsgd_kernels._validation import check_array
from dpsgd_kernels.tf_adapter._imports import keras_version, require_tensorflow

__all__ = ["check_targets", "is_sparse_loss", "loss_name", "numpy_loss", "per_example_loss"]

# Keras names (function or class, snake or Camel case) -> the NumPy kernel's loss class.
_KERNEL_LOSSES = {
    "binary_crossentropy": np_losses.BinaryCrossentropy,
    "categorical_crossentropy": np_losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": np_losses.SparseCategoricalCrossentropy,
    "mean_squared_error": np_losses.MeanSquaredError,
    "mse": np_losses.MeanSquaredError,
}
_CAMEL = {
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "MeanSquaredError": "mean_squared_error",
}


def _keras_loss_base():
    return require_tensorflow().keras.losses.Loss


def loss_name(loss) -> str:
    """Snake-case Keras name of ``loss`` (a name, a Loss instance or a loss function)."""
    if isinstance(loss, str):
        return _CAMEL.get(loss, loss)
    cls_name = type(loss).__name__
    if cls_name in _CAMEL:
        return _CAMEL[cls_name]
    fn = getattr(loss, "fn", None)  # LossFunctionWrapper (Keras 2 and 3)
    name = getattr(fn if callable(fn) else loss, "__name__", cls_name)
    return _CAMEL.get(name, name)


def is_sparse_loss(loss) -> bool:
    """Whether ``loss`` takes integer class labels (its targets keep their shape)."""
    return "sparse" in loss_name(loss)


def _config(loss) -> dict:
    get_config = getattr(loss, "get_config", None)
    return dict(get_config()) if callable(get_config) else {}


def _resolve(loss):
    """A Keras Loss instance or loss function for ``loss``; TypeError/ValueError if not a loss."""
    tf = require_tensorflow()
    if isinstance(loss, str):
        name = _CAMEL.get(loss, loss)
        try:
            resolved = tf.keras.losses.get(name)
        except (ValueError, TypeError) as error:
            raise ValueError(f"loss must name a Keras loss, got {loss!r}") from error
        return resolved
    if isinstance(loss, _keras_loss_base()) or callable(loss):
        return loss
    raise TypeError(
        f"loss must be a Keras loss name, a keras.losses.Loss or a loss function, got {loss!r}"
    )


def per_example_loss(loss) -> Callable:
    """``(y_true, y_pred) -> per-example losses (batch,)`` for a standard Keras loss.

    Parameters
    ----------
    loss : str, keras.losses.Loss or callable
        E.g. ``"binary_crossentropy"``, ``keras.losses.CategoricalCrossentropy(from_logits=True)``
        or ``keras.losses.mean_squared_error``. A Loss instance is rebuilt from its config with
        no reduction; a function is used as it is (Keras loss functions are per example).

    Notes
    -----
    Targets of one dimension less than the output (``(n,)`` labels for an ``(n, 1)`` output) are
    given a trailing axis for every loss but the sparse ones, as Keras' loss wrappers do.
    """
    tf = require_tensorflow()
    resolved = _resolve(loss)
    if isinstance(resolved, _keras_loss_base()):
        config = _config(resolved)
        keras3 = int(keras_version().split(".")[0]) >= 3
        config["reduction"] = None if keras3 else "none"
        function = type(resolved).from_config(config)
    else:
        function = resolved
    sparse = is_sparse_loss(loss)

    def losses(y_true, y_pred):
        if not sparse and y_true.shape.rank is not None and y_pred.shape.rank is not None:
            if y_true.shape.rank == y_pred.shape.rank - 1:
                y_true = tf.expand_dims(y_true, -1)
        if not sparse:
            y_true = tf.cast(y_true, y_pred.dtype)
        values = function(y_true, y_pred)
        rank = values.shape.rank
        if rank is not None and rank > 1:
            values = tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)
        return values

    return losses


def numpy_loss(loss) -> np_losses.Loss:
    """The :mod:`dpsgd_kernels.losses` loss equal to the Keras loss ``loss``.

    Raises
    ------
    ValueError
        For losses the NumPy kernel does not have (supported: binary, categorical and sparse
        categorical cross-entropy, mean squared error) or options it lacks (label smoothing,
        an axis other than -1).
    """
    if isinstance(loss, np_losses.Loss):
        return loss
    name = loss_name(loss)
    if name not in _KERNEL_LOSSES:
        raise ValueError(
            f"loss must be one of {sorted(_KERNEL_LOSSES)} (Keras names or classes) for the NumPy "
            f"kernel, got {loss!r}"
        )
    config = _config(loss) if not isinstance(loss, str) else {}
    if config.get("label_smoothing", 0):
        raise ValueError("loss: label_smoothing is not supported by the NumPy kernel")
    if config.get("axis", -1) != -1:
        raise ValueError(f"loss: axis must be -1, got {config['axis']!r}")
    cls = _KERNEL_LOSSES[name]
    if cls is np_losses.MeanSquaredError:
        return cls()
    return cls(from_logits=bool(config.get("from_logits", False)))


def check_targets(loss, y, output_shape, name: str = "y") -> np.ndarray:
    """Check targets ``y`` against a Keras loss and the model's output shape, in one pass.

    For the losses the NumPy kernel has (binary, categorical and sparse categorical
    cross-entropy, mean squared error) and outputs ``(batch, units)`` this applies
    :meth:`dpsgd_kernels.losses.Loss.check_targets`: Keras accepts binary labels 0/5 or -1/+1
    (the loss goes negative), and an out-of-range sparse label raises only when a batch first
    holds it (on a GPU it gives NaN). Other losses get the finiteness check only.

    Parameters
    ----------
    loss : str, keras.losses.Loss or callable
        The loss, as given to ``compile``.
    y : array_like
        Targets, one per example.
    output_shape : tuple or None
        ``(batch, units)`` of the outputs they are compared with (``None``: unknown).
    name : str
        Name of the argument in error messages.

    Returns
    -------
    numpy.ndarray
        ``y`` as an array (not cast).
    """
    targets = check_array(y, name)
    cls = _KERNEL_LOSSES.get(loss_name(loss))
    if cls is None or output_shape is None or len(output_shape) != 2:
        return targets
    cls().check_targets(targets, tuple(output_shape), name=name)
    return targets
