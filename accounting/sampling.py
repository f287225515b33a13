"""DP-SGD runs as events, for the batch sampler that was actually used.

A privacy guarantee holds for the sampler the training ran, not for an idealised one: shuffled
epochs are not Poisson-sampled steps (Chua et al., "How private are DP-SGD implementations?",
ICML 2024, show the true epsilon can be several times the Poisson figure). :func:`dpsgd_run`
turns the hyper-parameters of a DP-SGD run and its sampler into the event an accountant composes
and the neighbouring relation the guarantee is for:

==================  ================================================  =========  ============
``sampling``        one unit (composed ``count`` times)               unit       relation
==================  ================================================  =========  ============
``"poisson"``       ``PoissonSampled(b / n, Gaussian(sigma))``        step       add/remove
``"fixed"``         ``SampledWithoutReplacement(n, b,                 step       replace-one
                    Gaussian(sigma / 2))``
``"truncated"``     ``TruncatedPoissonGaussian(n, b / n, B, sigma)``  step       add/remove
``"shuffle"``       ``ShuffledEpoch(t, Gaussian(sigma))``,            epoch      zero-out
                    ``t = ceil(n / b)``
``"balls-in-bins"`` ``RandomAllocation(t, Gaussian(sigma))``,         epoch      add/remove
                    ``t = max(1, n // b)``
==================  ================================================  =========  ============

Fixed-size batches: replacing one example moves a DP-SGD sum of gradients clipped to norm ``C``
by up to ``2 C``, so the Gaussian inside is ``sigma / 2`` in units of that sensitivity
(dp_accounting's ``SampledWithoutReplacementDpEvent`` convention). Shuffled epochs: each example
is used once per epoch, so an epoch is one Gaussian release for the zero-out relation (an example
replaced by one that contributes nothing), TF Privacy's "each example once per epoch" figure.
Epoch-unit samplers count a partial epoch as a whole one (a bound).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from fractions import Fraction

import numpy as np

from accounting._validation import check_noise_multiplier, check_positive_int, check_steps
from accounting.events import (
    Event,
    Gaussian,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
    SelfComposed,
    ShuffledEpoch,
    TruncatedPoissonGaussian,
)

__all__ = [
    "SAMPLINGS",
    "DpsgdRun",
    "check_sampling",
    "dpsgd_run",
    "dpsgd_sample_rate_and_steps",
]

#: Batch samplers :func:`dpsgd_run` knows.
SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle", "fixed", "truncated", "balls-in-bins")

_RELATIONS = {
    "poisson": "add_remove",
    "fixed": "replace_one",
    "truncated": "add_remove",
    "shuffle": "zero_out",
    "balls-in-bins": "add_remove",
}


def check_sampling(sampling) -> str:
    """``sampling`` after checking it names a sampler of :data:`SAMPLINGS` (``"balls_in_bins"``
    is read as ``"balls-in-bins"``)."""
    if not isinstance(sampling, str):
        raise TypeError(f"sampling must be a string, one of {SAMPLINGS}, got "
                        f"{type(sampling).__name__}")
    name = sampling.replace("_", "-")
    if name not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r:.60}")
    return name


@dataclasses.dataclass(frozen=True)
class DpsgdRun:
    """A DP-SGD run as an event: ``unit_event`` composed ``count`` times.

    Attributes
    ----------
    sampling : str
        The sampler (one of :data:`SAMPLINGS`).
    unit_event : Event
        One step, or one epoch for the epoch-unit samplers (``unit``).
    count : int
        Number of units.
    unit : {"step", "epoch"}
    neighboring : {"add_remove", "replace_one", "zero_out"}
        Neighbouring relation of the guarantee.
    steps : int
        Training steps of the run (for an epoch-unit sampler, ``count`` times the steps of an
        epoch).
    """

    sampling: str
    unit_event: Event
    count: int
    unit: str
    neighboring: str
    steps: int

    @property
    def event(self) -> Event:
        """The whole run: ``SelfComposed(unit_event, count)``."""
        return SelfComposed(self.unit_event, self.count)

    @property
    def accountant_options(self) -> dict:
        """Options an accountant needs for this run's relation (``neighboring="replace_one"``
        for fixed-size batches; none otherwise)."""
        return {"neighboring": "replace_one"} if self.neighboring == "replace_one" else {}

    def with_noise(self, noise_multiplier: float) -> DpsgdRun:
        """The same run with another noise multiplier (for calibration)."""
        sigma = check_noise_multiplier(noise_multiplier, scalar=True)
        return dataclasses.replace(self, unit_event=_with_sigma(self.unit_event, sigma))

    def with_count(self, count: int) -> DpsgdRun:
        """The same run with ``count`` units (steps or epochs)."""
        count = check_steps(count, "count")
        per_unit = self.steps // self.count if self.count else _steps_per_unit(self.unit_event)
        return dataclasses.replace(self, count=count, steps=count * per_unit)


def _steps_per_unit(unit_event: Event) -> int:
    if isinstance(unit_event, ShuffledEpoch):
        return unit_event.batches
    if isinstance(unit_event, RandomAllocation):
        return unit_event.steps
    return 1


def _with_sigma(event: Event, sigma: float) -> Event:
    if isinstance(event, PoissonSampled):
        return PoissonSampled(event.sample_rate, Gaussian(sigma))
    if isinstance(event, SampledWithoutReplacement):
        return SampledWithoutReplacement(event.dataset_size, event.sample_size,
                                         Gaussian(sigma / 2.0))
    if isinstance(event, TruncatedPoissonGaussian):
        return dataclasses.replace(event, noise_multiplier=sigma)
    if isinstance(event, ShuffledEpoch):
        return ShuffledEpoch(event.batches, Gaussian(sigma))
    return RandomAllocation(event.steps, Gaussian(sigma), event.selections)


def dpsgd_sample_rate_and_steps(sample_size: int, batch_size: int, epochs: float):
    """``(q, steps)`` of a DP-SGD run: ``q = batch / n``, ``steps = ceil(epochs n / batch)``.

    These are TF Privacy's conventions (``compute_dp_sgd_privacy``).
    """
    return _sample_rate_and_steps(sample_size, batch_size, epochs, "epochs")


def _sample_rate_and_steps(sample_size, batch_size, epochs, epochs_name: str):
    """:func:`dpsgd_sample_rate_and_steps`, naming the epochs argument as the caller does."""
    # floats hold every record count up to 2**53; beyond it q = batch / n would overflow
    sample_size = check_positive_int(sample_size, "sample_size", 2**53)
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size > sample_size:
        raise ValueError(
            f"batch_size must lie in [1, sample_size={sample_size}], got {batch_size}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, (numbers.Real, np.floating)):
        raise TypeError(f"{epochs_name} must be a real number, got {type(epochs).__name__}")
    exact = Fraction(int(epochs)) if isinstance(epochs, numbers.Integral) else None
    if exact is None and not math.isfinite(float(epochs)) or epochs < 0:
        raise ValueError(f"{epochs_name} must be a finite number >= 0, got {epochs!r:.60}")
    try:
        steps = float(epochs) * sample_size / batch_size  # TF Privacy's float arithmetic
    except OverflowError:  # an int beyond the float range
        steps = math.inf
    if math.isfinite(steps):
        return batch_size / sample_size, math.ceil(steps)
    # beyond the float range the exact product still gives the (huge) count
    exact = Fraction(float(epochs)) if exact is None else exact
    steps = math.ceil(exact * sample_size / batch_size)
    return batch_size / sample_size, steps


def dpsgd_run(
    sample_size: int,
    batch_size: int,
    noise_multiplier: float,
    *,
    epochs: float | None = None,
    steps: int | None = None,
    sampling: str = "poisson",
    max_batch_size: int | None = None,
) -> DpsgdRun:
    """The event of a DP-SGD run with the given batch sampler (see the module docstring).

    Parameters
    ----------
    sample_size : int
        Training examples ``n >= 1``.
    batch_size : int
        (Expected) batch size ``b`` in ``[1, n]``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, ``> 0``.
    epochs, steps :
        Length of the run: exactly one of them. ``steps = ceil(epochs n / b)`` (TF Privacy's
        convention); epoch-unit samplers compose ``ceil(epochs)`` epochs, or
        ``ceil(steps / t)`` for ``t`` steps per epoch.
    sampling : {"poisson", "shuffle", "fixed", "truncated", "balls-in-bins"}
    max_batch_size : int, optional
        The cap ``B >= 1`` of truncated Poisson batches (required for ``"truncated"``, refused
        otherwise).
    """
    sampling = check_sampling(sampling)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    if (epochs is None) == (steps is None):
        raise TypeError("give exactly one of epochs and steps")
    if steps is None:
        sample_rate, step_count = dpsgd_sample_rate_and_steps(sample_size, batch_size, epochs)
    else:
        sample_rate, _ = dpsgd_sample_rate_and_steps(sample_size, batch_size, 0)
        step_count = check_steps(steps)
    if (max_batch_size is not None) != (sampling == "truncated"):
        raise ValueError("max_batch_size is the cap of sampling='truncated' and only of it"
                         if max_batch_size is not None else
                         "sampling='truncated' needs max_batch_size (the batch cap B >= 1)")
    n, b = int(sample_size), int(batch_size)
    if sampling in ("shuffle", "balls-in-bins"):
        per_epoch = math.ceil(n / b) if sampling == "shuffle" else max(1, n // b)
        if steps is None:
            count = (int(epochs) if isinstance(epochs, numbers.Integral)
                     else math.ceil(float(epochs)))
        else:
            count = -(-step_count // per_epoch)
        unit_event: Event = (
            ShuffledEpoch(per_epoch, Gaussian(sigma)) if sampling == "shuffle"
            else RandomAllocation(per_epoch, Gaussian(sigma))
        )
        return DpsgdRun(sampling, unit_event, count, "epoch", _RELATIONS[sampling],
                        count * per_epoch)
    if sampling == "poisson":
        unit_event = PoissonSampled(sample_rate, Gaussian(sigma))
    elif sampling == "fixed":
        unit_event = SampledWithoutReplacement(n, b, Gaussian(sigma / 2.0))
    else:
        cap = check_positive_int(max_batch_size, "max_batch_size")
        unit_event = TruncatedPoissonGaussian(n, sample_rate, cap, sigma)
    return DpsgdRun(sampling, unit_event, step_count, "step", _RELATIONS[sampling], step_count)
