"""Calibration of a DP-SGD run for the batch sampler it uses.

The same searches as :mod:`accounting.calibration` (safe side always: the value returned spends
at most the target), on the event :func:`accounting.dpsgd_run` builds for the sampler, with an
accountant for the sampler's neighbouring relation.
"""

from __future__ import annotations

from accounting._validation import check_delta, check_positive
from accounting.calibration import (
    MAX_NOISE_MULTIPLIER,
    MAX_STEPS,
    MIN_NOISE_MULTIPLIER,
    _OutOfReach,
    _power_of_two_at_or_above,
    _power_of_two_at_or_below,
    calibrate,
)
from accounting.rdp.conversions import Conversion
from accounting.sampling import dpsgd_run

__all__ = ["calibrate_dpsgd_noise_multiplier", "calibrate_dpsgd_steps"]


def calibrate_dpsgd_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_size: int,
    batch_size: int,
    *,
    epochs: float | None = None,
    steps: int | None = None,
    sampling: str = "poisson",
    max_batch_size: int | None = None,
    accountant: str = "rdp",
    tolerance: float = 1e-6,
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> float:
    """Smallest noise multiplier (to ``tolerance``) whose DP-SGD run spends at most
    ``target_epsilon`` with the sampler ``sampling``.

    The run is :func:`accounting.dpsgd_run` ``(sample_size, batch_size, sigma, epochs=...,
    steps=..., sampling=..., max_batch_size=...)``; the search is
    :func:`accounting.calibrate` over ``sigma`` in ``[2**-20, 2**27]``, as
    :func:`accounting.calibrate_noise_multiplier`.

    Raises
    ------
    ValueError
        For out-of-range arguments, a run of no step, or a target out of reach even at
        ``MAX_NOISE_MULTIPLIER``.
    UnsupportedEventError
        If ``accountant`` cannot account for the sampler (the message names those that can).
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    tolerance = check_positive(tolerance, "tolerance")
    run = dpsgd_run(sample_size, batch_size, 1.0, epochs=epochs, steps=steps,
                    sampling=sampling, max_batch_size=max_batch_size)
    # the run's own arguments are named: they, not the target, make it empty or out of reach
    shape = (f"sample_size={_short(sample_size)}, batch_size={_short(batch_size)}, "
             f"epochs={_short(epochs)}, steps={_short(steps)}")
    if run.count == 0:
        raise ValueError(f"the run ({shape}) has no step: no privacy is spent and any noise "
                         "multiplier meets the target")
    bounds = (_power_of_two_at_or_below(MIN_NOISE_MULTIPLIER),
              _power_of_two_at_or_above(float(MAX_NOISE_MULTIPLIER)))
    try:
        return calibrate(
            lambda sigma: run.with_noise(sigma).event, target, delta, accountant=accountant,
            bounds=bounds, tolerance=tolerance, increasing=False, conversion=conversion,
            pld_tolerance=pld_tolerance, **run.accountant_options,
        )
    except _OutOfReach as error:
        raise ValueError(
            f"target_epsilon={target_epsilon!r} is out of reach at delta={delta:g} with "
            f"sampling={run.sampling!r}: even noise_multiplier={error.parameter:g} spends "
            f"epsilon {error.epsilon:.6g} with the {accountant!r} accountant over the run "
            f"({shape})"
        ) from None


def _short(value) -> str:
    """``repr`` cut short, so that a huge integer does not flood a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def calibrate_dpsgd_steps(
    target_epsilon: float,
    delta: float,
    sample_size: int,
    batch_size: int,
    noise_multiplier: float,
    *,
    sampling: str = "poisson",
    max_batch_size: int | None = None,
    accountant: str = "rdp",
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> int:
    """Most training steps whose DP-SGD run spends at most ``target_epsilon`` (0 if none).

    For the epoch-unit samplers (``"shuffle"``, ``"balls-in-bins"``) the answer is a whole
    number of epochs times the steps of one epoch (a partial epoch is accounted as a whole one).

    Raises
    ------
    ValueError
        When more than ``MAX_STEPS`` steps (or epochs) meet the target.
    UnsupportedEventError
        If ``accountant`` cannot account for the sampler.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    run = dpsgd_run(sample_size, batch_size, noise_multiplier, steps=0, sampling=sampling,
                    max_batch_size=max_batch_size)
    most = _power_of_two_at_or_above(MAX_STEPS)
    try:
        count = int(calibrate(
            lambda units: run.with_count(units).event, target, delta, accountant=accountant,
            bounds=(0, most), integer=True, increasing=True, conversion=conversion,
            pld_tolerance=pld_tolerance, **run.accountant_options,
        ))
    except _OutOfReach:
        return 0
    if count == most:
        raise ValueError(
            f"more than MAX_STEPS={MAX_STEPS:g} {run.unit}s meet target_epsilon="
            f"{target_epsilon!r} at delta={delta:g}, noise_multiplier={noise_multiplier!r:.60}, "
            f"sample_size={sample_size}, batch_size={batch_size} with sampling={run.sampling!r}"
        )
    return run.with_count(count).steps
