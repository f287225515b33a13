"""Batch samplers: Poisson sampling (what the accountant assumes) and shuffled fixed batches.

The RDP accountant (:class:`accounting.RdpAccountant`) bounds the privacy loss of the
*Poisson-subsampled* Gaussian mechanism (Abadi et al. 2016; Mironov, Talwar and Zhang 2019):
every step includes each example independently with probability ``q``, so batch sizes vary and
may be zero. :class:`PoissonSampler` does exactly that.

:class:`ShuffledBatchSampler` is what ``model.fit`` does (shuffle once per epoch, cut into fixed
batches). Its privacy is **not** what the Poisson accountant reports: sampling without
replacement from a shuffle is a different mechanism, and applying the Poisson analysis to it (as
TF Privacy's ``compute_dp_sgd_privacy`` does) is a common approximation, not a guarantee. The
trainer accounts a shuffled epoch as one Gaussian release on the whole data set instead (each
example is used at most once per epoch), a certified bound that claims no amplification.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from dpsgd_kernels._validation import check_positive_int, check_probability
from dpsgd_kernels.model import as_generator

__all__ = ["PoissonSampler", "ShuffledBatchSampler"]


class PoissonSampler:
    """Yield ``steps`` index arrays, each example included independently with probability ``q``.

    Parameters
    ----------
    sample_size : int
        Number of examples ``N >= 1``.
    sample_rate : float
        Inclusion probability ``q`` in ``(0, 1]``; the expected batch size is ``q N``.
    steps : int
        Number of batches to yield (``>= 0``).
    rng : numpy.random.Generator or int
        Source of randomness (or seed).

    Notes
    -----
    Each index array is sorted and may be empty.
    """

    def __init__(self, sample_size: int, sample_rate: float, steps: int, rng=0):
        self.sample_size = check_positive_int(sample_size, "sample_size")
        self.sample_rate = check_probability(sample_rate, "sample_rate", open_low=True)
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.rng = as_generator(rng)

    @property
    def expected_batch_size(self) -> float:
        """``q N``: what the Poisson DP-SGD step divides by."""
        return self.sample_rate * self.sample_size

    def sample(self) -> np.ndarray:
        """One batch of indices."""
        return np.flatnonzero(self.rng.random(self.sample_size) < self.sample_rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.steps):
            yield self.sample()

    def __len__(self) -> int:
        return self.steps

    def __repr__(self) -> str:
        return (
            f"PoissonSampler(sample_size={self.sample_size}, sample_rate={self.sample_rate}, "
            f"steps={self.steps})"
        )


class ShuffledBatchSampler:
    """Shuffle every epoch and cut into fixed batches (``model.fit`` style).

    **Not** the sampling the Poisson accountant assumes: the Poisson epsilon at ``q =
    batch_size / N`` is not a bound for it (Chua et al. 2024). :class:`~dpsgd_kernels.DPSGDTrainer`
    accounts each shuffled epoch as one Gaussian release instead (each example is used at most
    once per epoch).

    Parameters
    ----------
    sample_size : int
        Number of examples ``N >= 1``.
    batch_size : int
        Examples per batch, ``1 <= batch_size <= N``.
    steps : int
        Number of batches to yield; epochs continue with a fresh shuffle.
    rng : numpy.random.Generator or int
        Source of randomness (or seed).
    drop_remainder : bool
        Skip the last short batch of an epoch (default ``True``, so every batch has
        ``batch_size`` examples and ``num_microbatches`` divides it).
    """

    def __init__(
        self, sample_size: int, batch_size: int, steps: int, rng=0, drop_remainder: bool = True
    ):
        self.sample_size = check_positive_int(sample_size, "sample_size")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if self.batch_size > self.sample_size:
            raise ValueError(
                f"batch_size must lie in [1, sample_size={self.sample_size}], got {batch_size}"
            )
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.rng = as_generator(rng)
        self.drop_remainder = bool(drop_remainder)

    @property
    def sample_rate(self) -> float:
        """``batch_size / N``, the rate TF Privacy feeds the accountant for this sampler."""
        return self.batch_size / self.sample_size

    def _epoch(self) -> list[np.ndarray]:
        order = self.rng.permutation(self.sample_size)
        stop = self.sample_size - self.sample_size % self.batch_size
        batches = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if not self.drop_remainder and stop < self.sample_size:
            batches.append(order[stop:])
        return batches

    def __iter__(self) -> Iterator[np.ndarray]:
        produced = 0
        while produced < self.steps:
            for batch in self._epoch():
                if produced == self.steps:
                    return
                yield batch
                produced += 1

    def __len__(self) -> int:
        return self.steps

    def __repr__(self) -> str:
        return (
            f"ShuffledBatchSampler(sample_size={self.sample_size}, "
            f"batch_size={self.batch_size}, steps={self.steps})"
        )
