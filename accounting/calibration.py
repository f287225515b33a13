"""Calibration: the noise, number of steps or sample rate that meets an epsilon budget.

Epsilon is monotone in each parameter (decreasing in the noise multiplier, increasing in the
sample rate and the number of steps), so each calibration brackets the boundary and then finds it
with Brent's method (Brent 1973, "Algorithms for Minimization without Derivatives", Ch. 4). The
value returned always lies on the safe side: its epsilon is at most the target, never above.

With ``accountant="pld"`` the epsilon is the PLD accountant's certified upper bound, computed
with an epsilon bracket at most ``pld_tolerance`` wide (default ``1e-2``): any width is safe, a
narrower one buys slightly less noise for more time.
"""

from __future__ import annotations

import math

from accounting import _scipy
from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_positive,
    check_sample_rate,
    check_steps,
)
from accounting.budget import compute_epsilon
from accounting.rdp.conversions import Conversion

__all__ = [
    "MAX_NOISE_MULTIPLIER",
    "MAX_STEPS",
    "MIN_NOISE_MULTIPLIER",
    "MIN_SAMPLE_RATE",
    "calibrate_noise_multiplier",
    "calibrate_sample_rate",
    "calibrate_steps",
]

#: :func:`calibrate_noise_multiplier` gives up (ValueError) once a noise multiplier this large
#: (the first power of 2 above it, 2**27) still misses the target.
MAX_NOISE_MULTIPLIER = 1e8
#: :func:`calibrate_noise_multiplier` searches no lower: once a noise multiplier at or below this
#: (the first power of 2 below it, 2**-20) meets the target, it is returned as is.
MIN_NOISE_MULTIPLIER = 1e-6
#: :func:`calibrate_steps` raises ValueError when more steps than this meet the target.
MAX_STEPS = 10**15
#: :func:`calibrate_sample_rate` returns 0.0 only when no rate at or above this (the smallest
#: normal float, 2**-1022) meets the target.
MIN_SAMPLE_RATE = 2.0**-1022


def _boundary_on_safe_side(spend, low, high, tolerance, safe_is_high):
    """The point within ``tolerance`` of the root of the monotone ``spend`` on the safe side.

    ``spend(x) <= 0`` means x meets the budget; ``spend(low)`` and ``spend(high)`` bracket it.
    A tolerance below the floating-point resolution of the bracket is raised to it.
    """
    safe_end = high if safe_is_high else low
    tolerance = max(tolerance, 8.0 * 2.0**-52 * max(abs(low), abs(high)), 1e-300)
    if high - low > tolerance:
        root = _scipy.optimize.brentq(spend, low, high, xtol=tolerance / 4.0, rtol=4.0 * 2.0**-52)
        low, high = max(low, root - tolerance / 2.0), min(high, root + tolerance / 2.0)
        # Brent's bracket is guaranteed; confirm the safe end and step outwards if a rounding
        # error put it on the wrong side (the bracket's own safe end is the last resort)
        for _ in range(64):
            if not ((spend(high) > 0.0) if safe_is_high else (spend(low) > 0.0)):
                return high if safe_is_high else low
            low, high = (high, high + tolerance / 2.0) if safe_is_high else (
                low - tolerance / 2.0, low)
        return safe_end
    return high if safe_is_high else low


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 1e-6,
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> float:
    """Smallest noise multiplier (to ``tolerance``) whose epsilon is at most ``target_epsilon``.

    Parameters
    ----------
    target_epsilon, tolerance : float
        Finite numbers ``> 0`` (NumPy scalars accepted); ``tolerance`` is absolute on sigma.

    Returns
    -------
    float
        ``sigma`` with ``epsilon(sigma) <= target_epsilon`` and ``sigma - sigma* <= tolerance``,
        where ``sigma*`` is the exact boundary.

    Raises
    ------
    ValueError
        For out-of-range arguments, when ``sample_rate`` or ``steps`` is 0 (no privacy is spent,
        so no noise is needed), or when even ``sigma = MAX_NOISE_MULTIPLIER`` (``1e8``) misses
        the target; the message names the accountant (the moments accountant's floor is
        ``log(1/delta) / 32``, however much noise).

    Notes
    -----
    If a noise multiplier at or below ``MIN_NOISE_MULTIPLIER`` (``1e-6``) already meets the
    target, that value (``2**-20``) is returned without searching further down.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    sample_rate = check_sample_rate(sample_rate, scalar=True)
    steps = check_steps(steps)
    tolerance = check_positive(tolerance, "tolerance")
    if sample_rate == 0.0 or steps == 0:
        raise ValueError(
            "sample_rate and steps must both be > 0: with no step or no sampling no privacy is "
            "spent and any noise multiplier meets the target"
        )

    def spend(sigma):
        return compute_epsilon(
            sample_rate, sigma, steps, delta, accountant, conversion, pld_tolerance=pld_tolerance
        ) - target

    high = 1.0
    while (excess := spend(high)) > 0.0:
        if high >= MAX_NOISE_MULTIPLIER:
            floor = excess + target  # the epsilon just computed at this noise multiplier
            raise ValueError(
                f"target_epsilon={target_epsilon!r} is out of reach at delta={delta:g}, "
                f"sample_rate={sample_rate:g}, steps={steps}: even noise_multiplier="
                f"{high:g} spends epsilon {floor:.6g} with the {accountant!r} accountant (its "
                "conversion alone costs that much at this delta; the moments accountant's "
                "floor is log(1/delta)/max_lambda)"
            )
        high *= 2.0
    low = high / 2.0
    while spend(low) <= 0.0:
        if low <= MIN_NOISE_MULTIPLIER:
            return low  # even a negligible noise meets the target
        high, low = low, low / 2.0
    return _boundary_on_safe_side(spend, low, high, tolerance, safe_is_high=True)


def calibrate_sample_rate(
    target_epsilon: float,
    delta: float,
    noise_multiplier: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 1e-6,
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> float:
    """Largest sample rate (to a relative ``tolerance``) whose epsilon is at most the target.

    The search runs on ``log q`` (bracketing with ever larger steps down from 1, then Brent's
    method), so tiny rates are found as precisely as large ones.

    Parameters
    ----------
    tolerance : float
        Relative tolerance on the rate, in ``(0, 1)``.

    Returns
    -------
    float
        ``q`` with ``epsilon(q) <= target_epsilon`` and ``q >= (1 - tolerance) q*``, where ``q*``
        is the exact boundary; 1.0 when even full-batch steps meet the target, and 0.0 only
        when no rate at or above ``MIN_SAMPLE_RATE`` (``2**-1022``) meets it.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
    steps = check_steps(steps)
    tolerance = check_positive(tolerance, "tolerance")
    if tolerance >= 1.0:
        raise ValueError(
            f"tolerance is relative for sample rates and must lie in (0, 1), got {tolerance!r}"
        )

    def spend(log_rate):
        epsilon = compute_epsilon(
            min(1.0, math.exp(log_rate)), noise_multiplier, steps, delta, accountant, conversion,
            pld_tolerance=pld_tolerance,
        )
        return epsilon - target

    if spend(0.0) <= 0.0:
        return 1.0
    # Bracket: log q = 0 misses; step down by ever doubling amounts until a rate meets.
    floor = math.log(MIN_SAMPLE_RATE)
    high, gap = 0.0, math.log(2.0)
    while True:
        low = max(floor, high - gap)
        if spend(low) <= 0.0:
            break
        if low == floor:
            return 0.0
        high, gap = low, 2.0 * gap
    # A step of -log1p(-tolerance) in log q is a factor (1 - tolerance) in q.
    log_rate = _boundary_on_safe_side(
        spend, low, high, -math.log1p(-tolerance), safe_is_high=False
    )
    return min(1.0, math.exp(log_rate))


def calibrate_steps(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    noise_multiplier: float,
    accountant: str = "rdp",
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> int:
    """Largest number of steps whose epsilon is at most ``target_epsilon`` (0 if none).

    Raises
    ------
    ValueError
        When ``sample_rate`` is 0 (steps then spend nothing and there is no largest number),
        or when more than ``MAX_STEPS`` (``10**15``) steps meet the target.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    sample_rate = check_sample_rate(sample_rate, scalar=True)
    noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
    if sample_rate == 0.0:
        raise ValueError("sample_rate must be > 0: steps at sample rate 0 spend no privacy")

    def meets(steps):
        epsilon = compute_epsilon(
            sample_rate, noise_multiplier, steps, delta, accountant, conversion,
            pld_tolerance=pld_tolerance,
        )
        return epsilon <= target

    if not meets(1):
        return 0
    low, high = 1, 2
    while meets(high):
        if high >= MAX_STEPS:
            raise ValueError(
                f"more than MAX_STEPS={MAX_STEPS:g} steps meet target_epsilon={target_epsilon!r} "
                f"at delta={delta:g}, sample_rate={sample_rate:g}, "
                f"noise_multiplier={noise_multiplier:g}"
            )
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    return low
