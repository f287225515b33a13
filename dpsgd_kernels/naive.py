"""Naive references: one Python-level backward pass per microbatch.

These loop over microbatches (examples, by default) and exist only to check the vectorised
kernel and to measure its speed-up (``benchmarks/kernel_speed.py``). They draw the noise exactly
as :func:`dpsgd_kernels.dp_step.dp_gradient` does, so with generators in the same state the two
return the same privatized gradient up to rounding.
"""

from __future__ import annotations

import numpy as np

from dpsgd_kernels.dp_step import (
    DPGradient,
    _batch_gradient,
    _group_size,
    _validated,
    check_dp_arguments,
    clip_factors,
    noisy_average,
)
from dpsgd_kernels.losses import Loss
from dpsgd_kernels.model import Sequential

__all__ = ["naive_dp_gradient", "naive_per_example_gradients"]


def naive_per_example_gradients(model: Sequential, x, y, loss: Loss | str) -> list[np.ndarray]:
    """Per-example gradients by one :func:`~dpsgd_kernels.dp_step.batch_gradient` call per
    example (on the layer-by-layer path, never the Dense-stack step)."""
    model, x, y, loss = _validated(model, x, y, loss)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one example")
    rows = [_batch_gradient(model, x[i : i + 1], y[i : i + 1], loss, "auto", "auto", dense=False)[0]
            for i in range(len(x))]
    return [np.stack(column) for column in zip(*rows, strict=True)]


def naive_dp_gradient(
    model: Sequential,
    x,
    y,
    loss: Loss | str,
    *,
    l2_norm_clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
    num_microbatches: int | None = None,
    expected_batch_size: float | None = None,
) -> DPGradient:
    """:func:`~dpsgd_kernels.dp_step.dp_gradient` with a Python loop over microbatches."""
    l2_norm_clip, noise_multiplier, expected_batch_size = check_dp_arguments(
        l2_norm_clip, noise_multiplier, rng, expected_batch_size, num_microbatches
    )
    model, x, y, loss = _validated(model, x, y, loss)
    if x.shape[0] == 0 and expected_batch_size is None:
        raise ValueError("x must hold at least one example (empty batches need the Poisson "
                         "variant, expected_batch_size)")
    count, size = _group_size(len(x), num_microbatches)
    sums = [np.zeros_like(p) for p in model.params]
    norms, losses = [], []
    for b in range(count):
        grads, value = _batch_gradient(model, x[b * size : (b + 1) * size],
                                       y[b * size : (b + 1) * size], loss, "auto", "auto",
                                       dense=False)
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
        factor = clip_factors(np.asarray(norm), l2_norm_clip)
        for total, grad in zip(sums, grads, strict=True):
            total += grad * factor.astype(grad.dtype)
        norms.append(norm)
        losses.append(value)
    denominator = float(count) if expected_batch_size is None else expected_batch_size
    gradients = noisy_average(sums, noise_multiplier * l2_norm_clip, denominator, rng)
    loss_value = float(np.mean(losses)) if losses else float("nan")
    return DPGradient(gradients, loss_value, np.asarray(norms), count, denominator)
