"""Optimizers applied to a (privatized) gradient, with Keras' update rules.

Post-processing a differentially private gradient costs no privacy, so any update rule may follow
the DP step; these reproduce ``keras.optimizers.SGD`` (with momentum / Nesterov) and
``keras.optimizers.Adam`` so runs can be compared with TF Privacy's ``DPKerasSGDOptimizer`` and
``DPKerasAdamOptimizer``. Parameters are updated in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpsgd_kernels._validation import check_finite_positive, check_nonnegative

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """Base class: ``apply(params, grads)`` updates ``params`` in place."""

    def __init__(self, learning_rate: float):
        self.learning_rate = check_finite_positive(learning_rate, "learning_rate")
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] | None = None

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """One update of every parameter with its gradient."""
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"grads must hold {len(params)} arrays, got {len(grads)}")
        for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
            shape = grad.shape if isinstance(grad, np.ndarray) else np.shape(grad)
            if shape != param.shape:
                raise ValueError(f"grads[{index}] must have shape {param.shape}, got {shape}")
            if not np.logical_and.reduce(np.isfinite(grad), axis=None):
                raise ValueError(f"grads[{index}] must be finite (found NaN or inf)")
        if self._slots is None:
            self._slots = [self._new_slots(p) for p in params]
        self.iterations += 1
        for param, grad, slots in zip(params, grads, self._slots, strict=True):
            self._update(param, np.asarray(grad, dtype=param.dtype), slots)

    def _new_slots(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _update(self, param, grad, slots) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``keras.optimizers.SGD``: ``v = momentum v - lr g; w += v`` (Nesterov: ``w += momentum v -
    lr g``); plain SGD ``w -= lr g`` when ``momentum == 0``.

    Parameters
    ----------
    learning_rate : float
        Step size ``> 0``.
    momentum : float
        In ``[0, 1)``.
    nesterov : bool
        Nesterov momentum.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = check_nonnegative(momentum, "momentum")
        if self.momentum >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.nesterov = bool(nesterov)

    def _new_slots(self, param):
        return {"velocity": np.zeros_like(param)} if self.momentum else {}

    def _update(self, param, grad, slots):
        if not self.momentum:
            param -= self.learning_rate * grad
            return
        velocity = slots["velocity"]
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        if self.nesterov:
            param += self.momentum * velocity - self.learning_rate * grad
        else:
            param += velocity


class Adam(Optimizer):
    """``keras.optimizers.Adam`` (Kingma and Ba 2015, with Keras' epsilon placement).

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ):
        super().__init__(learning_rate)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= check_nonnegative(value, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = check_finite_positive(epsilon, "epsilon")

    def _new_slots(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _update(self, param, grad, slots):
        t = self.iterations
        m, v = slots["m"], slots["v"]
        m += (1 - self.beta_1) * (grad - m)
        v += (1 - self.beta_2) * (grad * grad - v)
        step = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        param -= (step * m / (np.sqrt(v) + self.epsilon)).astype(param.dtype, copy=False)
