"""What TF Privacy computes, for the cross-check: its DP-SGD gradient and its epsilons.

TF Privacy 0.9.0 imports only on TensorFlow <= 2.15 (Keras 2); see the README for the pinned
combination. Every function here raises ImportError when ``tensorflow_privacy`` cannot be used.
"""

from __future__ import annotations

import math
import re

import numpy as np

from dpsgd_kernels.tf_adapter._imports import require_tensorflow, tf_privacy_or_none
from dpsgd_kernels.tf_adapter.losses import per_example_loss

__all__ = [
    "require_tf_privacy",
    "tf_privacy_dp_gradient",
    "tf_privacy_epsilons",
    "tf_privacy_gradient_function",
]


def require_tf_privacy():
    """The ``tensorflow_privacy`` module, or ImportError saying which versions it needs."""
    module = tf_privacy_or_none()
    if module is None:
        raise ImportError(
            "tensorflow-privacy is not importable here (0.9.0 needs TensorFlow <= 2.15 with "
            "Keras 2): pip install 'dpsgd-accounting[tensorflow-privacy]'"
        )
    return module


def tf_privacy_gradient_function(keras_model, loss, *, l2_norm_clip: float,
                                 noise_multiplier: float, num_microbatches: int | None = None,
                                 seed: int | None = None):
    """``(x, y) -> gradients`` that ``DPKerasSGDOptimizer`` would apply (model unchanged).

    Runs the optimizer's own gradient path (``_compute_gradients``, what ``minimize`` and
    Keras' ``fit`` call) on the per-example loss vector, as ``model.fit`` does with a
    ``reduction=NONE`` loss, compiled once with ``tf.function``; every call draws fresh noise.
    ``seed`` seeds TensorFlow's global generator, which TF Privacy's noise comes from.
    """
    tf = require_tensorflow()
    tfp = require_tf_privacy()
    if seed is not None:
        tf.random.set_seed(seed)
    optimizer = tfp.DPKerasSGDOptimizer(
        l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
        num_microbatches=num_microbatches, learning_rate=1.0,
    )
    loss_fn = per_example_loss(loss)
    variables = keras_model.trainable_variables

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            losses = loss_fn(y, keras_model(x, training=True))
        return [g for g, _ in optimizer._compute_gradients(losses, variables, tape=tape)]

    def call(x, y) -> list[np.ndarray]:
        x = tf.convert_to_tensor(np.asarray(x, np.float32))
        return [np.asarray(g) for g in gradients(x, tf.convert_to_tensor(np.asarray(y)))]

    return call


def tf_privacy_dp_gradient(keras_model, x, y, loss, *, l2_norm_clip: float,
                           noise_multiplier: float, num_microbatches: int | None = None,
                           seed: int | None = None) -> list[np.ndarray]:
    """One batch's gradient by :func:`tf_privacy_gradient_function`."""
    return tf_privacy_gradient_function(
        keras_model, loss, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
        num_microbatches=num_microbatches, seed=seed,
    )(x, y)


def _statement_poisson_epsilon(text: str) -> float:
    match = re.search(r"Epsilon assuming Poisson sampling \(\*\):\s+([0-9.]+|inf)", text)
    if match is None:
        raise ValueError("could not find the Poisson epsilon in TF Privacy's statement")
    return float(match.group(1))


def tf_privacy_epsilons(sample_size: int, batch_size: int, epochs: float,
                        noise_multiplier: float, delta: float,
                        used_microbatching: bool = False) -> dict[str, dict]:
    """Epsilon by TF Privacy's three entry points, with the orders each one uses.

    Returns a dict name -> ``{"epsilon", "orders", "steps", "noise_multiplier"}``:
    ``"statement"`` (``compute_dp_sgd_privacy_statement``, Poisson line, printed to 3 decimals),
    ``"example_privacy"`` (the function behind the statement, full precision) and
    ``"compute_dp_sgd_privacy"`` (the deprecated call with its own orders and step count).
    ``noise_multiplier`` is what the accountant saw (halved when ``used_microbatching``).
    """
    require_tf_privacy()
    import dp_accounting
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as lib

    q = batch_size / sample_size
    sigma = noise_multiplier / 2 if used_microbatching else noise_multiplier
    default_orders = np.asarray(dp_accounting.rdp.RdpAccountant()._orders, dtype=float)
    statement = lib.compute_dp_sgd_privacy_statement(
        sample_size, batch_size, epochs, noise_multiplier, delta,
        used_microbatching=used_microbatching,
    )
    example = lib._compute_dp_sgd_example_privacy(
        epochs, noise_multiplier, delta, used_microbatching,
        poisson_subsampling_probability=q,
    )
    legacy_orders = np.array([1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5]
                             + list(range(5, 64)) + [128, 256, 512], dtype=float)
    legacy, _ = lib.compute_dp_sgd_privacy(sample_size, batch_size, noise_multiplier, epochs,
                                           delta)
    poisson_steps = int(math.ceil(epochs / q))
    return {
        "statement": {"epsilon": _statement_poisson_epsilon(statement), "orders": default_orders,
                      "steps": poisson_steps, "noise_multiplier": sigma, "decimals": 3},
        "example_privacy": {"epsilon": float(example), "orders": default_orders,
                            "steps": poisson_steps, "noise_multiplier": sigma},
        "compute_dp_sgd_privacy": {"epsilon": float(legacy), "orders": legacy_orders,
                                   "steps": int(math.ceil(epochs * sample_size / batch_size)),
                                   "noise_multiplier": noise_multiplier},
    }
