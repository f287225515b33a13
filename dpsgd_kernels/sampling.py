"""Batch samplers, each with the accounting event of what it does to the data.

A DP-SGD guarantee holds for the sampler the training ran, not for an idealised one (Chua et al.,
"How Private are DP-SGD Implementations?", ICML 2024). Every sampler here says what one unit of
it (a step, or an epoch) releases, as an :mod:`accounting.events` event, and under which
neighbouring relation that guarantee is stated. With DP-SGD noise multiplier ``sigma`` (noise
``sigma C`` on a sum of gradients clipped to norm ``C``), ``n`` examples and batch size ``b``:

=====================  ============================  =====  ===========  ======================
``sampling``           :meth:`event` (one unit)      unit   relation     gradient divided by
=====================  ============================  =====  ===========  ======================
``"poisson"``          ``PoissonSampled(q,           step   add/remove   ``q n`` (expected size)
                       Gaussian(sigma))``
``"fixed"``            ``SampledWithoutReplacement(  step   replace-one  ``b`` (the batch size)
                       n, b, Gaussian(sigma / 2))``
``"truncated"``        ``TruncatedPoissonGaussian(   step   add/remove   ``q n`` (the Poisson
                       n, q, B, sigma)``                                 expected size)
``"shuffle"``          ``ShuffledEpoch(t,            epoch  zero-out     ``b``
                       Gaussian(sigma))``
``"balls_in_bins"``    ``RandomAllocation(t,         epoch  add/remove   ``n / t`` (expected
                       Gaussian(sigma))``                                size)
=====================  ============================  =====  ===========  ======================

with ``q = b / n``, ``B`` the truncation cap, and ``t = n // b`` steps per epoch for the epoch
samplers. Fixed-size batches are analysed for replace-one neighbours (Wang, Balle and
Kasiviswanathan 2019), where replacing one example moves the clipped sum by up to ``2 C``: the
Gaussian inside is ``sigma / 2`` in units of that sensitivity (dp_accounting's
``SampledWithoutReplacementDpEvent`` convention). A shuffled epoch uses each example once, so it
is one Gaussian release (TF Privacy's "each example once per epoch" figure, for the zero-out
relation); its Poisson figure is **not** a bound.

Every normaliser is a constant fixed before any data is seen: dividing by the realised size of a
Poisson, truncated or balls-in-bins batch would let one example change the divisor, which the
accounting does not cover. Truncated Poisson divides by ``q n`` as the truncated-Poisson DP-SGD
of Chua et al. ("Scalable DP-SGD: Shuffling vs. Poisson Subsampling", NeurIPS 2024, Section 4,
and arXiv 2508.15089) does, padding short batches with examples of weight 0: the truncated
expected size ``E[min(K, B)] <= q n`` makes the update slightly smaller when batches are cut,
which changes no privacy figure.

Memory: each draw holds O(n) indices at most (one epoch's assignment or permutation, one Poisson
mask in chunks); ``sample_size`` is capped at :data:`MAX_SAMPLE_SIZE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from accounting.events import (
    Event,
    Gaussian,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
    ShuffledEpoch,
    TruncatedPoissonGaussian,
)
from dpsgd_kernels._validation import (
    check_noise_multiplier,
    check_positive_int,
    check_probability,
)
from dpsgd_kernels.model import as_generator

__all__ = [
    "MAX_SAMPLE_SIZE",
    "NEIGHBORING",
    "SAMPLINGS",
    "BallsInBinsSampler",
    "FixedSizeSampler",
    "PoissonSampler",
    "Sampler",
    "ShuffledBatchSampler",
    "TruncatedPoissonSampler",
    "check_sampling",
    "make_sampler",
]

#: Samplers :func:`make_sampler`, the trainer and the TF data loader know.
SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle", "fixed", "truncated", "balls_in_bins")

#: Neighbouring relation of each sampler's guarantee.
NEIGHBORING: dict[str, str] = {
    "poisson": "add_remove",
    "shuffle": "zero_out",
    "fixed": "replace_one",
    "truncated": "add_remove",
    "balls_in_bins": "add_remove",
}

#: Most examples a sampler draws from (every draw holds up to one index per example).
MAX_SAMPLE_SIZE = 2**31

# Poisson masks are drawn in chunks of this many examples, so the working memory of a step is the
# chunk plus the batch, not one float per example.
_CHUNK = 1 << 20


def _check_sample_size(sample_size) -> int:
    size = check_positive_int(sample_size, "sample_size")
    if size > MAX_SAMPLE_SIZE:
        raise ValueError(f"sample_size must be a whole number in [1, {MAX_SAMPLE_SIZE}], "
                         f"got {sample_size!r}")
    return size


def _check_batch_size(batch_size, sample_size: int, name: str = "batch_size") -> int:
    size = check_positive_int(batch_size, name)
    if size > sample_size:
        raise ValueError(f"{name} must lie in [1, sample_size={sample_size}], got {batch_size!r}")
    return size


def _check_microbatch_size(microbatch_size) -> int:
    return check_positive_int(microbatch_size, "microbatch_size")


def _check_per_example(microbatch_size, batches: str) -> None:
    """Samplers whose batches vary in size clip example by example: ``microbatch_size`` 1."""
    if _check_microbatch_size(microbatch_size) != 1:
        raise ValueError(f"{batches} vary in size and are clipped per example: "
                         f"microbatch_size must be 1, got {microbatch_size!r}")


def _check_divides(microbatch_size, batch_size: int) -> int:
    """``microbatch_size`` after checking it divides the fixed ``batch_size``."""
    group = _check_microbatch_size(microbatch_size)
    if batch_size % group:
        raise ValueError(f"microbatch_size must divide batch_size={batch_size}, "
                         f"got {microbatch_size!r}")
    return group


def _poisson_draw(rng: np.random.Generator, sample_size: int, sample_rate: float) -> np.ndarray:
    """Sorted indices, each included with probability ``sample_rate``; the same stream of
    uniforms as one ``rng.random(sample_size)`` call, drawn in bounded chunks."""
    if sample_size <= _CHUNK:
        return np.flatnonzero(rng.random(sample_size) < sample_rate)
    parts = []
    for start in range(0, sample_size, _CHUNK):
        stop = min(start + _CHUNK, sample_size)
        parts.append(start + np.flatnonzero(rng.random(stop - start) < sample_rate))
    return np.concatenate(parts)


class Sampler:
    """What every sampler offers: iteration over ``steps`` index arrays (:meth:`sample` draws
    one batch of a step sampler), :attr:`expected_batch_size` (the DP-SGD normaliser),
    :attr:`steps_per_epoch`, and its accounting: :meth:`event`, :attr:`unit`,
    :attr:`neighboring`."""

    sampling: ClassVar[str]
    unit: ClassVar[str] = "step"  # what :meth:`event` covers: one "step" or one "epoch"
    steps: int
    sample_size: int
    batch_size: int

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of :meth:`event`'s guarantee."""
        return NEIGHBORING[self.sampling]

    @property
    def steps_per_epoch(self) -> int:
        """Steps of one epoch: ``ceil(n / b)`` for step samplers (TF Privacy's convention)."""
        return math.ceil(self.sample_size / self.batch_size)

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """What one :attr:`unit` releases with DP-SGD noise multiplier ``noise_multiplier``
        (noise over the clipping norm); ``microbatch_size > 1`` clips groups of that many
        examples as one (TF Privacy microbatches, where supported)."""
        raise NotImplementedError

    def sample(self) -> np.ndarray:
        """One batch of indices."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.steps):
            yield self.sample()

    def __len__(self) -> int:
        return self.steps

    def _set_batches(self, sample_size, batch_size, steps, rng) -> None:
        """Check and keep the arguments of the samplers of nominal batch size ``b``."""
        self.sample_size = _check_sample_size(sample_size)
        self.batch_size = _check_batch_size(batch_size, self.sample_size)
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.rng = as_generator(rng)


class PoissonSampler(Sampler):
    """Yield ``steps`` index arrays, each example included independently with probability ``q``.

    The sampling the Poisson-subsampled Gaussian analysis assumes (Abadi et al. 2016; Mironov,
    Talwar and Zhang 2019): batch sizes vary and may be zero. DP-SGD divides the noisy sum by
    the expected batch size ``q N`` (:attr:`expected_batch_size`).

    Parameters
    ----------
    sample_size : int
        Number of examples ``N`` in ``[1, MAX_SAMPLE_SIZE]``.
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

    sampling = "poisson"

    def __init__(self, sample_size: int, sample_rate: float, steps: int, rng=0):
        self.sample_size = _check_sample_size(sample_size)
        self.sample_rate = check_probability(sample_rate, "sample_rate", open_low=True)
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.rng = as_generator(rng)

    @property
    def batch_size(self) -> int:
        """``max(1, round(q N))``, the nominal batch size (an epoch is ``ceil(N / it)`` steps)."""
        return max(1, round(self.expected_batch_size))

    @property
    def expected_batch_size(self) -> float:
        """``q N``: what the Poisson DP-SGD step divides by."""
        return self.sample_rate * self.sample_size

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """``PoissonSampled(q, Gaussian(noise_multiplier))`` (add/remove neighbours); examples
        are clipped one by one (``microbatch_size`` must be 1)."""
        sigma = check_noise_multiplier(noise_multiplier, allow_zero=False)
        _check_per_example(microbatch_size, "Poisson batches")
        return PoissonSampled(self.sample_rate, Gaussian(sigma))

    def sample(self) -> np.ndarray:
        """One batch of indices."""
        return _poisson_draw(self.rng, self.sample_size, self.sample_rate)

    def __repr__(self) -> str:
        return (
            f"PoissonSampler(sample_size={self.sample_size}, sample_rate={self.sample_rate}, "
            f"steps={self.steps})"
        )


class FixedSizeSampler(Sampler):
    """Each step a uniformly random set of exactly ``batch_size`` of the ``N`` examples, drawn
    without replacement within the step and independently across steps.

    Accounted for replace-one neighbours as ``SampledWithoutReplacement(N, b, Gaussian(sigma /
    2))`` per step (Wang, Balle and Kasiviswanathan 2019, "Subsampled Rényi Differential Privacy
    and Analytical Moments Accountant"; the inner Gaussian is measured against the replace-one
    sensitivity ``2 C``). DP-SGD divides the noisy sum by ``b`` (every batch has ``b`` examples;
    with grouped microbatches TF Privacy divides by their number).

    Parameters
    ----------
    sample_size : int
        Number of examples ``N`` in ``[1, MAX_SAMPLE_SIZE]``.
    batch_size : int
        Examples per batch, ``1 <= b <= N``.
    steps : int
        Number of batches to yield (``>= 0``).
    rng : numpy.random.Generator or int
        Source of randomness (or seed).

    Notes
    -----
    Each index array is sorted, of ``b`` distinct indices.
    """

    sampling = "fixed"

    def __init__(self, sample_size: int, batch_size: int, steps: int, rng=0):
        self._set_batches(sample_size, batch_size, steps, rng)

    @property
    def sample_rate(self) -> float:
        """``b / N``: each example's chance of being in a batch."""
        return self.batch_size / self.sample_size

    @property
    def expected_batch_size(self) -> float:
        """``b``: what the DP-SGD step divides by."""
        return float(self.batch_size)

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """``SampledWithoutReplacement(N, b, Gaussian(noise_multiplier / 2))`` (replace-one).

        Replacing one example moves one (micro)batch's clipped gradient by up to ``2 C``
        whatever ``microbatch_size`` is, so the inner Gaussian is ``sigma / 2`` in every case.
        """
        sigma = check_noise_multiplier(noise_multiplier, allow_zero=False)
        _check_divides(microbatch_size, self.batch_size)
        return SampledWithoutReplacement(self.sample_size, self.batch_size,
                                         Gaussian(sigma / 2.0))

    def sample(self) -> np.ndarray:
        """One batch of ``b`` distinct indices."""
        # Generator.choice without replacement keeps O(b) memory when b is small against N
        # (Floyd's algorithm) and permutes otherwise (O(N) <= O(50 b))
        return np.sort(self.rng.choice(self.sample_size, self.batch_size, replace=False))

    def __repr__(self) -> str:
        return (f"FixedSizeSampler(sample_size={self.sample_size}, "
                f"batch_size={self.batch_size}, steps={self.steps})")


class TruncatedPoissonSampler(PoissonSampler):
    """Poisson batches cut to at most ``max_batch_size`` examples: each example is included
    with probability ``q``, and a batch larger than the cap ``B`` is replaced by a uniformly
    random subset of ``B`` of its examples (fixed-shape batches; Chua et al., "Scalable DP-SGD:
    Shuffling vs. Poisson Subsampling", NeurIPS 2024; dp_accounting's
    ``TruncatedSubsampledGaussianDpEvent``, arXiv 2508.15089).

    Accounted for add/remove neighbours as ``TruncatedPoissonGaussian(N, q, B, sigma)`` per
    step. DP-SGD divides the noisy sum by ``q N``, the Poisson expected batch size, as Chua et
    al. do (see the module docstring).

    Parameters
    ----------
    sample_size : int
        Number of examples ``N`` in ``[1, MAX_SAMPLE_SIZE]``.
    sample_rate : float
        Inclusion probability ``q`` in ``(0, 1]``.
    max_batch_size : int
        The cap ``B >= 1``; with ``B >= N`` no batch is cut and the batches are those of
        :class:`PoissonSampler` for the same generator.
    steps : int
        Number of batches to yield (``>= 0``).
    rng : numpy.random.Generator or int
        Source of randomness (or seed).
    """

    sampling = "truncated"

    def __init__(self, sample_size: int, sample_rate: float, max_batch_size: int, steps: int,
                 rng=0):
        super().__init__(sample_size, sample_rate, steps, rng)
        self.max_batch_size = check_positive_int(max_batch_size, "max_batch_size")

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """``TruncatedPoissonGaussian(N, q, B, noise_multiplier)`` (add/remove); examples are
        clipped one by one (``microbatch_size`` must be 1)."""
        sigma = check_noise_multiplier(noise_multiplier, allow_zero=False)
        _check_per_example(microbatch_size, "truncated Poisson batches")
        return TruncatedPoissonGaussian(self.sample_size, self.sample_rate,
                                        self.max_batch_size, sigma)

    def sample(self) -> np.ndarray:
        """One batch of at most ``B`` sorted indices."""
        index = super().sample()
        if index.size > self.max_batch_size:
            index = np.sort(self.rng.choice(index, self.max_batch_size, replace=False))
        return index

    def __repr__(self) -> str:
        return (f"TruncatedPoissonSampler(sample_size={self.sample_size}, "
                f"sample_rate={self.sample_rate}, max_batch_size={self.max_batch_size}, "
                f"steps={self.steps})")


class _EpochSampler(Sampler):
    """Samplers whose batches are drawn one epoch at a time."""

    unit = "epoch"

    def _epoch(self) -> list[np.ndarray]:
        raise NotImplementedError

    def sample(self) -> np.ndarray:
        """Not available: the batches of an epoch depend on each other (iterate instead)."""
        raise TypeError(f"{type(self).__name__} draws whole epochs: iterate over it")

    def __iter__(self) -> Iterator[np.ndarray]:
        produced = 0
        while produced < self.steps:
            for batch in self._epoch():
                if produced == self.steps:
                    return
                yield batch
                produced += 1


class ShuffledBatchSampler(_EpochSampler):
    """Shuffle every epoch and cut into fixed batches (``model.fit`` style).

    **Not** the sampling the Poisson accountant assumes: the Poisson epsilon at ``q =
    batch_size / N`` is not a bound for it (Chua et al. 2024). Each shuffled epoch is accounted
    as one Gaussian release, ``ShuffledEpoch(t, Gaussian(sigma))`` (each example is used at most
    once per epoch; zero-out relation). DP-SGD divides by ``b`` (TF Privacy: by the number of
    microbatches).

    Parameters
    ----------
    sample_size : int
        Number of examples ``N`` in ``[1, MAX_SAMPLE_SIZE]``.
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

    sampling = "shuffle"

    def __init__(
        self, sample_size: int, batch_size: int, steps: int, rng=0, drop_remainder: bool = True
    ):
        self._set_batches(sample_size, batch_size, steps, rng)
        self.drop_remainder = bool(drop_remainder)

    @property
    def sample_rate(self) -> float:
        """``batch_size / N``, the rate TF Privacy feeds the accountant for this sampler."""
        return self.batch_size / self.sample_size

    @property
    def expected_batch_size(self) -> float:
        """``b``: what the DP-SGD step divides by."""
        return float(self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """``N // b`` batches (``ceil(N / b)`` without ``drop_remainder``)."""
        if self.drop_remainder:
            return self.sample_size // self.batch_size
        return math.ceil(self.sample_size / self.batch_size)

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """``ShuffledEpoch(t, Gaussian(s))`` with ``s = sigma``, or ``sigma / 2`` for
        microbatches of several examples (one example moves its microbatch's clipped gradient
        by up to ``2 C``; TF Privacy's statement does the same)."""
        sigma = check_noise_multiplier(noise_multiplier, allow_zero=False)
        group = _check_divides(microbatch_size, self.batch_size)
        inner = sigma / 2.0 if group > 1 else sigma
        return ShuffledEpoch(self.steps_per_epoch, Gaussian(inner))

    def _epoch(self) -> list[np.ndarray]:
        order = self.rng.permutation(self.sample_size)
        stop = self.sample_size - self.sample_size % self.batch_size
        batches = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if not self.drop_remainder and stop < self.sample_size:
            batches.append(order[stop:])
        return batches

    def __repr__(self) -> str:
        return (
            f"ShuffledBatchSampler(sample_size={self.sample_size}, "
            f"batch_size={self.batch_size}, steps={self.steps})"
        )


class BallsInBinsSampler(_EpochSampler):
    """Balls in bins: every epoch each example is assigned to one of its ``t = N // b`` steps
    uniformly at random, independently of the others (Chua et al., "Balls-and-Bins Sampling
    for DP-SGD", AISTATS 2025; "random allocation", Feldman and Shenfeld 2025).

    Each example is used exactly once per epoch, batch sizes are Binomial(N, 1/t) and may be
    zero. Accounted for add/remove neighbours as ``RandomAllocation(t, Gaussian(sigma))`` per
    epoch. DP-SGD divides by the expected batch size ``N / t``.

    Parameters
    ----------
    sample_size : int
        Number of examples ``N`` in ``[1, MAX_SAMPLE_SIZE]``.
    batch_size : int
        Nominal batch size ``1 <= b <= N``; an epoch has ``t = N // b`` steps.
    steps : int
        Number of batches to yield; epochs continue with a fresh assignment.
    rng : numpy.random.Generator or int
        Source of randomness (or seed).

    Notes
    -----
    Each index array is sorted and may be empty.
    """

    sampling = "balls_in_bins"

    def __init__(self, sample_size: int, batch_size: int, steps: int, rng=0):
        self._set_batches(sample_size, batch_size, steps, rng)

    @property
    def steps_per_epoch(self) -> int:
        """``t = N // b`` steps (bins) per epoch."""
        return self.sample_size // self.batch_size

    @property
    def sample_rate(self) -> float:
        """``1 / t``: each example's chance of being in a given step's batch."""
        return 1.0 / self.steps_per_epoch

    @property
    def expected_batch_size(self) -> float:
        """``N / t``: what the DP-SGD step divides by."""
        return self.sample_size / self.steps_per_epoch

    def event(self, noise_multiplier: float, microbatch_size: int = 1) -> Event:
        """``RandomAllocation(t, Gaussian(noise_multiplier))`` (add/remove); examples are
        clipped one by one (``microbatch_size`` must be 1)."""
        sigma = check_noise_multiplier(noise_multiplier, allow_zero=False)
        _check_per_example(microbatch_size, "balls-in-bins batches")
        return RandomAllocation(self.steps_per_epoch, Gaussian(sigma))

    def _epoch(self) -> list[np.ndarray]:
        bins = self.steps_per_epoch
        assignment = self.rng.integers(bins, size=self.sample_size)
        # a stable sort by bin keeps each bin's indices ascending
        order = np.argsort(assignment, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(assignment, minlength=bins))))
        return [order[bounds[i] : bounds[i + 1]] for i in range(bins)]

    def __repr__(self) -> str:
        return (f"BallsInBinsSampler(sample_size={self.sample_size}, "
                f"batch_size={self.batch_size}, steps={self.steps})")


def check_sampling(sampling, max_batch_size=None) -> str:
    """``sampling`` as one of :data:`SAMPLINGS` (``"balls-in-bins"`` is read as
    ``"balls_in_bins"``), after checking ``max_batch_size`` is given for ``"truncated"`` and
    only for it."""
    if not isinstance(sampling, str):
        raise TypeError(f"sampling must be one of {SAMPLINGS}, got {type(sampling).__name__}")
    name = sampling.replace("-", "_")
    if name not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r:.60}")
    if (max_batch_size is not None) != (name == "truncated"):
        raise ValueError("max_batch_size is the cap of sampling='truncated' and only of it"
                         if max_batch_size is not None else
                         "sampling='truncated' needs max_batch_size (the batch cap B >= 1)")
    if max_batch_size is not None:
        check_positive_int(max_batch_size, "max_batch_size")
    return name


def make_sampler(
    sampling: str,
    sample_size: int,
    batch_size: int,
    steps: int,
    rng: np.random.Generator | int = 0,
    *,
    max_batch_size: int | None = None,
) -> Sampler:
    """The sampler named ``sampling`` for ``sample_size`` examples and (expected) batch size
    ``batch_size`` (``q = b / N`` for the Poisson samplers), yielding ``steps`` batches.

    Parameters
    ----------
    sampling : {"poisson", "shuffle", "fixed", "truncated", "balls_in_bins"}
    sample_size, batch_size, steps : int
        ``N >= 1``, ``1 <= b <= N``, ``steps >= 0``.
    rng : numpy.random.Generator or int
        Source of randomness (or seed).
    max_batch_size : int, optional
        The cap ``B`` of ``"truncated"`` (required there, refused otherwise).
    """
    sampling = check_sampling(sampling, max_batch_size)
    sample_size = _check_sample_size(sample_size)
    batch_size = _check_batch_size(batch_size, sample_size)
    rate = batch_size / sample_size
    if sampling == "poisson":
        return PoissonSampler(sample_size, rate, steps, rng)
    if sampling == "truncated":
        return TruncatedPoissonSampler(sample_size, rate, max_batch_size, steps, rng)
    if sampling == "fixed":
        return FixedSizeSampler(sample_size, batch_size, steps, rng)
    if sampling == "shuffle":
        return ShuffledBatchSampler(sample_size, batch_size, steps, rng)
    return BallsInBinsSampler(sample_size, batch_size, steps, rng)
