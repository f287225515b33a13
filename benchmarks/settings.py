"""The four standard DP-SGD settings A-D that the benchmarks, the tests and the docs refer to.

Each setting is a Poisson-subsampled Gaussian run ``(q, noise_multiplier, steps, delta)``. A, B
and C come from a training run (records ``n``, batch size, epochs) by TF Privacy's conventions,
``q = batch / n`` and ``steps = ceil(epochs * n / batch)``
(:func:`accounting.dpsgd_sample_rate_and_steps`); D is given by ``q`` and ``steps`` directly.

- **A**: the TF Privacy MNIST tutorial (n 60000, batch 256, sigma 1.1, 60 epochs, delta 1e-5).
- **B**: a shorter run at larger noise (n 60000, batch 250, sigma 1.3, 15 epochs, delta 1e-5).
- **C**: tiny batches over many steps (n 100000, batch 4, sigma 1.2, 20 epochs, delta 1e-5).
- **D**: small noise, many steps, small delta (q 1e-3, sigma 0.8, 100000 steps, delta 1e-6).

Scripts in ``benchmarks/`` import it as ``from settings import SETTINGS``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["RUNS", "SETTINGS", "SETTINGS_TEXT", "Setting"]


class Setting(NamedTuple):
    """One Poisson-subsampled Gaussian run; unpacks as ``q, sigma, steps, delta``."""

    q: float
    noise_multiplier: float
    steps: int
    delta: float


#: The training runs behind A-C: ``(sample_size, batch_size, epochs)``.
RUNS = {
    "A": (60000, 256, 60),
    "B": (60000, 250, 15),
    "C": (100000, 4, 20),
}

SETTINGS = {
    "A": Setting(256 / 60000, 1.1, 14063, 1e-5),
    "B": Setting(250 / 60000, 1.3, 3600, 1e-5),
    "C": Setting(4 / 100000, 1.2, 500000, 1e-5),
    "D": Setting(1e-3, 0.8, 100000, 1e-6),
}

#: One line per setting for tables and reports.
SETTINGS_TEXT = {
    "A": "n 60000, batch 256, σ 1.1, 60 epochs (14063 steps), δ 1e-5",
    "B": "n 60000, batch 250, σ 1.3, 15 epochs (3600 steps), δ 1e-5",
    "C": "n 100000, batch 4, σ 1.2, 20 epochs (500000 steps), δ 1e-5",
    "D": "q 1e-3, σ 0.8, 100000 steps, δ 1e-6",
}
