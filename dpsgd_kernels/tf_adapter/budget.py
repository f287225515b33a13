"""The budget-estimate call of hosted DP-SGD notebooks, answered by :mod:`accounting`."""

from __future__ import annotations

import accounting

__all__ = ["get_privacy_budget"]


def get_privacy_budget(
    sample_size: int,
    batch_size: int,
    num_epochs: float,
    noise_multiplier: float,
    target_delta: float,
) -> float:
    """Epsilon of DP-SGD with Poisson sampling at rate ``batch_size / sample_size``.

    Exactly :func:`accounting.get_privacy_budget` (RDP accountant, improved conversion,
    ``steps = ceil(num_epochs sample_size / batch_size)``); needs no TensorFlow. Invalid
    arguments raise ValueError/TypeError naming the argument and its range.

    Examples
    --------
    >>> from dpsgd_kernels.tf_adapter import get_privacy_budget
    >>> round(get_privacy_budget(60000, 256, 60, 1.1, 1e-5), 4)
    2.5967
    """
    return accounting.get_privacy_budget(
        sample_size, batch_size, num_epochs, noise_multiplier, target_delta
    )
